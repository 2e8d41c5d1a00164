"""Dagster in the orchestrator overhead benchmark (``orchestrator_overhead.py``).

    python benchmarks/orchestrator_overhead_dagster.py --rows 10000 --runs 1   # Dagster alone

``dagster_orchestrator()`` is what ``orchestrator_overhead.py`` runs for Dagster, under its
rules (a subprocess per run in a fresh directory, 1 warm-up + 3 measured rounds, medians,
every pipeline run's Parquet checked with the oracle). Each measured process is this file
run with ``--child KIND``:

- ``noop``: Dagster's own fixed start-up: import it, then ``materialize`` one asset that
  does nothing, in process, on an ephemeral instance;
- ``pipeline``: the same, materialising the assets ``omconnect.runtime.dagster
  .pipeline_assets`` builds from ``pipeline.yaml`` (one run of the pipeline, as ``omconnect
  run --once``), printing the pipeline's own time (``pipeline_seconds=``) from the
  materialisation's metadata.

Run on its own, this file runs ``orchestrator_overhead.py`` for Dagster alone (with its
options: ``--rows``, ``--runs``, ``--warmups``, ...), writing
``results/orchestrator_overhead_dagster.json`` and ``.md`` beside the whole comparison's.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from orchestrator_overhead import Orchestrator

KINDS = ("noop", "pipeline")
BENCHMARKS = Path(__file__).resolve().parent
RESULTS_JSON = BENCHMARKS / "results" / "orchestrator_overhead_dagster.json"
WORK_DIR = BENCHMARKS / "work" / "overhead-dagster"


def dagster_orchestrator() -> Orchestrator:
    """Dagster for ``orchestrator_overhead.ORCHESTRATORS``."""
    from orchestrator_overhead import Orchestrator

    return Orchestrator("dagster", _prepare, _command, _pipeline_seconds)


def _prepare(home: Path) -> dict[str, str]:
    """Nothing to create: runs use an ephemeral instance; DAGSTER_HOME points at ``home`` so
    that no user instance is read."""
    home.mkdir(parents=True, exist_ok=True)
    return {**os.environ, "DAGSTER_HOME": str(home)}


def _command(kind: str, run_dir: Path, home: Path) -> list[str]:
    return [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        kind,
        "--run-dir",
        str(run_dir),
    ]


def _pipeline_seconds(output: str) -> float | None:
    found = re.findall(r"\bpipeline_seconds=([0-9.]+)\b", output)
    return float(found[-1]) if found else None


def _child(kind: str, run_dir: Path) -> int:
    """In the measured process: one in-process materialisation of ``kind``."""
    import dagster as dg

    if kind == "noop":

        @dg.asset
        def noop() -> None:
            return None

        return 0 if dg.materialize([noop]).success else 1

    from omconnect.runtime.dagster import OmconnectResource, pipeline_assets

    resource = OmconnectResource(working_dir=str(run_dir))
    result = dg.materialize(
        pipeline_assets(run_dir / "pipeline.yaml"),
        resources={"omconnect": resource},
        raise_on_error=False,
    )
    for event in result.get_asset_materialization_events():
        duration = event.materialization.metadata["duration_seconds"].value
        print(f"pipeline_seconds={duration}", flush=True)
    return 0 if result.success else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--child", choices=KINDS)
    parser.add_argument("--run-dir", type=Path)
    args, rest = parser.parse_known_args(argv)
    if args.child:
        return _child(args.child, args.run_dir)
    sys.path.insert(0, str(BENCHMARKS))
    import orchestrator_overhead

    own = {  # beside, not over, the results and runs of the whole comparison
        "--json": str(RESULTS_JSON),
        "--work-dir": str(WORK_DIR),
    }
    defaults = [
        item for option, value in own.items() if option not in rest for item in (option, value)
    ]
    return orchestrator_overhead.main(["--orchestrators", "dagster", *defaults, *rest])


if __name__ == "__main__":
    sys.exit(main())

"""What running a pipeline through an orchestrator costs over ``omconnect run --once``.

    python benchmarks/orchestrator_overhead.py                      # 1M rows, 1 warm-up + 3 runs
    python benchmarks/orchestrator_overhead.py --rows 10000 --runs 1 --orchestrators airflow

The workload is B3's: the t1m CSV -> embedded topic (Avro) -> Parquet pipeline
(``contestants.omconnect_pipeline_yaml``). Each round runs, as measured subprocesses in fresh
directories:

- ``plain``: ``omconnect run pipeline.yaml --once``;
- for each orchestrator, its ``noop`` run (the orchestrator's own fixed start-up: a process
  that loads it and runs one task doing nothing) and its ``pipeline`` run (the same process
  running the pipeline through the integration: for Airflow, ``OmconnectRunOperator`` under
  ``dag.test()`` on a SQLite metadata database migrated once before the rounds).

overhead = (median pipeline - median noop - median plain) / median plain, the extra wall time
beyond the fixed start-up (target: under 10%). On a shared machine one slow round moves a
median a lot, so the overhead is also given paired: the median over rounds of (pipeline -
noop - plain) of the same round, over the median plain run. The pipeline's own time inside
each run (omconnect's ``elapsed=``, the operator's ``duration=``) is reported too. Every
pipeline run's output is checked with the oracle; a wrong one is FAILED and not timed.
Results: ``benchmarks/results/orchestrator_overhead.json`` and ``.md``.

Orchestrators are ``Orchestrator`` values in ``ORCHESTRATORS``: Airflow's is below; Dagster's
comes from ``orchestrator_overhead_dagster.dagster_orchestrator()`` when that module exists.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import oracle
from contestants import BENCHMARKS_DIR, omconnect_inner_seconds, omconnect_pipeline_yaml
from csv_to_parquet import ensure_csv
from process_meter import run_measured
from results_report import common_results, markdown_table, seconds, write_json

RUN_TIMEOUT_SECONDS = 1800.0
KINDS = ("noop", "pipeline")


@dataclass(frozen=True)
class Orchestrator:
    """One orchestrator in the comparison.

    Attributes:
        name: Its name in tables and on the command line (``airflow``, ``dagster``).
        prepare: ``(home) -> env``: one-time set-up in ``home`` (a metadata database, say),
            untimed; returns the environment of its runs.
        command: ``(kind, run_dir, home) -> argv``: a run of ``kind`` (``noop`` or
            ``pipeline``) in ``run_dir``, which holds ``pipeline.yaml``; the pipeline run's
            Parquet goes to ``run_dir/out``. It exits non-zero when the run failed.
        inner_seconds: The pipeline's own time, read from a run's stdout + stderr (None when
            it prints none).
    """

    name: str
    prepare: Callable[[Path], dict[str, str]]
    command: Callable[[str, Path, Path], list[str]]
    inner_seconds: Callable[[str], float | None] = lambda _output: None


def _omconnect_argv() -> list[str]:
    script = Path(sys.executable).parent / "omconnect"
    return (
        [str(script)] if script.exists() else [sys.executable, "-m", "omconnect.runtime.cli.main"]
    )


# --- Airflow -------------------------------------------------------------------------------

AIRFLOW_DAG = '''
"""The overhead benchmark's DAGs: one no-op task, and the pipeline of $OVERHEAD_RUN_DIR."""
import os
from datetime import datetime

from airflow.sdk import DAG, BaseOperator

from omconnect.runtime.airflow import OmconnectRunOperator


class Noop(BaseOperator):
    def execute(self, context):
        return None


with DAG("overhead_noop", schedule=None, start_date=datetime(2024, 1, 1)) as noop:
    Noop(task_id="noop")

with DAG("overhead_pipeline", schedule=None, start_date=datetime(2024, 1, 1)) as pipeline:
    OmconnectRunOperator(
        task_id="run",
        pipeline="pipeline.yaml",
        working_dir=os.environ.get("OVERHEAD_RUN_DIR", "."),
    )
'''


def _airflow_env(home: Path) -> dict[str, str]:
    return {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    }


def _prepare_airflow(home: Path) -> dict[str, str]:
    (home / "dags").mkdir(parents=True, exist_ok=True)
    (home / "dags" / "overhead.py").write_text(AIRFLOW_DAG)
    env = _airflow_env(home)
    migrate = [sys.executable, "-m", "airflow", "db", "migrate"]
    subprocess.run(migrate, env=env, check=True, capture_output=True, timeout=600)
    return env


def _airflow_command(kind: str, run_dir: Path, home: Path) -> list[str]:
    return [sys.executable, __file__, "--airflow-child", kind, "--run-dir", str(run_dir)]


def _airflow_child(kind: str, run_dir: Path) -> int:
    """In the measured process: ``dag.test()`` of the overhead DAG of ``kind``."""
    os.environ["OVERHEAD_RUN_DIR"] = str(run_dir)
    dags_file = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"]) / "overhead.py"
    spec = importlib.util.spec_from_file_location("overhead_dags", dags_file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    run = getattr(module, kind).test()
    state = str(run.state)
    print(json.dumps({"state": state}))
    return 0 if state == "success" else 1


def _operator_seconds(output: str) -> float | None:
    """The ``duration=`` of the operator's summary line."""
    found = re.findall(r"\bduration=([0-9.]+)s\b", output)
    return float(found[-1]) if found else None


AIRFLOW = Orchestrator("airflow", _prepare_airflow, _airflow_command, _operator_seconds)


def _orchestrators() -> dict[str, Orchestrator]:
    found = {AIRFLOW.name: AIRFLOW}
    if (BENCHMARKS_DIR / "orchestrator_overhead_dagster.py").exists():
        from orchestrator_overhead_dagster import dagster_orchestrator

        dagster: Orchestrator = dagster_orchestrator()
        found[dagster.name] = dagster
    return found


ORCHESTRATORS = _orchestrators()

# --- Measuring -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """One measured run: who (``plain`` or ``<orchestrator>/<kind>``), its phase and result."""

    name: str
    phase: str
    wall_seconds: float
    cpu_seconds: float
    peak_rss_bytes: int
    failure: str | None
    inner_seconds: float | None = None


def measure(
    name: str,
    argv: list[str],
    run_dir: Path,
    env: dict[str, str],
    rows: int | None,
    phase: str,
    inner_seconds: Callable[[str], float | None] = lambda _output: None,
) -> Run:
    """Run ``argv`` in ``run_dir`` and check its Parquet (when ``rows`` is given)."""
    measured = run_measured(argv, run_dir, env, RUN_TIMEOUT_SECONDS)
    failure = None
    if measured.returncode != 0:
        tail = (measured.stderr_tail.strip().splitlines() or ["(no stderr)"])[-1]
        failure = f"exit {measured.returncode}: {tail}"
    elif rows is not None:
        found = oracle.key_set_checksum(run_dir / "out")
        if found != oracle.expected_checksum(rows):
            failure = f"wrong output: {asdict(found)}"
    run = Run(
        name,
        phase,
        round(measured.wall_seconds, 3),
        round(measured.cpu_seconds, 3),
        measured.peak_rss_bytes,
        failure,
        inner_seconds(measured.stdout + measured.stderr_tail) if rows is not None else None,
    )
    print(f"  {phase:8} {name:18} {run.wall_seconds:7.2f} s  {failure or 'ok'}", flush=True)
    return run


def fresh_run_dir(work_dir: Path, name: str, csv_path: Path) -> Path:
    run_dir = work_dir / "runs" / name.replace("/", "-")
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    (run_dir / "pipeline.yaml").write_text(omconnect_pipeline_yaml(csv_path))
    return run_dir


def summarise(runs: list[Run], names: list[str]) -> dict[str, Any]:
    """Medians of the measured runs per name, and each orchestrator's overhead."""
    medians: dict[str, dict[str, Any]] = {}
    for name in ["plain", *(f"{o}/{kind}" for o in names for kind in KINDS)]:
        measured = [r for r in runs if r.name == name and r.phase == "measured"]
        failures = [r.failure for r in runs if r.name == name and r.failure]
        ok = [r for r in measured if r.failure is None]
        inner = [r.inner_seconds for r in ok if r.inner_seconds is not None]
        medians[name] = {
            "wall_seconds_median": statistics.median(r.wall_seconds for r in ok) if ok else None,
            "inner_seconds_median": statistics.median(inner) if inner else None,
            "cpu_seconds_median": statistics.median(r.cpu_seconds for r in ok) if ok else None,
            "peak_rss_bytes": max((r.peak_rss_bytes for r in ok), default=None),
            "status": "FAILED" if failures else "ok",
            "failure": failures[0] if failures else None,
        }
    plain = medians["plain"]["wall_seconds_median"]
    overheads: dict[str, dict[str, Any]] = {}
    for name in names:
        noop = medians[f"{name}/noop"]["wall_seconds_median"]
        orchestrated = medians[f"{name}/pipeline"]["wall_seconds_median"]
        if plain and noop is not None and orchestrated is not None:
            extra = orchestrated - noop - plain
            paired = statistics.median(_paired_extras(runs, name))
            overheads[name] = {
                "startup_seconds": noop,
                "orchestrated_seconds": orchestrated,
                "plain_seconds": plain,
                "extra_seconds": round(extra, 3),
                "overhead": round(extra / plain, 4),
                "paired_extra_seconds": round(paired, 3),
                "paired_overhead": round(paired / plain, 4),
            }
    return {"medians": medians, "overheads": overheads}


def _paired_extras(runs: list[Run], name: str) -> list[float]:
    """pipeline - noop - plain of each measured round (the runs of a round are consecutive)."""
    measured = [r for r in runs if r.phase == "measured"]
    rounds: list[dict[str, float]] = []
    for run in measured:
        if run.name == "plain":
            rounds.append({})
        rounds[-1][run.name] = run.wall_seconds
    pipeline, noop = f"{name}/pipeline", f"{name}/noop"
    return [
        walls[pipeline] - walls[noop] - walls["plain"]
        for walls in rounds
        if {pipeline, noop, "plain"} <= set(walls)
    ]


def markdown(results: dict[str, Any]) -> str:
    lines = [
        f"Run {results['started']} on {results['machine']['cpus']} CPUs "
        f"({results['machine']['cpu_model']}), load average at start "
        f"{results['machine']['load_average_at_start'][0]} (a shared machine); "
        f"{results['rows']:,} rows, {results['warmups']} warm-up + {results['runs']} measured "
        f"rounds, medians; omconnect at commit `{results['commit']}`.",
        "",
    ]
    rows = [
        [
            f"`{name}`",
            seconds(m["wall_seconds_median"]),
            seconds(m["cpu_seconds_median"]),
            seconds(m["inner_seconds_median"]),
            m["status"] if not m["failure"] else f"FAILED: {m['failure']}",
        ]
        for name, m in results["medians"].items()
    ]
    header = ["run", "wall", "CPU", "the pipeline's own time", "outcome"]
    lines.append(markdown_table(header, rows))
    lines.append("")
    overhead_rows = [
        [
            name,
            seconds(o["plain_seconds"]),
            seconds(o["startup_seconds"]),
            seconds(o["orchestrated_seconds"]),
            seconds(o["extra_seconds"]),
            f"{o['overhead'] * 100:.1f}%",
            f"{o['paired_overhead'] * 100:.1f}%",
        ]
        for name, o in results["overheads"].items()
    ]
    header = [
        "orchestrator",
        "plain run",
        "fixed start-up (no-op task)",
        "orchestrated run",
        "extra",
        "overhead (target < 10%)",
        "paired overhead",
    ]
    lines.append(markdown_table(header, overhead_rows))
    lines.append("")
    lines.append(
        "overhead = (orchestrated - start-up - plain) / plain. The plain run is "
        "`omconnect run pipeline.yaml --once` in its own process; the orchestrated run is one "
        "process that loads the orchestrator and runs the pipeline as one task; the start-up is "
        "the same process running one task that does nothing. The paired overhead is the "
        "median over rounds of each round's own extra time, over the median plain run. The "
        "pipeline's own time is what the run itself reports (`elapsed=` of `omconnect run`, the "
        "operator's `duration=`, Dagster's `pipeline_seconds=`): the same work in both. "
        "Airflow's no-op DAG file imports the operator, that is omconnect's runtime, so its "
        "start-up and the plain run both count omconnect's imports: an extra near or "
        "below zero means the orchestrated run cost no more than the two together."
    )
    return "\n".join(lines)


def write_markdown(json_path: Path, results: dict[str, Any]) -> None:
    """The results as Markdown, next to their JSON (and printed)."""
    text = markdown(results)
    json_path.with_suffix(".md").write_text(f"# Orchestrator overhead\n\n{text}\n")
    print(text)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--warmups", type=int, default=1)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--orchestrators", default=",".join(ORCHESTRATORS))
    parser.add_argument("--data-dir", type=Path, default=BENCHMARKS_DIR / "data")
    parser.add_argument("--work-dir", type=Path, default=BENCHMARKS_DIR / "work" / "overhead")
    parser.add_argument(
        "--json", type=Path, default=BENCHMARKS_DIR / "results" / "orchestrator_overhead.json"
    )
    parser.add_argument(
        "--render-only",
        action="store_true",
        help="run nothing: rewrite the Markdown next to --json from its results",
    )
    parser.add_argument("--airflow-child", choices=KINDS, help=argparse.SUPPRESS)
    parser.add_argument("--run-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rows < 1 or args.runs < 1 or args.warmups < 0:
        parser.error("--rows and --runs must be >= 1, --warmups >= 0")
    args.orchestrators = [n.strip() for n in args.orchestrators.split(",") if n.strip()]
    unknown = sorted(set(args.orchestrators) - set(ORCHESTRATORS))
    if unknown:
        parser.error(f"unknown orchestrators: {', '.join(unknown)}; known: {list(ORCHESTRATORS)}")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the rounds and write the results; exit 1 when a run FAILED."""
    args = parse_args(argv)
    if args.airflow_child:
        return _airflow_child(args.airflow_child, args.run_dir)
    if args.render_only:
        write_markdown(args.json, json.loads(args.json.read_text()))
        return 0
    results = common_results(args)
    csv_path = ensure_csv(args.data_dir, args.rows)
    print(f"orchestrator overhead: {csv_path} ({args.rows:,} rows)", flush=True)
    envs: dict[str, dict[str, str]] = {}
    homes: dict[str, Path] = {}
    for name in args.orchestrators:
        homes[name] = args.work_dir / f"{name}-home"
        shutil.rmtree(homes[name], ignore_errors=True)
        started = time.monotonic()
        envs[name] = ORCHESTRATORS[name].prepare(homes[name])
        print(f"  prepared {name} in {time.monotonic() - started:.1f} s", flush=True)
    runs: list[Run] = []
    for round_index in range(args.warmups + args.runs):
        phase = "warm-up" if round_index < args.warmups else "measured"
        run_dir = fresh_run_dir(args.work_dir, "plain", csv_path)
        argv_plain = [*_omconnect_argv(), "run", "pipeline.yaml", "--once"]
        plain = measure(
            "plain",
            argv_plain,
            run_dir,
            dict(os.environ),
            args.rows,
            phase,
            omconnect_inner_seconds,
        )
        runs.append(plain)
        for name in args.orchestrators:
            for kind in KINDS:
                label = f"{name}/{kind}"
                run_dir = fresh_run_dir(args.work_dir, label, csv_path)
                command = ORCHESTRATORS[name].command(kind, run_dir, homes[name])
                rows = args.rows if kind == "pipeline" else None
                inner = ORCHESTRATORS[name].inner_seconds
                runs.append(measure(label, command, run_dir, envs[name], rows, phase, inner))
    shutil.rmtree(args.work_dir / "runs", ignore_errors=True)
    results.update(summarise(runs, args.orchestrators))
    results["runs_detail"] = [asdict(run) for run in runs]
    write_json(args.json, results)
    write_markdown(args.json, results)
    return 1 if any(m["status"] == "FAILED" for m in results["medians"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())

"""benchmarks/orchestrator_overhead.py: the overhead arithmetic, and one real tiny round
(plain, Airflow's no-op task and the pipeline under ``dag.test()``) with verified output."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
# benchmarks/ is a folder of scripts that import each other by plain name, as when run.
sys.path.insert(0, str(BENCHMARKS))

import orchestrator_overhead  # noqa: E402
from orchestrator_overhead import Run  # noqa: E402

ROWS = 2_000


def test_overhead_is_the_extra_time_beyond_start_up_over_the_plain_run() -> None:
    runs = [
        Run("plain", "measured", 10.0, 9.0, 1, None),
        Run("airflow/noop", "measured", 7.0, 6.0, 1, None),
        Run("airflow/pipeline", "measured", 17.5, 15.0, 1, None),
        Run("airflow/pipeline", "warm-up", 99.0, 99.0, 1, None),
    ]
    summary = orchestrator_overhead.summarise(runs, ["airflow"])
    assert summary["overheads"]["airflow"]["overhead"] == pytest.approx(0.05)
    assert summary["overheads"]["airflow"]["paired_overhead"] == pytest.approx(0.05)
    failed = [*runs[:2], Run("airflow/pipeline", "measured", 1.0, 1.0, 1, "wrong output")]
    summary = orchestrator_overhead.summarise(failed, ["airflow"])
    assert summary["medians"]["airflow/pipeline"]["status"] == "FAILED"
    assert "airflow" not in summary["overheads"]


def test_unknown_orchestrators_are_refused() -> None:
    with pytest.raises(SystemExit):
        orchestrator_overhead.parse_args(["--orchestrators", "luigi"])
    assert orchestrator_overhead.parse_args([]).rows == 1_000_000


def test_a_tiny_round_runs_every_contestant_and_verifies_the_output(tmp_path: Path) -> None:
    results_json = tmp_path / "overhead.json"
    exit_code = orchestrator_overhead.main(
        [
            *("--rows", str(ROWS), "--warmups", "0", "--runs", "1"),
            *("--orchestrators", "airflow", "--data-dir", str(tmp_path / "data")),
            *("--work-dir", str(tmp_path / "work"), "--json", str(results_json)),
        ]
    )
    assert exit_code == 0
    results = json.loads(results_json.read_text())
    statuses = {name: m["status"] for name, m in results["medians"].items()}
    assert statuses == {"plain": "ok", "airflow/noop": "ok", "airflow/pipeline": "ok"}
    assert set(results["overheads"]) == {"airflow"}
    assert results["overheads"]["airflow"]["startup_seconds"] > 0
    # The pipeline's own time is read from omconnect's and the operator's summary lines.
    assert results["medians"]["plain"]["inner_seconds_median"] > 0
    assert results["medians"]["airflow/pipeline"]["inner_seconds_median"] > 0
    assert "| airflow |" in results_json.with_suffix(".md").read_text()

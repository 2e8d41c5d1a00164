"""benchmarks/serve_load.py: the jitter and percentile arithmetic, and one tiny real round
(two continuous pipelines, a few seconds of requests) that writes its results."""

from __future__ import annotations

import json
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
# benchmarks/ is a folder of scripts that import each other by plain name, as when run.
sys.path.insert(0, str(BENCHMARKS))

import serve_load  # noqa: E402


def test_jitter_is_the_start_less_its_minute_tick() -> None:
    def status(mode: str, *started: str) -> dict[str, object]:
        runs = [{"started": s, "ended": s} for s in started]
        return {"status": {"mode": mode, "runs": runs}}

    statuses = {
        "a": status("scheduled", "2025-01-01T10:00:00.250+00:00", "2025-01-01T10:01:01.500+00:00"),
        "b": status("continuous", "2025-01-01T10:00:30.000+00:00"),
    }
    assert serve_load.jitters(statuses) == [0.25, 1.5]
    assert serve_load.run_counts(statuses) == (2, 2)
    summary = serve_load.percentiles([float(n) for n in range(1, 101)])
    assert (summary["count"], summary["p50"], summary["p99"], summary["max"]) == (100, 51, 100, 100)
    assert serve_load.percentiles([])["p99"] is None


def test_a_tiny_round_measures_the_api_and_idle_cpu(tmp_path: Path) -> None:
    results_json = tmp_path / "serve_load.json"
    exit_code = serve_load.main(
        [
            *("--scheduled", "0", "--continuous", "2", "--rate", "20"),
            *("--load-seconds", "1.5", "--idle-seconds", "1"),
            *("--work-dir", str(tmp_path / "work"), "--json", str(results_json)),
        ]
    )
    assert exit_code == 0
    results = json.loads(results_json.read_text())
    assert results["api"]["errors"] == 0
    assert results["api"]["all_ms"]["count"] == 30
    assert results["api"]["expand_ms"]["count"] == 3
    assert results["idle_cpu"]["percent_of_core"] >= 0
    assert results["targets"]["jitter_p99_seconds"]["met"] is None, "nothing was scheduled"
    assert results["failed_pipelines"] == []
    assert "| all |" in results_json.with_suffix(".md").read_text()

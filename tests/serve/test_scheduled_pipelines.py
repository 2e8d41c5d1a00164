"""Scheduled pipelines under ``serve``: cron ticks, no overlapping runs, pause and restart.

The schedules are real cron expressions evaluated by the production code; only the clock they
are evaluated against runs faster (``ScaledClock``), so a ``* * * * *`` pipeline ticks every
real second (speed 60) instead of every minute.
"""

from __future__ import annotations

import itertools
import time
from datetime import UTC, datetime
from pathlib import Path

from omconnect.runtime.serve import ScaledClock
from tests.support.served_worker import (
    ServedWorker,
    sink_ids,
    wait_until,
    write_orders,
    write_pipeline,
)


def test_folder_with_a_continuous_and_a_scheduled_pipeline(tmp_path: Path) -> None:
    folder = tmp_path / "pipelines"
    write_orders(tmp_path / "live-in" / "a.csv", range(1, 4))
    write_orders(tmp_path / "batch-in" / "a.csv", range(10, 13))
    write_pipeline(folder, "live", tmp_path, tmp_path / "live-in")
    write_pipeline(folder, "batch", tmp_path, tmp_path / "batch-in", schedule="* * * * *")
    clock = ScaledClock(speed=60)

    with ServedWorker(folder, clock=clock) as worker:
        first = worker.status("batch")
        assert first["mode"] == "scheduled" and first["schedule"] == "* * * * *"
        assert first["state"] == "SCHEDULED" and first["runs"] == []
        next_run = datetime.fromisoformat(first["next_run"])
        assert next_run.second == 0 and next_run.microsecond == 0  # a minute boundary, UTC
        assert next_run.utcoffset() is not None and next_run.utcoffset().total_seconds() == 0
        assert worker.status("live")["state"] == "RUNNING"

        wait_until(lambda: sink_ids(tmp_path / "out" / "live") == [1, 2, 3], what="live rows")
        wait_until(lambda: sink_ids(tmp_path / "out" / "batch") == [10, 11, 12], what="1st tick")
        ran = wait_until(
            lambda: (
                (s := worker.status("batch"))["runs"]
                and s["runs"][0]["result"] == "succeeded"
                and s
            ),
            what="the first run to end",
        )
        assert ran["runs"][0]["records_written"] == 3
        assert datetime.fromisoformat(ran["runs"][0]["started"]) <= datetime.fromisoformat(
            ran["runs"][0]["ended"]
        )

        write_orders(tmp_path / "batch-in" / "b.csv", range(13, 15))
        wait_until(
            lambda: sink_ids(tmp_path / "out" / "batch") == [10, 11, 12, 13, 14],
            what="the next tick to deliver the new file",
        )
        status = wait_until(
            lambda: (s := worker.status("batch"))["state"] == "SCHEDULED" and s, what="idle"
        )
        assert len(status["runs"]) >= 2
        assert {run["result"] for run in status["runs"]} == {"succeeded"}
        assert status["counters"]["records_read"] == 5  # each row read by exactly one run
        assert worker.status("live")["state"] == "RUNNING"
        metrics = worker.text("/metrics")
        assert 'omconnect_records_written_total{pipeline="batch"} 5' in metrics
        assert 'omconnect_pipeline_up{pipeline="batch",state="SCHEDULED"} 1' in metrics


def test_ticks_during_a_run_are_skipped_never_overlapped(tmp_path: Path) -> None:
    folder = tmp_path / "pipelines"
    write_orders(tmp_path / "in" / "a.csv", range(1, 4))
    write_pipeline(folder, "batch", tmp_path, tmp_path / "in", schedule="* * * * *")
    # A tick every 20 ms of real time: every run outlasts a few ticks.
    with ServedWorker(folder, clock=ScaledClock(speed=3000)) as worker:
        status = wait_until(
            lambda: (
                (s := worker.status("batch"))["skipped_ticks"] > 0
                and len([r for r in s["runs"] if r["ended"]]) >= 3
                and s
            ),
            what="skipped ticks",
        )
        runs = [r for r in status["runs"] if r["ended"]]
        for before, after in itertools.pairwise(runs):
            assert datetime.fromisoformat(after["started"]) >= datetime.fromisoformat(
                before["ended"]
            ), "two runs of one pipeline overlapped"
        assert 'omconnect_pipeline_skipped_ticks_total{pipeline="batch"} ' in worker.text(
            "/metrics"
        )
    assert sink_ids(tmp_path / "out" / "batch") == [1, 2, 3]


def test_paused_schedule_skips_ticks_and_restart_runs_at_once(tmp_path: Path) -> None:
    folder = tmp_path / "pipelines"
    write_orders(tmp_path / "in" / "a.csv", range(1, 4))
    # Yearly, on the real clock: nothing runs unless restarted.
    write_pipeline(folder, "yearly", tmp_path, tmp_path / "in", schedule="@yearly")
    fast = tmp_path / "fast"
    write_orders(tmp_path / "fast-in" / "a.csv", range(1, 3))
    write_pipeline(fast, "minutely", tmp_path, tmp_path / "fast-in", schedule="* * * * *")

    with ServedWorker(folder) as worker:
        assert worker.status("yearly")["state"] == "SCHEDULED"
        worker.json("POST", "/pipelines/yearly/restart", expect=202)
        wait_until(lambda: sink_ids(tmp_path / "out" / "yearly") == [1, 2, 3], what="run now")
        status = wait_until(
            lambda: (s := worker.status("yearly"))["state"] == "SCHEDULED" and s, what="idle"
        )
        assert [run["result"] for run in status["runs"]] == ["succeeded"]
        assert status["next_run"].startswith(f"{datetime.now(UTC).year + 1}-01-01T00:00:00")

    with ServedWorker(fast, clock=ScaledClock(speed=60)) as worker:
        worker.json("PUT", "/pipelines/minutely/pause", expect=202)
        wait_until(lambda: worker.status("minutely")["state"] == "PAUSED", what="PAUSED")
        time.sleep(1.5)  # at least one tick passes while paused
        paused = worker.status("minutely")
        assert paused["runs"] == [] and paused["next_run"] is None
        assert sink_ids(tmp_path / "out" / "minutely") == []
        worker.json("PUT", "/pipelines/minutely/resume", expect=202)
        wait_until(lambda: sink_ids(tmp_path / "out" / "minutely") == [1, 2], what="after resume")

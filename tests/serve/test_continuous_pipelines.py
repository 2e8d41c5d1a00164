"""Continuous pipelines under ``serve``: delivery, status, metrics, offsets, pause/resume,
restart, and restart with backoff after a failure."""

from __future__ import annotations

import time
from pathlib import Path

from tests.support.served_worker import (
    ServedWorker,
    sink_ids,
    wait_until,
    write_orders,
    write_pipeline,
)


def test_continuous_pipeline_delivers_rows_and_reports_them(tmp_path: Path) -> None:
    source = tmp_path / "in"
    write_orders(source / "a.csv", range(1, 4))
    write_pipeline(tmp_path / "pipelines", "orders", tmp_path, source)
    out = tmp_path / "out" / "orders"

    with ServedWorker(tmp_path / "pipelines") as worker:
        assert worker.json("GET", "/health") == {"status": "ok"}
        assert worker.json("GET", "/pipelines") == ["orders"]
        wait_until(lambda: sink_ids(out) == [1, 2, 3], what="rows in the sink")
        status = wait_until(
            lambda: (s := worker.status("orders"))["counters"]["records_written"] == 3 and s,
            what="counters",
        )
        assert status["state"] == "RUNNING"
        assert status["mode"] == "continuous"
        assert status["counters"]["records_read"] == 3
        assert status["counters"]["records_published"] == 3
        assert status["last_run"]["result"] == "running"

        metrics = worker.text("/metrics")
        assert 'omconnect_records_read_total{pipeline="orders"} 3' in metrics
        assert 'omconnect_records_published_total{pipeline="orders"} 3' in metrics
        assert 'omconnect_records_written_total{pipeline="orders"} 3' in metrics
        assert 'omconnect_dead_letters_total{pipeline="orders"} 0' in metrics
        assert 'omconnect_pipeline_up{pipeline="orders",state="RUNNING"} 1' in metrics
        assert "omconnect_build_info{" in metrics

        def offsets_committed() -> list[dict[str, object]] | None:
            entries = worker.json("GET", "/pipelines/orders/offsets")["offsets"]
            sink = [e for e in entries if e["kind"] == "sink"]
            return entries if sink and sink[0]["offset"] == {"offset": 3} else None

        entries = wait_until(offsets_committed, what="committed offsets")
        source_entries = [e for e in entries if e["kind"] == "source"]
        assert [e["partition"]["file"] for e in source_entries] == [f"{source}/a.csv"]
        assert source_entries[0]["offset"]["row"] == 3

        page = worker.text("/")
        assert "<table>" in page and "orders" in page and "RUNNING" in page

    # The clean stop at shutdown lost nothing and wrote nothing twice.
    assert sink_ids(out) == [1, 2, 3]


def test_pause_stops_delivery_until_resume(tmp_path: Path) -> None:
    source = tmp_path / "in"
    write_orders(source / "a.csv", range(1, 4))
    write_pipeline(tmp_path / "pipelines", "orders", tmp_path, source)
    out = tmp_path / "out" / "orders"

    with ServedWorker(tmp_path / "pipelines") as worker:
        wait_until(lambda: sink_ids(out) == [1, 2, 3], what="first rows")
        paused = worker.json("PUT", "/pipelines/orders/pause", expect=202)
        assert paused["name"] == "orders"
        wait_until(lambda: worker.status("orders")["state"] == "PAUSED", what="PAUSED")
        assert worker.status("orders")["last_run"]["result"] == "stopped"

        write_orders(source / "b.csv", range(4, 6))
        time.sleep(1.0)  # ten source scan intervals: a running pipeline would have delivered
        assert sink_ids(out) == [1, 2, 3]
        assert worker.status("orders")["state"] == "PAUSED"
        assert 'omconnect_pipeline_up{pipeline="orders",state="PAUSED"} 0' in worker.text(
            "/metrics"
        )

        worker.json("PUT", "/pipelines/orders/resume", expect=202)
        wait_until(lambda: sink_ids(out) == [1, 2, 3, 4, 5], what="rows after resume")
        assert worker.status("orders")["state"] == "RUNNING"
        assert worker.status("orders")["counters"]["records_written"] == 5


def test_restart_stops_the_run_cleanly_and_starts_a_new_one(tmp_path: Path) -> None:
    source = tmp_path / "in"
    write_orders(source / "a.csv", range(1, 4))
    write_pipeline(tmp_path / "pipelines", "orders", tmp_path, source)
    out = tmp_path / "out" / "orders"

    with ServedWorker(tmp_path / "pipelines") as worker:
        wait_until(lambda: sink_ids(out) == [1, 2, 3], what="first rows")
        worker.json("POST", "/pipelines/orders/restart", expect=202)
        status = wait_until(
            lambda: (s := worker.status("orders"))["restarts"] == 1 and len(s["runs"]) == 2 and s,
            what="a second run",
        )
        assert [run["result"] for run in status["runs"]] == ["stopped", "running"]
        assert status["state"] == "RUNNING"

        write_orders(source / "b.csv", range(4, 6))
        wait_until(lambda: sink_ids(out) == [1, 2, 3, 4, 5], what="rows after restart")
        # The totals span both runs; the restarted run read only the new file.
        counters = worker.status("orders")["counters"]
        assert counters["records_read"] == 5
        assert 'omconnect_pipeline_restarts_total{pipeline="orders"} 1' in worker.text("/metrics")


def test_failed_pipeline_is_failed_then_restarted_with_backoff(tmp_path: Path) -> None:
    missing = tmp_path / "not-yet"
    write_pipeline(tmp_path / "pipelines", "orders", tmp_path, missing, pattern="*.csv")
    out = tmp_path / "out" / "orders"

    with ServedWorker(tmp_path / "pipelines", backoff_initial=0.3, backoff_max=2.0) as worker:
        failed = wait_until(
            lambda: (s := worker.status("orders"))["state"] == "FAILED" and s, what="FAILED"
        )
        # The error says where in the file and what is wrong, without a traceback.
        assert "orders.yaml:6: source.path: no files match" in failed["error"]
        assert failed["error"].startswith(str(tmp_path / "pipelines" / "orders.yaml"))
        assert "Traceback" not in failed["error"]
        assert failed["last_run"]["result"] == "failed"
        assert 'omconnect_pipeline_up{pipeline="orders",state="FAILED"} 0' in worker.text(
            "/metrics"
        )
        # Retried with backoff while still failing: 0.3 s, then 0.6 s...
        wait_until(lambda: worker.status("orders")["restarts"] >= 2, what="retries")

        write_orders(missing / "a.csv", range(1, 3))
        wait_until(lambda: sink_ids(out) == [1, 2], what="rows once the folder exists")
        status = worker.status("orders")
        assert status["state"] == "RUNNING"
        assert status["error"] is None

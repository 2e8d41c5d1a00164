"""``GET /metrics`` as Prometheus reads it: parsed by prometheus_client's own parsers, the
metric names and labels of earlier releases, OpenMetrics when the scraper asks for it."""

from __future__ import annotations

from pathlib import Path

from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics
from prometheus_client.parser import text_string_to_metric_families

from tests.support.served_worker import (
    ServedWorker,
    sink_ids,
    wait_until,
    write_orders,
    write_pipeline,
)

SAMPLES = {
    "omconnect_build_info": {"version", "python"},
    "omconnect_records_read_total": {"pipeline"},
    "omconnect_records_published_total": {"pipeline"},
    "omconnect_records_consumed_total": {"pipeline"},
    "omconnect_records_written_total": {"pipeline"},
    "omconnect_dead_letters_total": {"pipeline"},
    "omconnect_pipeline_up": {"pipeline", "state"},
    "omconnect_pipeline_restarts_total": {"pipeline"},
    "omconnect_pipeline_skipped_ticks_total": {"pipeline"},
}


def test_metrics_parse_with_the_same_names_and_labels(tmp_path: Path) -> None:
    write_orders(tmp_path / "in" / "a.csv", range(1, 4))
    folder = tmp_path / "pipelines"
    write_pipeline(folder, "orders", tmp_path, tmp_path / "in")
    write_pipeline(folder, "batch", tmp_path, tmp_path / "in", schedule="@yearly")

    with ServedWorker(folder) as worker:
        wait_until(lambda: sink_ids(tmp_path / "out" / "orders") == [1, 2, 3], what="delivery")
        status, headers, body = worker.request("GET", "/metrics")
        assert status == 200 and headers["Content-Type"].startswith("text/plain")
        samples = [s for f in text_string_to_metric_families(body.decode()) for s in f.samples]
        found = {s.name: set(s.labels) for s in samples}
        assert SAMPLES.items() <= found.items()  # the earlier names and labels are kept
        values = {
            (s.name, s.labels.get("pipeline"), s.labels.get("state")): s.value for s in samples
        }
        assert values["omconnect_records_written_total", "orders", None] == 3
        assert values["omconnect_pipeline_up", "orders", "RUNNING"] == 1
        assert values["omconnect_pipeline_up", "batch", "SCHEDULED"] == 1

        accept = {"Accept": "application/openmetrics-text; version=1.0.0"}
        status, headers, body = worker.request("GET", "/metrics", headers=accept)
        assert headers["Content-Type"].startswith("application/openmetrics-text")
        families = {f.name: f.type for f in openmetrics(body.decode())}
        assert families["omconnect_records_read"] == "counter"
        assert families["omconnect_pipeline_up"] == "gauge"

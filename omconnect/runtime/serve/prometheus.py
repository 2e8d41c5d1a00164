"""The ``GET /metrics`` page: pipeline counters for Prometheus, written by prometheus-client.

Why prometheus-client: it is Prometheus' own Python library, so escaping, metric types and
the exposition formats (the text format, and OpenMetrics when the scraper asks for it in
``Accept``) are what Prometheus parses. The collector reads the supervisor's pipeline states
at each scrape rather than keeping counters of its own, and lives in a registry of the
worker's own, not the process-wide default one, so two workers in one process never mix.

Counters are totals since the worker started, summed over every run of the pipeline.
``omconnect_pipeline_up`` has one series per pipeline labelled with its current state; its
value is 1 when the state is RUNNING or SCHEDULED, else 0.

Freshness gauges (``serve.freshness``) describe the latest run; a gauge whose value is not
known (no record read yet, a source without event times, a broker without end offsets) has
no series. ``omconnect_pipeline_freshness`` is a state set: for a running pipeline, one
series per state (active, idle, stalled, lagging), 1 for the current one, so an alert is
``omconnect_pipeline_freshness{state="stalled"} == 1``.
"""

from __future__ import annotations

import platform
from collections.abc import Callable, Iterator, Sequence

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder

from omconnect import __version__
from omconnect.runtime.serve.freshness import Freshness, FreshnessReport
from omconnect.runtime.serve.pipeline_state import PipelineStatus

# (metric name, counter attribute, help text)
_COUNTERS = (
    ("omconnect_records_read_total", "records_read", "Records read from the source."),
    ("omconnect_records_published_total", "records_published", "Records the broker acknowledged."),
    ("omconnect_records_consumed_total", "records_consumed", "Records consumed by the sink."),
    ("omconnect_records_written_total", "records_written", "Records handed to the sink."),
    ("omconnect_dead_letters_total", "dead_letters", "Records sent to the dead letter topic."),
)


class PipelineCollector:
    """A prometheus-client collector over the statuses ``statuses`` returns at each scrape."""

    def __init__(self, statuses: Callable[[], Sequence[PipelineStatus]]) -> None:
        self._statuses = statuses

    def collect(self) -> Iterator[Metric]:
        statuses = self._statuses()
        build = GaugeMetricFamily(
            "omconnect_build_info",
            "The omconnect version of this worker.",
            labels=["version", "python"],
        )
        build.add_metric([__version__, platform.python_version()], 1)
        yield build
        for name, attribute, text in _COUNTERS:
            counter = CounterMetricFamily(name, text, labels=["pipeline"])
            for status in statuses:
                counter.add_metric([status.name], getattr(status.counters, attribute))
            yield counter
        up = GaugeMetricFamily(
            "omconnect_pipeline_up",
            "1 when the pipeline is running or scheduled.",
            labels=["pipeline", "state"],
        )
        restarts = CounterMetricFamily(
            "omconnect_pipeline_restarts_total", "Restarts of the pipeline.", labels=["pipeline"]
        )
        skipped = CounterMetricFamily(
            "omconnect_pipeline_skipped_ticks_total",
            "Schedule ticks skipped because the previous run was still going.",
            labels=["pipeline"],
        )
        for status in statuses:
            up.add_metric([status.name, status.state.value], 1 if status.state.is_up else 0)
            restarts.add_metric([status.name], status.restarts)
            skipped.add_metric([status.name], status.skipped_ticks)
        yield from (up, restarts, skipped)
        yield from _freshness_metrics([(s.name, s.freshness) for s in statuses])


# (metric name, FreshnessReport attribute, help text)
_FRESHNESS_GAUGES = (
    (
        "omconnect_pipeline_seconds_since_last_record",
        "since_record",
        "Seconds since a source task last read a record (the sink's, without a source).",
    ),
    (
        "omconnect_pipeline_seconds_since_last_heartbeat",
        "since_heartbeat",
        "Seconds since the stalest task's last poll returned.",
    ),
    (
        "omconnect_pipeline_event_to_ack_lag_seconds",
        "event_to_ack",
        "Source event time to broker ack, at the newest record of the latest batch.",
    ),
    (
        "omconnect_pipeline_event_to_flush_lag_seconds",
        "event_to_flush",
        "Source event time to sink flush, at the newest record of the latest flush.",
    ),
    (
        "omconnect_pipeline_consumer_lag_messages",
        "consumer_lag",
        "Messages of the sink's partitions after its consumer group's committed offsets.",
    ),
)
_TASK_GAUGES = (
    (
        "omconnect_task_seconds_since_last_record",
        "since_record",
        "Seconds since the task last read a record.",
    ),
    (
        "omconnect_task_seconds_since_last_heartbeat",
        "since_heartbeat",
        "Seconds since the task's last poll returned.",
    ),
)


def _freshness_metrics(reports: Sequence[tuple[str, FreshnessReport]]) -> Iterator[Metric]:
    for name, attribute, text in _FRESHNESS_GAUGES:
        gauge = GaugeMetricFamily(name, text, labels=["pipeline"])
        for pipeline, report in reports:
            value = getattr(report, attribute)
            if value is not None:
                gauge.add_metric([pipeline], value)
        yield gauge
    for name, attribute, text in _TASK_GAUGES:
        gauge = GaugeMetricFamily(name, text, labels=["pipeline", "task"])
        for pipeline, report in reports:
            for task in report.tasks:
                value = getattr(task, attribute)
                if value is not None:
                    gauge.add_metric([pipeline, task.name], value)
        yield gauge
    states = GaugeMetricFamily(
        "omconnect_pipeline_freshness",
        "1 for the running pipeline's freshness state (active, idle, stalled, lagging).",
        labels=["pipeline", "state"],
    )
    for pipeline, report in reports:
        if report.state is not None:
            for state in Freshness:
                states.add_metric([pipeline, state.value], 1 if state is report.state else 0)
    yield states


def metrics_registry(statuses: Callable[[], Sequence[PipelineStatus]]) -> CollectorRegistry:
    """A registry of the worker's own whose one collector reads ``statuses`` at each scrape."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(PipelineCollector(statuses))
    return registry


def render_metrics(registry: CollectorRegistry, accept: str | None = None) -> tuple[bytes, str]:
    """The exposition of ``registry`` in the format ``accept`` (an ``Accept`` header) prefers,
    and its content type."""
    encoder, content_type = choose_encoder(accept or "")
    return encoder(registry), content_type

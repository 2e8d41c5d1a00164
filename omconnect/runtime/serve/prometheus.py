"""The ``GET /metrics`` page: pipeline counters for Prometheus, written by prometheus-client.

Why prometheus-client: it is Prometheus' own Python library, so escaping, metric types and
the exposition formats (the text format, and OpenMetrics when the scraper asks for it in
``Accept``) are what Prometheus parses. The collector reads the supervisor's pipeline states
at each scrape rather than keeping counters of its own, and lives in a registry of the
worker's own, not the process-wide default one, so two workers in one process never mix.

Counters are totals since the worker started, summed over every run of the pipeline.
``omconnect_pipeline_up`` has one series per pipeline labelled with its current state; its
value is 1 when the state is RUNNING or SCHEDULED, else 0.
"""

from __future__ import annotations

import platform
from collections.abc import Callable, Iterator, Sequence

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder

from omconnect import __version__
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

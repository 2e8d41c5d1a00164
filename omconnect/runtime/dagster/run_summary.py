"""What one run of a pipeline did, for an orchestrator to record: counts, schemas, positions.

Nothing here imports Dagster: ``summarise`` reads the run's ``PipelineMetrics``, the
pipeline's schema registry and its stored positions after the run, and the two checks say
whether the counts add up and whether the dead letters stay within a tolerance.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from omconnect.runtime.config.loader import LoadedPipeline
from omconnect.runtime.pipeline_positions import pipeline_offsets
from omconnect.runtime.state import open_state
from omconnect.runtime.state.schema_registry import HttpSchemaRegistry, SchemaRegistry
from omconnect.runtime.worker.metrics import PipelineMetrics

VALUE_SUFFIX = "-value"


@dataclass(frozen=True)
class SchemaVersion:
    """The latest registered value schema of one of the pipeline's topics."""

    topic: str
    schema_id: int
    version: int


@dataclass(frozen=True)
class RunSummary:
    """One run: its counters, what ran, the schemas of its topics and its stored positions
    (secrets masked), and how long it took in seconds."""

    pipeline: str
    metrics: PipelineMetrics
    duration: float
    ran_source: bool
    ran_sink: bool
    filtering: bool
    """Whether the run applied transforms (which may drop rows)."""
    schemas: list[SchemaVersion] = field(default_factory=list)
    positions: list[dict[str, Any]] = field(default_factory=list)

    @property
    def records_in(self) -> int:
        """The records this run took in: those its source tasks read, or, when it ran only
        a sink, those the sink consumed."""
        m = self.metrics
        return m.rows_polled if self.ran_source else m.rows_consumed

    @property
    def records_out(self) -> int:
        """The records this run delivered: written by its sink, else published to the topic."""
        m = self.metrics
        return m.rows_written if self.ran_sink else m.rows_published

    def row_count_check(self) -> tuple[bool, str]:
        """Whether records out == records in minus dead letters, and the rule applied. When
        the run applied transforms, which may drop rows (``filter``), records out may be
        fewer, never more."""
        expected = self.records_in - self.metrics.rows_dead_lettered
        if self.filtering:
            return (
                self.records_out <= expected,
                f"records out <= records in - dead letters = {expected}",
            )
        return (
            self.records_out == expected,
            f"records out == records in - dead letters = {expected}",
        )

    def dead_letter_check(self, tolerance: int) -> bool:
        """Whether the run sent at most ``tolerance`` records to the dead letter topic."""
        return self.metrics.rows_dead_lettered <= tolerance


async def summarise(
    loaded: LoadedPipeline, metrics: PipelineMetrics, ran_source: bool, ran_sink: bool
) -> RunSummary:
    """The summary of a run of ``loaded`` that just ended with ``metrics``."""
    duration = metrics.elapsed
    positions = await pipeline_offsets(loaded)
    return RunSummary(
        pipeline=loaded.config.name,
        metrics=metrics,
        duration=duration,
        ran_source=ran_source,
        ran_sink=ran_sink,
        # A pipeline with a source applies its transforms on the source side.
        filtering=bool(loaded.transforms) and (ran_source or loaded.source is None),
        schemas=topic_schemas(loaded),
        positions=[loaded.redactor.redact_value(entry) for entry in positions],
    )


def topic_schemas(loaded: LoadedPipeline) -> list[SchemaVersion]:
    """The latest value schema of each of the pipeline's topics that has one (none with a
    format that registers no schemas, or before the first run)."""
    cfg = loaded.config
    registry: SchemaRegistry | None
    if cfg.schema_registry:
        registry = HttpSchemaRegistry(cfg.schema_registry)
    else:
        registry = open_state(cfg.state).open_existing_schema_registry()
    if registry is None:
        return []
    try:
        found = []
        for subject in registry.subjects():
            topic = subject.removesuffix(VALUE_SUFFIX)
            if topic == subject or not _pipeline_topic(loaded, topic):
                continue
            latest = registry.latest(subject)
            if latest is not None:
                found.append(SchemaVersion(topic, latest[0], latest[1]))
        return found
    finally:
        close = getattr(registry, "close", None)
        if close is not None:  # an embedded registry's file or database session
            close()


def _pipeline_topic(loaded: LoadedPipeline, topic: str) -> bool:
    topics, pattern = loaded.config.sink_subscription
    return topic in topics or (pattern is not None and re.fullmatch(pattern, topic) is not None)

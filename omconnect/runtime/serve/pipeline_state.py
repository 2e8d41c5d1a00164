"""What ``serve`` knows about one pipeline: its state, its runs and its record counters.

States follow Kafka Connect's connector states, plus ``SCHEDULED`` for a cron pipeline idle
between two ticks:

* ``UNASSIGNED``: not started yet, or stopped because the worker is shutting down;
* ``RUNNING``: a run is in progress;
* ``SCHEDULED``: a ``schedule:`` pipeline waiting for its next tick (its last run did not fail);
* ``PAUSED``: stopped on request; nothing runs until it is resumed;
* ``STOPPED``: stopped on request, and its run has ended: nothing runs until it is resumed,
  and its offsets may be changed over the API (Kafka Connect's STOPPED);
* ``FAILED``: the last run failed; a continuous pipeline waits for its restart backoff, a
  scheduled one for its next tick. ``error`` says why, with secrets redacted.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from omconnect.runtime.serve.freshness import (
    DEFAULT_POLICY,
    FreshnessPolicy,
    FreshnessReport,
    freshness_report,
)
from omconnect.runtime.worker.metrics import PipelineMetrics


class PipelineState(enum.StrEnum):
    """The state of one supervised pipeline."""

    UNASSIGNED = "UNASSIGNED"
    RUNNING = "RUNNING"
    SCHEDULED = "SCHEDULED"
    PAUSED = "PAUSED"
    STOPPED = "STOPPED"
    FAILED = "FAILED"

    @property
    def is_up(self) -> bool:
        """Whether the pipeline is doing what it should (running, or waiting for its tick)."""
        return self in (PipelineState.RUNNING, PipelineState.SCHEDULED)


class RunResult(enum.StrEnum):
    """How one run of a pipeline ended."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    """A scheduled (``--once``) run delivered what was there; a continuous run ended by itself."""
    STOPPED = "stopped"
    """Stopped on request (pause, stop, restart, shutdown) after finishing what was in flight."""
    FAILED = "failed"


def utc_now() -> datetime:
    """The wall-clock time in UTC, as run records show it."""
    return datetime.now(UTC)


def iso(moment: datetime | None) -> str | None:
    """``moment`` as ISO 8601 with millisecond precision, or None."""
    return moment.isoformat(timespec="milliseconds") if moment is not None else None


@dataclass
class RunRecord:
    """One run of a pipeline. ``error`` is redacted; ``ended`` is None while it runs."""

    started: datetime
    ended: datetime | None = None
    result: RunResult = RunResult.RUNNING
    error: str | None = None
    records_written: int = 0

    def as_json(self) -> dict[str, Any]:
        return {
            "started": iso(self.started),
            "ended": iso(self.ended),
            "result": self.result.value,
            "error": self.error,
            "records_written": self.records_written,
        }


COUNTER_NAMES = (
    "records_read",
    "records_published",
    "records_consumed",
    "records_written",
    "dead_letters",
)


@dataclass
class PipelineCounters:
    """Record counters summed over every run of a pipeline since the worker started, and
    the metrics of the latest run (whose times say how fresh the data is)."""

    records_read: int = 0
    records_published: int = 0
    records_consumed: int = 0
    records_written: int = 0
    dead_letters: int = 0
    latest_run: PipelineMetrics | None = field(default=None, compare=False, repr=False)

    def plus(self, metrics: PipelineMetrics | None) -> PipelineCounters:
        """These totals with one run's live ``metrics`` added (a new object)."""
        if metrics is None:
            return replace(self)
        return PipelineCounters(
            records_read=self.records_read + metrics.rows_polled,
            records_published=self.records_published + metrics.rows_published,
            records_consumed=self.records_consumed + metrics.rows_consumed,
            records_written=self.records_written + metrics.rows_written,
            dead_letters=self.dead_letters + metrics.rows_dead_lettered,
            latest_run=metrics,
        )

    def as_json(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in COUNTER_NAMES}


@dataclass
class PipelineStatus:
    """A snapshot of one pipeline, as the HTTP API, the metrics and the status page show it."""

    name: str
    state: PipelineState
    mode: str
    """``continuous`` or ``scheduled``."""
    schedule: str | None
    description: str | None
    topic: str
    error: str | None
    next_run: datetime | None
    restarts: int
    skipped_ticks: int
    counters: PipelineCounters
    runs: list[RunRecord] = field(default_factory=list)
    """The most recent runs, oldest first."""
    freshness_policy: FreshnessPolicy = DEFAULT_POLICY
    """The thresholds ``freshness`` applies (``serve``'s, or the pipeline's own)."""

    @property
    def last_run(self) -> RunRecord | None:
        return self.runs[-1] if self.runs else None

    @property
    def freshness(self) -> FreshnessReport:
        """How fresh the latest run's data is (``serve.freshness``), as of now."""
        run = self.counters.latest_run
        running = self.state is PipelineState.RUNNING
        if run is None:
            return freshness_report(None, running)
        return freshness_report(run.times, running, run.source_done, self.freshness_policy)

    def as_json(self) -> dict[str, Any]:
        last = self.last_run
        return {
            "name": self.name,
            "state": self.state.value,
            "mode": self.mode,
            "schedule": self.schedule,
            "description": self.description,
            "topic": self.topic,
            "error": self.error,
            "next_run": iso(self.next_run),
            "restarts": self.restarts,
            "skipped_ticks": self.skipped_ticks,
            "last_run": last.as_json() if last is not None else None,
            "runs": [run.as_json() for run in self.runs],
            "counters": self.counters.as_json(),
            "freshness": self.freshness.as_json(),
        }

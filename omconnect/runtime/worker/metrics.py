"""Counters of one pipeline run, read by the progress display, the logs and ``serve``.

Besides counts, a run records when things last happened (``RunTimes``), so that ``serve``
can tell a source with nothing to read from one that is stuck. Everything is recorded per
batch or per poll, never per row: a few clock reads and a vectorised max of the batch's
event times.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections import deque
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc

if TYPE_CHECKING:
    from omconnect.runtime.brokers.base import TopicPartition

log = logging.getLogger("omconnect.metrics")

LAG_SAMPLE_SECONDS = 2.0
"""How often a sink measures its consumer lag (one end-offsets request to the broker)."""
LAG_SAMPLES = 4
"""How many consumer lag samples are kept to tell whether the lag grows."""


def newest_event_ms(timestamps: pa.Array | None) -> int | None:
    """The newest event time (epoch ms) of a batch's ``timestamps`` column, or None when the
    source set none."""
    if timestamps is None or len(timestamps) == 0:
        return None
    newest = pc.max(timestamps).as_py()
    return int(newest) if newest is not None else None


def _seconds_behind(event_ms: int) -> float:
    return max(0.0, time.time() - event_ms / 1000)


@dataclass
class TaskTimes:
    """When one task (``source-0``, ``sink-0``) last showed life.

    A *heartbeat* is a call that returned: the source task's ``poll`` (with records, or
    empty), or the sink consumer's ``poll`` (with messages, or after its timeout). A poll that
    raises, or is retried after a ``RetriableError``, is no heartbeat until one returns.
    Times are ``time.monotonic()``.
    """

    kind: str
    """``source`` or ``sink``."""
    started: float = field(default_factory=time.monotonic)
    last_heartbeat: float | None = None
    last_record: float | None = None
    heartbeats: int = 0

    def heartbeat(self, rows: int) -> None:
        """A poll returned ``rows`` records (0 for an empty poll)."""
        now = time.monotonic()
        self.last_heartbeat = now
        self.heartbeats += 1
        if rows:
            self.last_record = now


@dataclass
class RunTimes:
    """When the run last read, published and flushed, how far behind the source's event
    times it is, and how far its sink's consumer group is behind the topics' ends.

    Lags are measured at the newest record of the latest batch with event times: from its
    event time (``Record.timestamp``, set by sources that know one: CDC ``ts_ms``, device
    readings) to the broker's ack (``event_to_ack``) and to the sink's flush
    (``event_to_flush``). A source that sets no event time leaves both None; a sink-only run
    measures from the message timestamps, which are the event times of the run that
    published them.
    """

    tasks: dict[str, TaskTimes] = field(default_factory=dict)
    event_times: bool = False
    """The source set event times on what it read."""
    last_ack: float | None = None
    event_to_ack: float | None = None
    last_flush: float | None = None
    event_to_flush: float | None = None
    consumer_lag: int | None = None
    """Messages of the sink's partitions after its group's committed offsets."""
    lag_samples: deque[int] = field(default_factory=lambda: deque(maxlen=LAG_SAMPLES))
    _lag_sampled: float = 0.0
    _unflushed_event_ms: int | None = None

    def task(self, name: str) -> TaskTimes:
        """The times of task ``name`` (``source-0``), registered now on first use."""
        found = self.tasks.get(name)
        if found is None:
            found = self.tasks[name] = TaskTimes(name.partition("-")[0])
        return found

    def acked(self, event_ms: int | None) -> None:
        """The broker acknowledged a batch whose newest event time is ``event_ms``."""
        self.last_ack = time.monotonic()
        if event_ms is not None:
            self.event_times = True
            self.event_to_ack = _seconds_behind(event_ms)

    def put(self, timestamps: pa.Array | None) -> None:
        """The sink task was given a batch with these message timestamps."""
        newest = newest_event_ms(timestamps)
        if newest is not None and (self._unflushed_event_ms or 0) < newest:
            self._unflushed_event_ms = newest

    def flushed(self) -> None:
        """The sink made everything it was given durable."""
        self.last_flush = time.monotonic()
        has_source = any(task.kind == "source" for task in self.tasks.values())
        newest, self._unflushed_event_ms = self._unflushed_event_ms, None
        if newest is not None and (self.event_times or not has_source):
            self.event_to_flush = _seconds_behind(newest)

    def consumer_lag_sampled(
        self,
        ends: Mapping[TopicPartition, int],
        owned: Collection[TopicPartition],
        committed: Mapping[TopicPartition, int],
    ) -> None:
        """Record the lag of the ``owned`` partitions: their ``ends`` less the group's
        ``committed`` offsets (0 for a partition never committed)."""
        self._lag_sampled = time.monotonic()
        if not owned:
            return
        lag = sum(max(0, ends.get(tp, 0) - committed.get(tp, 0)) for tp in owned)
        self.consumer_lag = lag
        self.lag_samples.append(lag)

    @property
    def lag_growing(self) -> bool:
        """The consumer lag rose at every one of the last ``LAG_SAMPLES`` samples."""
        samples = list(self.lag_samples)
        return len(samples) == LAG_SAMPLES and all(a < b for a, b in itertools.pairwise(samples))


@dataclass
class PipelineMetrics:
    """Monotonic counters; written by the loops on the event loop thread only."""

    pipeline: str
    started: float = field(default_factory=time.monotonic)
    rows_polled: int = 0
    rows_published: int = 0
    bytes_published: int = 0
    rows_consumed: int = 0
    rows_written: int = 0
    rows_dead_lettered: int = 0
    source_commits: int = 0
    source_rewinds: int = 0
    sink_commits: int = 0
    source_done: bool = False
    sink_done: bool = False
    times: RunTimes = field(default_factory=RunTimes)

    @property
    def elapsed(self) -> float:
        return max(1e-9, time.monotonic() - self.started)

    def counts(self) -> dict[str, int]:
        """Every counter by the name an orchestrator reports it under (``records_read``,
        ``bytes_published``, ...): Airflow's XCom, Dagster's materialisation metadata."""
        return {
            "records_read": self.rows_polled,
            "records_published": self.rows_published,
            "bytes_published": self.bytes_published,
            "records_consumed": self.rows_consumed,
            "records_written": self.rows_written,
            "dead_letters": self.rows_dead_lettered,
            "source_commits": self.source_commits,
            "sink_commits": self.sink_commits,
        }

    def summary(self) -> str:
        rate = self.rows_written / self.elapsed if self.rows_written else 0.0
        return (
            f"pipeline={self.pipeline} read={self.rows_polled} published={self.rows_published} "
            f"written={self.rows_written} dead_lettered={self.rows_dead_lettered} "
            f"elapsed={self.elapsed:.1f}s write_rate={rate:,.0f} rows/s"
        )

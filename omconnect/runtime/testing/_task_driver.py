"""Driving connector tasks the way the runtime does, without a broker: build the connector from
its registered name and a config dict, validate it, start a task, poll or put, stop."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

from omconnect.connectors.api import (
    AsyncSourceTask,
    ConnectorSpec,
    Position,
    Record,
    RecordBatch,
    SinkConnector,
    SinkTask,
    SourceConnector,
    SourceTask,
    TaskContext,
    TopicPartition,
    lookup,
)
from omconnect.runtime.testing._memory_offsets import CollectingErrorReporter, MemoryOffsetReader
from omconnect.schemas.record import partition_id

# A source that never returns None under ``once`` would hang a test: stop it after this.
MAX_POLLS = 100_000


def spec_class(kind: Literal["source", "sink"], name: str) -> type[ConnectorSpec]:
    """The registered config spec of the ``kind`` called ``name``."""
    return lookup(kind, name).spec


class SourceDriver:
    """One source task, started from ``config`` with ``offsets`` (sync and async tasks alike)."""

    def __init__(
        self,
        name: str,
        config: Mapping[str, Any],
        offsets: MemoryOffsetReader | None = None,
        once: bool = True,
        project: Callable[[RecordBatch], RecordBatch] | None = None,
    ) -> None:
        """``project``: what the tests see of each emitted batch (the rows inside a change
        event, for a CDC source); by default the batch itself."""
        self._project = project
        self.longest_poll = 0.0
        """The seconds the longest ``poll`` so far took."""
        registration = lookup("source", name)
        spec = registration.spec.model_validate(dict(config))
        connector = registration.cls(spec)
        assert isinstance(connector, SourceConnector)
        connector.validate()
        self.offsets = offsets if offsets is not None else MemoryOffsetReader()
        self.errors = CollectingErrorReporter()
        self.context = TaskContext(
            pipeline="conformance",
            task_id=0,
            offsets=self.offsets,
            errors=self.errors,
            once=once,
            logger=logging.getLogger("omconnect.testing"),
        )
        task_config = connector.task_configs(1)[0]
        self.task: SourceTask | AsyncSourceTask = connector.task_class()
        self._loop = asyncio.new_event_loop() if isinstance(self.task, AsyncSourceTask) else None
        self._call(self.task.start(task_config, self.context))

    def poll(self) -> list[RecordBatch] | None:
        """One poll, as batches (a list of batches as it is, a list of records grouped into
        batches), or None.

        Raises:
            AssertionError: the task returned something ``poll`` may not return.
        """
        started = time.monotonic()
        result = self._call(self.task.poll())
        self.longest_poll = max(self.longest_poll, time.monotonic() - started)
        if result is None:
            return None
        if isinstance(result, RecordBatch):
            batches = [result]
        else:
            assert isinstance(result, list), f"poll returned a {type(result).__name__}"
            if all(isinstance(item, RecordBatch) for item in result):
                batches = list(result)
            else:
                assert all(isinstance(item, Record) for item in result), (
                    "poll returned a list mixing RecordBatch and Record (or other objects)"
                )
                batches = RecordBatch.from_records(result)
        if self._project is not None:
            batches = [self._project(batch) for batch in batches]
        return batches

    def read_to_end(self) -> list[RecordBatch]:
        """Every batch until the task returns None (run under ``once``)."""
        batches: list[RecordBatch] = []
        for _ in range(MAX_POLLS):
            polled = self.poll()
            if polled is None:
                return batches
            batches.extend(polled)
        raise AssertionError(f"the source still returned data after {MAX_POLLS} polls")

    def poll_for(self, rows: int, seconds: float) -> list[RecordBatch]:
        """Batches until they hold ``rows`` rows or ``seconds`` passed, or, under ``once``,
        until the task returns None (a live source, driven as ``omconnect run`` does)."""
        batches: list[RecordBatch] = []
        deadline = time.monotonic() + seconds
        while sum(b.num_rows for b in batches) < rows and time.monotonic() < deadline:
            polled = self.poll()
            if polled is None and self.context.once:
                break
            batches.extend(polled or ())
        return batches

    def commit(self, positions: Sequence[Position]) -> None:
        """Store ``positions`` and tell the task, as the runtime does after broker acks."""
        self.offsets.commit(positions)
        self._call(self.task.commit(positions))

    def stop(self) -> None:
        self._call(self.task.stop())
        if self._loop is not None:
            self._loop.close()

    def _call(self, result: Any) -> Any:
        if self._loop is not None:
            return self._loop.run_until_complete(result)
        return result


class SinkDriver:
    """One sink task started from ``config``, driven as the runtime drives it.

    ``put_all`` opens the topic partitions of a batch before its first rows (``open``), as
    the runtime does on assignment; ``close`` takes partitions away; ``flush`` passes the
    positions of the open partitions only (the runtime forgets revoked ones) and returns what
    the task says is durable.

    Attributes:
        opened: the partitions the task owns now, in the order they were opened.
        flushed: the positions passed to the last ``flush``.
        commit_requests: how many times the task called ``context.request_commit()``.
    """

    def __init__(self, name: str, config: Mapping[str, Any]) -> None:
        registration = lookup("sink", name)
        spec = registration.spec.model_validate(dict(config))
        connector = registration.cls(spec)
        assert isinstance(connector, SinkConnector)
        connector.validate()
        self.errors = CollectingErrorReporter()
        self.commit_requests = 0
        self.opened: list[TopicPartition] = []
        self.flushed: list[Position] = []
        self.context = TaskContext(
            pipeline="conformance",
            task_id=0,
            offsets=MemoryOffsetReader(),
            errors=self.errors,
            logger=logging.getLogger("omconnect.testing"),
            on_commit_request=self._count_commit_request,
        )
        self.task: SinkTask = connector.task_class()
        self.task.start(connector.task_configs(1)[0], self.context)

    def open(self, partitions: Sequence[TopicPartition]) -> None:
        """Give the task ``partitions`` (those it does not own yet)."""
        new = list(dict.fromkeys(tp for tp in partitions if tp not in self.opened))
        if new:
            self.task.open(new)
            self.opened.extend(new)

    def close(self, partitions: Sequence[TopicPartition]) -> None:
        """Take ``partitions`` away, as a rebalance does (no flush before it)."""
        self.task.close(list(partitions))
        self.opened = [tp for tp in self.opened if tp not in partitions]

    def put_all(self, batches: Sequence[RecordBatch]) -> None:
        for batch in batches:
            self.open(partitions_of(batch))
            self.task.put(batch)

    def flush(self, batches: Sequence[RecordBatch] = ()) -> list[Position]:
        """Flush, passing the last positions of ``batches`` like the runtime does (none of a
        closed partition); returns the positions the task says are durable (None: all
        passed)."""
        last: dict[str, Position] = {}
        for batch in batches:
            for position in batch.positions:
                tp = _topic_partition(position)
                if tp is None or tp in self.opened:
                    last[partition_id(position.partition)] = position
        positions = self.flushed = list(last.values())
        durable = self.task.flush(positions)
        return positions if durable is None else list(durable)

    def stored_positions(self) -> list[Position]:
        return list(self.task.stored_positions())

    def stop(self, *, close: bool = True) -> None:
        """End the task as a run ends: ``close`` the open partitions, then ``stop``.
        ``close=False`` ends it as after a failure (``stop`` only)."""
        if close and self.opened:
            self.close(list(self.opened))
        self.task.stop()

    def _count_commit_request(self) -> None:
        self.commit_requests += 1


def partitions_of(batch: RecordBatch) -> list[TopicPartition]:
    """The topic partitions a sink batch holds rows of: its ``topic``/``partition``, else
    those its marks name."""
    if batch.topic is not None and batch.partition is not None:
        return [TopicPartition(batch.topic, batch.partition)]
    found = (_topic_partition(m.position) for m in batch.marks)
    return list(dict.fromkeys(tp for tp in found if tp is not None))


def _topic_partition(position: Position) -> TopicPartition | None:
    partition = position.partition
    if isinstance(partition.get("topic"), str) and isinstance(partition.get("partition"), int):
        return TopicPartition(partition["topic"], partition["partition"])
    return None

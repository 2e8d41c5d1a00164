"""Toy connectors written against the public connector API only, as a third party would.

``toy-streams`` emits numbered rows for several streams (tables), with versions per key and
optional deletes; ``toy-collect`` records everything a sink task hears; ``toy-txn-sink`` stores
its positions with its writes, as a SQL sink would, and can fail its flushes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa

from omconnect.connectors.api import (
    ConnectorError,
    ConnectorSpec,
    Position,
    PositionMark,
    RecordBatch,
    RetriableError,
    SinkConnector,
    SinkTask,
    SourceConnector,
    SourceTask,
    TaskContext,
    TopicPartition,
    register,
)
from omconnect.schemas import types as t
from omconnect.schemas.schema import Schema

VALUE_SCHEMA = Schema(
    "toy.row",
    (
        t.Field("id", t.int64(), nullable=False),
        t.Field("key", t.string(), nullable=False),
        t.Field("version", t.int64(), nullable=False),
    ),
    key_fields=("key",),
)


class ToyStreamsSpec(ConnectorSpec):
    streams: list[str] = []
    """Stream names; rows go to ``<topic>.<stream>`` (none: the base topic)."""
    rows: int = 10
    """Rows per stream."""
    keys: int = 0
    """Row i has key ``k<i % keys>`` and version ``i // keys`` (0: key ``k<i>``)."""
    batch_rows: int = 5
    """Rows per polled batch."""
    deletes: list[int] = []
    """Ids emitted as tombstones (a key and no value) instead of rows."""
    declare: bool = False
    """Declare the streams up front (``SourceConnector.streams``)."""
    absolute_topic: str | None = None
    """Also emit one heartbeat row per poll to this absolute topic."""
    fail_at_row: int | None = None
    """Fail the poll (not retriably) once this many rows of a stream were emitted."""


class ToyStreamsTask(SourceTask):
    def start(self, config: ConnectorSpec, context: TaskContext) -> None:
        assert isinstance(config, ToyStreamsSpec)
        self.config = config
        self.streams = config.streams or [""]
        self.next = {}
        for stream in self.streams:
            last = context.offsets.get({"stream": stream})
            self.next[stream] = int(last["row"]) if last else 0

    def poll(self) -> list[RecordBatch] | None:
        out = []
        for stream in self.streams:
            start = self.next[stream]
            if self.config.fail_at_row is not None and start >= self.config.fail_at_row:
                raise RuntimeError(f"the source broke at row {start}")
            end = min(start + self.config.batch_rows, self.config.rows)
            if start >= end:
                continue
            out.append(self._batch(stream, start, end))
            self.next[stream] = end
        if out and self.config.absolute_topic:
            heartbeat = self._batch("", 0, 1)
            out.append(
                RecordBatch(heartbeat.values, VALUE_SCHEMA, (), topic=self.config.absolute_topic)
            )
        return out or None

    def _batch(self, stream: str, start: int, end: int) -> RecordBatch:
        ids = np.arange(start, end, dtype=np.int64)
        keys_space = self.config.keys
        key_numbers = ids % keys_space if keys_space else ids
        versions = ids // keys_space if keys_space else np.zeros(len(ids), np.int64)
        values = pa.RecordBatch.from_arrays(
            [
                pa.array(ids),
                pa.array([f"k{k}" for k in key_numbers], pa.string()),
                pa.array(versions),
            ],
            names=["id", "key", "version"],
        )
        deleted = np.isin(ids, np.asarray(self.config.deletes, np.int64))
        mark = PositionMark(end - start, Position({"stream": stream}, {"row": int(end)}))
        return RecordBatch(
            values,
            VALUE_SCHEMA,
            (mark,),
            stream=stream or None,
            tombstones=pa.array(deleted) if deleted.any() else None,
        )

    def stop(self) -> None:
        pass


class ToyStreams(SourceConnector):
    """Numbered rows for several streams (a test source)."""

    name = "toy-streams"
    spec = ToyStreamsSpec
    task_class = ToyStreamsTask

    def streams(self) -> list[str]:
        assert isinstance(self.config, ToyStreamsSpec)
        return list(self.config.streams) if self.config.declare else []


@dataclass
class Collected:
    """What sink tasks heard, across runs of one test."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    opened: list[list[TopicPartition]] = field(default_factory=list)
    closed: list[list[TopicPartition]] = field(default_factory=list)
    flushes: list[list[Position]] = field(default_factory=list)
    stored: list[Position] = field(default_factory=list)
    events: list[tuple[str, list[TopicPartition]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def owned(self) -> set[TopicPartition]:
        """The partitions the task holds now, from its open/close calls in order."""
        held: set[TopicPartition] = set()
        with self.lock:
            for kind, partitions in self.events:
                held = held | set(partitions) if kind == "open" else held - set(partitions)
        return held

    def ids(self, topic: str | None = None) -> list[int]:
        # Raw messages (format: raw) carry the id as their text.
        return [
            r["id"] if "id" in r else int(r["value"])
            for r in self.rows
            if topic is None or r["topic"] == topic
        ]


COLLECTED: dict[str, Collected] = {}


class ToyCollectSpec(ConnectorSpec):
    name: str = "default"
    """Which ``COLLECTED`` entry to record into."""
    durable_every: int = 0
    """Report only offsets that are multiples of this as durable (0: all)."""
    request_commit_every: int = 0
    """Call ``context.request_commit()`` after this many rows (0: never)."""
    fail_flushes: int = 0
    """Fail this many flushes with a RetriableError (the txn sink rolls back)."""
    put_delay: float = 0.0
    """Seconds each put takes (a slow target)."""
    fail_after_rows: int = 0
    """Fail ``put`` (not retriably) once this many rows were put (0: never)."""


class ToyCollectTask(SinkTask):
    def start(self, config: ConnectorSpec, context: TaskContext) -> None:
        assert isinstance(config, ToyCollectSpec)
        self.config = config
        self.context = context
        self.collected = COLLECTED.setdefault(config.name, Collected())
        self.buffer: list[dict[str, Any]] = []
        self.since_request = 0
        self.rows_put = 0

    def open(self, partitions: Sequence[TopicPartition]) -> None:
        with self.collected.lock:
            self.collected.opened.append(list(partitions))
            self.collected.events.append(("open", list(partitions)))

    def close(self, partitions: Sequence[TopicPartition]) -> None:
        with self.collected.lock:
            self.collected.closed.append(list(partitions))
            self.collected.events.append(("close", list(partitions)))
        gone = {(p.topic, p.partition) for p in partitions}
        self.buffer = [r for r in self.buffer if (r["topic"], r["partition"]) not in gone]

    def put(self, batch: RecordBatch) -> None:
        time.sleep(self.config.put_delay)
        self.rows_put += batch.num_rows
        if self.config.fail_after_rows and self.rows_put >= self.config.fail_after_rows:
            raise ConnectorError(f"the target refused row {self.rows_put}")
        deleted = batch.delete_mask()
        keys = batch.key_columns()
        key_values = keys.column(0).to_pylist() if keys is not None else [None] * batch.num_rows
        ids = batch.message_ids
        message_ids = ids.to_pylist() if ids is not None else [None] * batch.num_rows
        for i, row in enumerate(batch.values.to_pylist()):
            self.buffer.append(
                {
                    **row,
                    "key": key_values[i],
                    "deleted": bool(deleted[i]),
                    "topic": batch.topic,
                    "partition": batch.partition,
                    "key_schema": batch.key_schema,
                    "message_id": message_ids[i],
                    "headers": (
                        dict(batch.row_headers[i].as_py() or [])
                        if batch.row_headers is not None
                        else {}
                    ),
                }
            )
        self.since_request += batch.num_rows
        every = self.config.request_commit_every
        if every and self.since_request >= every:
            self.since_request = 0
            self.context.request_commit()

    def flush(self, positions: Sequence[Position]) -> Sequence[Position] | None:
        with self.collected.lock:
            self.collected.rows.extend(self.buffer)
            self.collected.flushes.append(list(positions))
        self.buffer = []
        every = self.config.durable_every
        if not every:
            return None
        return [
            Position(p.partition, {"offset": int(p.offset["offset"]) // every * every})
            for p in positions
        ]

    def stop(self) -> None:
        pass


class ToyCollect(SinkConnector):
    """Records what it gets (a test sink)."""

    name = "toy-collect"
    spec = ToyCollectSpec
    task_class = ToyCollectTask


class ToyTransactionalTask(ToyCollectTask):
    """Writes and positions in one transaction: a failed flush keeps neither."""

    stores_positions: ClassVar[bool] = True

    def start(self, config: ConnectorSpec, context: TaskContext) -> None:
        super().start(config, context)
        self.failures_left = self.config.fail_flushes

    def flush(self, positions: Sequence[Position]) -> Sequence[Position] | None:
        if self.failures_left:
            self.failures_left -= 1
            self.buffer = []  # the transaction rolled back
            raise RetriableError("deadlock detected; transaction rolled back")
        with self.collected.lock:
            self.collected.rows.extend(self.buffer)
            self.collected.flushes.append(list(positions))
            stored = {
                (p.partition["topic"], p.partition["partition"]): p for p in self.collected.stored
            }
            for p in positions:
                stored[(p.partition["topic"], p.partition["partition"])] = p
            self.collected.stored = list(stored.values())
        self.buffer = []
        return None

    def stored_positions(self) -> list[Position]:
        return list(self.collected.stored)


class ToyTransactional(SinkConnector):
    """Stores positions with its rows (a test sink)."""

    name = "toy-txn-sink"
    spec = ToyCollectSpec
    task_class = ToyTransactionalTask


register(ToyStreams)
register(ToyCollect)
register(ToyTransactional)

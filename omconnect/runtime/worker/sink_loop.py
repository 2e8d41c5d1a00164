"""The sink side of a pipeline: consumer -> converter -> transforms -> sink -> flush -> commit.

Batches are decoded on the worker pool while the sink task writes the previous ones on its own
thread. Every ``commit_interval`` (and at the end) the task flushes and only then the consumer
group's offsets are committed: a committed offset never covers a row the sink has not made
durable. Messages that cannot be decoded or written go to the dead letter queue.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

import pyarrow as pa

from omconnect.runtime.brokers.base import ConsumedBatch, Consumer, TopicPartition
from omconnect.runtime.worker.loop_parts import PipelineParts, TaskSetup, start_task
from omconnect.runtime.worker.retry import retrying
from omconnect.runtime.worker.transform_chain import apply_transforms
from omconnect.schemas.record import Position, PositionMark, RecordBatch

log = logging.getLogger("omconnect.sink")

POLL_TIMEOUT = 0.2
DECODE_AHEAD = 2


@dataclass(frozen=True)
class _Decoded:
    """The decoded rows of one consumed batch, and the offset to commit once they are put."""

    partition: TopicPartition
    next_offset: int
    records: list[RecordBatch]


_IDLE = _Decoded(("", -1), 0, [])


def _reached(positions: dict[TopicPartition, int], targets: dict[TopicPartition, int]) -> bool:
    return all(positions.get(tp, 0) >= end for tp, end in targets.items())


def broker_position(topic: str, partition: int, next_offset: int) -> Position:
    """The position of a sink: every message of the topic partition before ``next_offset``."""
    return Position({"topic": topic, "partition": partition}, {"offset": next_offset})


class SinkLoop:
    """Runs one sink task until ``stop`` is set, or until it has consumed up to the offsets
    ``until`` resolves to (``--once``)."""

    def __init__(self, parts: PipelineParts, setup: TaskSetup, consumer: Consumer) -> None:
        self.parts = parts
        self.setup = setup
        self.task = setup.thread("sink")
        self.transforms = setup.transforms
        self.settings = parts.settings
        self.consumer = consumer
        self.consumed: dict[TopicPartition, int] = {}
        self.committed: dict[TopicPartition, int] = {}

    async def run(
        self, stop: asyncio.Event, until: asyncio.Future[dict[TopicPartition, int]]
    ) -> None:
        await start_task(self.task, self.setup, self.settings)
        try:
            await self._seek_to_stored_positions()
            self.committed = dict(await self.consumer.committed())
            self.consumed = dict(self.committed)
            await self._consume(stop, until)
            await self._flush_and_commit()
        finally:
            await self.task.call("stop")
            self.task.close()

    async def _seek_to_stored_positions(self) -> None:
        if not getattr(self.setup.task, "stores_positions", False):
            return
        stored: list[Position] = await self.task.call("stored_positions")
        seek = {
            (str(p.partition["topic"]), int(p.partition["partition"])): int(p.offset["offset"])
            for p in stored
        }
        if seek:
            await self.consumer.seek(seek)

    async def _consume(
        self, stop: asyncio.Event, until: asyncio.Future[dict[TopicPartition, int]]
    ) -> None:
        """Decode the next batches on the pool while the sink task writes the current one."""
        decoded: asyncio.Queue[_Decoded | None] = asyncio.Queue(maxsize=DECODE_AHEAD)
        async with asyncio.TaskGroup() as group:
            group.create_task(self._decode_stage(stop, until, decoded))
            await self._write_stage(decoded)

    async def _decode_stage(
        self,
        stop: asyncio.Event,
        until: asyncio.Future[dict[TopicPartition, int]],
        out: asyncio.Queue[_Decoded | None],
    ) -> None:
        loop = asyncio.get_running_loop()
        polled = dict(self.consumed)
        try:
            while not stop.is_set():
                if until.done() and _reached(polled, until.result()):
                    return
                for batch in await self.consumer.poll(self.settings.max_rows, POLL_TIMEOUT):
                    self.parts.metrics.rows_consumed += len(batch.messages)
                    records = await loop.run_in_executor(self.parts.pool, self._to_records, batch)
                    tp = (batch.topic, batch.partition)
                    polled[tp] = batch.next_offset
                    await out.put(_Decoded(tp, batch.next_offset, records))
        finally:
            await out.put(None)

    async def _write_stage(self, source: asyncio.Queue[_Decoded | None]) -> None:
        last_commit = time.monotonic()
        while True:
            try:
                item = await asyncio.wait_for(source.get(), POLL_TIMEOUT)
            except TimeoutError:
                item = _IDLE
            if item is None:
                return
            for record_batch in item.records:
                await self._put(record_batch)
            if item is not _IDLE:
                self.consumed[item.partition] = item.next_offset
            if time.monotonic() - last_commit >= self.settings.commit_interval:
                await self._flush_and_commit()
                last_commit = time.monotonic()

    async def _put(self, batch: RecordBatch) -> None:
        s = self.settings
        await retrying(
            lambda: self.task.call("put", batch), "sink put", s.retry_timeout, s.retry_max_delay
        )
        self.parts.metrics.rows_written += batch.num_rows

    def _to_records(self, consumed: ConsumedBatch) -> list[RecordBatch]:
        """Decode and transform one consumed batch (on a pool thread)."""
        messages = consumed.messages
        decoded = self.parts.converter.decode(consumed.topic, messages.values, messages.keys)
        self.parts.dead_letters.report_messages(
            messages, decoded.failed, "convert", consumed.topic, consumed.partition
        )
        offsets = messages.offsets
        assert offsets is not None
        batches = []
        for rows, values, schema, keys in decoded.groups:
            first = int(offsets[rows[0].as_py()].as_py())
            last = int(offsets[rows[len(rows) - 1].as_py()].as_py())
            marks = (
                PositionMark(0, broker_position(consumed.topic, consumed.partition, first)),
                PositionMark(
                    values.num_rows, broker_position(consumed.topic, consumed.partition, last + 1)
                ),
            )
            batch = RecordBatch(
                values=values,
                schema=schema,
                marks=marks,
                keys=keys,
                timestamps=pa.array(messages.timestamps).take(rows),
            )
            batch = apply_transforms(self.transforms, batch, self.parts.dead_letters)
            batches.append(batch)
        return batches

    async def _flush_and_commit(self) -> None:
        if self.consumed == self.committed:
            return
        s = self.settings
        positions = [broker_position(t, p, o) for (t, p), o in self.consumed.items()]
        await self.parts.dead_letters.drain()
        await retrying(
            lambda: self.task.call("flush", positions),
            "sink flush",
            s.retry_timeout,
            s.retry_max_delay,
        )
        await self.consumer.commit(dict(self.consumed))
        self.committed = dict(self.consumed)
        self.parts.metrics.sink_commits += 1

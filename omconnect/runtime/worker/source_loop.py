"""The source side of a pipeline: poll -> transforms -> converter -> producer -> ack -> commit.

Three stages run concurrently so that reading, encoding and publishing overlap:

* poll: the task's ``poll`` on its own thread; batches are reshaped by count, bytes and
  linger and admitted against the in-flight byte budget (back-pressure);
* prepare: transforms and the converter on the worker pool (Arrow/numpy release the GIL);
  rows that fail go to the dead letter queue, the rest are sent without waiting for the ack;
* commit: acks are awaited in send order, so a position is stored only when every message
  before it is acknowledged; then the task's ``commit`` hook hears about it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from omconnect.runtime.brokers.base import Producer
from omconnect.runtime.offsets.base import OffsetStore
from omconnect.runtime.worker.batching import BatchAccumulator
from omconnect.runtime.worker.events import wait_for_event
from omconnect.runtime.worker.in_flight import InFlightBudget
from omconnect.runtime.worker.loop_parts import PipelineParts, TaskSetup, start_task
from omconnect.runtime.worker.retry import retrying
from omconnect.runtime.worker.transform_chain import apply_transforms
from omconnect.schemas.message_batch import HEADERS_TYPE, MessageBatch
from omconnect.schemas.record import Position, Record, RecordBatch, partition_id

log = logging.getLogger("omconnect.source")

IDLE_SLEEP_MAX = 1.0


@dataclass
class _Prepared:
    """One batch on its way to the broker: the send in flight and what its ack commits."""

    send: asyncio.Future[Any] | None
    positions: list[Position]
    nbytes: int
    rows: int


class SourceLoop:
    """Runs one source task until it is done (``--once``) or ``stop`` is set."""

    def __init__(
        self, parts: PipelineParts, setup: TaskSetup, producer: Producer, offsets: OffsetStore
    ) -> None:
        self.parts = parts
        self.setup = setup
        self.task = setup.thread("source")
        self.transforms = setup.transforms
        self.settings = parts.settings
        self.producer = producer
        self.offsets = offsets
        self.budget = InFlightBudget(parts.settings.max_in_flight_bytes)

    async def run(self, stop: asyncio.Event) -> None:
        await start_task(self.task, self.setup, self.settings)
        polled: asyncio.Queue[RecordBatch | None] = asyncio.Queue()
        prepared: asyncio.Queue[_Prepared | None] = asyncio.Queue()
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._poll_stage(stop, polled))
                group.create_task(self._prepare_stage(polled, prepared))
                group.create_task(self._commit_stage(prepared))
        finally:
            await self.task.call("stop")
            self.task.close()

    async def _poll_stage(
        self, stop: asyncio.Event, out: asyncio.Queue[RecordBatch | None]
    ) -> None:
        s = self.settings
        batches = BatchAccumulator(s.max_rows, s.max_bytes, s.linger)
        idle = 0.01
        while not stop.is_set():
            result = await retrying(
                lambda: self.task.call("poll"), "source poll", s.retry_timeout, s.retry_max_delay
            )
            polled = _as_batches(result)
            for batch in polled:
                self.parts.metrics.rows_polled += batch.num_rows
                for ready in batches.add(batch):
                    await self._admit(ready, out)
            if batches.due() or (not polled and s.once):
                for ready in batches.take():
                    await self._admit(ready, out)
            if polled:
                idle = 0.01
                continue
            if s.once:
                break
            await wait_for_event(stop, idle)
            idle = min(IDLE_SLEEP_MAX, idle * 2)
        for ready in batches.take():
            await self._admit(ready, out)
        await out.put(None)

    async def _admit(self, batch: RecordBatch, out: asyncio.Queue[RecordBatch | None]) -> None:
        await self.budget.acquire(batch.nbytes)
        await out.put(batch)

    async def _prepare_stage(
        self, source: asyncio.Queue[RecordBatch | None], out: asyncio.Queue[_Prepared | None]
    ) -> None:
        loop = asyncio.get_running_loop()
        while (batch := await source.get()) is not None:
            topic = self.settings.topic_for(batch.stream)
            messages = await loop.run_in_executor(self.parts.pool, self._to_messages, topic, batch)
            send = None
            if messages is not None and len(messages):
                send = asyncio.ensure_future(self._send(topic, messages))
            await out.put(_Prepared(send, batch.positions, batch.nbytes, batch.num_rows))
        await out.put(None)

    def _to_messages(self, topic: str, batch: RecordBatch) -> MessageBatch | None:
        """Transforms and conversion for one batch (on a pool thread)."""
        batch = apply_transforms(self.transforms, batch, self.parts.dead_letters)
        if batch.num_rows == 0:
            return None
        encoded = self.parts.converter.encode(topic, batch)
        values, keys, timestamps = encoded.values, encoded.keys, batch.timestamps
        if encoded.failed:
            self.parts.dead_letters.report_rows(batch, encoded.failed, "convert")
            good = pc.is_valid(values)
            values = values.filter(good)
            keys = keys.filter(good) if keys is not None else None
            timestamps = timestamps.filter(good) if timestamps is not None else None
        return MessageBatch.build(
            values=values,
            keys=keys,
            timestamps=timestamps,
            headers=_constant_headers(batch.headers, len(values)),
        )

    async def _send(self, topic: str, messages: MessageBatch) -> None:
        s = self.settings
        await retrying(
            lambda: self.producer.send(topic, messages),
            f"publish to {topic}",
            s.retry_timeout,
            s.retry_max_delay,
        )
        self.parts.metrics.rows_published += len(messages)
        self.parts.metrics.bytes_published += messages.nbytes

    async def _commit_stage(self, source: asyncio.Queue[_Prepared | None]) -> None:
        acked: dict[str, Position] = {}
        last_commit = time.monotonic()
        while (item := await source.get()) is not None:
            try:
                if item.send is not None:
                    await item.send
            finally:
                await self.budget.release(item.nbytes)
            for position in item.positions:
                acked[partition_id(position.partition)] = position
            # Commit as soon as the acks caught up with the sends (few duplicates after a
            # crash), and at least every commit_interval under a steady stream.
            caught_up = source.empty()
            if acked and (
                caught_up or time.monotonic() - last_commit >= self.settings.commit_interval
            ):
                await self._commit(list(acked.values()))
                acked.clear()
                last_commit = time.monotonic()
        if acked:
            await self._commit(list(acked.values()))

    async def _commit(self, positions: list[Position]) -> None:
        """Store positions whose every message (and dead letter) the broker acknowledged."""
        await self.parts.dead_letters.drain()
        await asyncio.to_thread(self.offsets.put, self.parts.pipeline, positions)
        self.parts.metrics.source_commits += 1
        await self.task.call("commit", positions)


def _as_batches(result: RecordBatch | list[Record] | None) -> list[RecordBatch]:
    if result is None:
        return []
    if isinstance(result, RecordBatch):
        return [result] if result.num_rows or result.marks else []
    return RecordBatch.from_records(result)


def _constant_headers(headers: dict[str, bytes], rows: int) -> pa.Array | None:
    """The same headers for every row, built without a Python object per row."""
    if not headers:
        return None
    names = pa.array(list(headers.keys()) * rows, pa.string())
    values = pa.array(list(headers.values()) * rows, pa.binary())
    offsets = pa.array(np.arange(rows + 1, dtype=np.int32) * len(headers))
    return pa.MapArray.from_arrays(offsets, names, values, type=HEADERS_TYPE)

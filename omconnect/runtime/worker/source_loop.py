"""The source side of a pipeline: poll -> transforms -> converter -> producer -> ack -> commit.

Three stages run concurrently so that reading, encoding and publishing overlap:

* poll: the task's ``poll`` on its own thread; batches get their message ids, are reshaped by
  count, bytes and linger and admitted against the in-flight byte budget (back-pressure);
* prepare: transforms and the converter on the worker pool (Arrow/numpy release the GIL);
  rows that fail go to the dead letter queue, the rest are sent without waiting for the ack;
* commit: acks are awaited in send order, so a position is stored only when every message
  before it is acknowledged; then the task's ``commit`` hook hears about it.

Order under failures. Sends overlap, so when one fails, later batches may already be stored.
Retrying the failed batch on its own would land it after them (versions 2, 3, 1 of one key,
stale forever in a compacted topic or an upsert sink). Instead an *epoch* ends at the first
failed send: the poll and prepare stages stop, the sends in flight are awaited, the positions
of every batch acknowledged before the failure are committed, the task is stopped, and after
a backoff a new task starts from the committed positions and delivers the rest again. What a
consumer sees for a key is therefore always a prefix of the source's order followed by a
redelivery of the source's order from an earlier point: the newest version comes last.

The same rule covers every other failure of an epoch (a poll that fails for good, a record
that fails under ``errors.tolerance: none``): what the broker acknowledged is committed before
the failure is raised, so a failed run never publishes the same batches again on the next try.

Positions are committed by one of two strategies: after the ack, to the offset store (at least
once), or, with ``exactly_once``, inside the producer's transaction together with the messages
they cover (``Producer.commit_transaction``), so a crash never leaves a published message
whose position was not stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from omconnect.runtime.brokers.base import Producer
from omconnect.runtime.brokers.direct import DirectProducer
from omconnect.runtime.converters.base import DecodedGroup, merged_headers
from omconnect.runtime.state.offsets import OffsetStore
from omconnect.runtime.worker.batching import BatchAccumulator, InFlightBudget
from omconnect.runtime.worker.log_context import in_log_context, set_log_context
from omconnect.runtime.worker.loop_parts import (
    PipelineParts,
    SourceTaskType,
    TaskSetup,
    start_task,
)
from omconnect.runtime.worker.message_ids import MessageIdDeriver, message_headers
from omconnect.runtime.worker.metrics import newest_event_ms
from omconnect.runtime.worker.offset_reader import TransactionPositionReader
from omconnect.runtime.worker.task_thread import TaskThread
from omconnect.runtime.worker.transform_chain import apply_transforms
from omconnect.runtime.worker.waiting import FIRST_DELAY, retrying, wait_for_event
from omconnect.schemas.message_batch import MessageBatch
from omconnect.schemas.position_codec import encode_position_value
from omconnect.schemas.record import Position, Record, RecordBatch, partition_id

log = logging.getLogger("omconnect.source")

IDLE_SLEEP_MAX = 1.0
# How long a cancelled loop may take to store the positions the broker acknowledged.
CANCELLED_COMMIT_SECONDS = 2.0


class SendFailedError(Exception):
    """A send of this epoch failed; the source is rewound to its committed positions."""


@dataclass(frozen=True)
class _Routed:
    """The messages of one batch for one topic, and its rows as the run's sink decodes them
    (None when the converter cannot say, or no sink of this run reads them). Without a broker
    (``broker: none``) the rows themselves go to the sink (``records``), nothing is encoded."""

    topic: str
    messages: MessageBatch
    decoded: DecodedGroup | None
    records: RecordBatch | None = None


@dataclass
class _Prepared:
    """One polled batch on its way to the broker: its sends in flight (one per topic it was
    routed to) and what their acks commit."""

    sends: list[asyncio.Future[Any]]
    positions: list[Position]
    nbytes: int
    newest_event_ms: int | None = None


@dataclass
class _Epoch:
    """One run of the three stages between two rewinds."""

    thread: TaskThread[SourceTaskType]
    halt: asyncio.Event = field(default_factory=asyncio.Event)
    failures: list[BaseException] = field(default_factory=list)
    committed_any: bool = False
    send_failed: bool = False
    transaction_open: bool = False
    # Acknowledged positions not committed yet (under exactly_once: those of the open
    # transaction).
    acked: dict[str, Position] = field(default_factory=dict)

    def fail(self, error: BaseException) -> None:
        self.failures.append(error)
        self.halt.set()


class SourceLoop:
    """Runs one source task until it is done (``--once``) or ``stop`` is set."""

    def __init__(
        self,
        parts: PipelineParts,
        setup: TaskSetup[SourceTaskType],
        producer: Producer,
        offsets: OffsetStore,
    ) -> None:
        self.parts = parts
        self.setup = setup
        self.transforms = setup.transforms
        self.settings = parts.settings
        self.producer = producer
        # Without a broker the rows themselves go to the sink, nothing is encoded.
        self.direct = producer if isinstance(producer, DirectProducer) else None
        self.offsets = offsets
        self.budget = InFlightBudget(parts.settings.max_in_flight_bytes)
        self.rewinds = 0
        self.all_sent = asyncio.Event()
        """Set when polling ended (everything read under ``--once``, or ``stop``) and every
        batch polled was sent, not yet acknowledged: where the sink of a run without a broker
        ends, since the acks wait for its commits."""
        # Serialises "send into the open transaction" against "commit it" (exactly_once).
        self._transaction_lock = asyncio.Lock()

    async def run(self, stop: asyncio.Event) -> None:
        """Epochs until the source is done or ``stop`` is set; rewinds after failed sends
        with backoff until ``errors.retry_timeout`` passes without progress."""
        set_log_context(task=f"source-{self.setup.context.task_id}")
        s = self.settings
        delay = FIRST_DELAY
        deadline: float | None = None
        while True:
            epoch = await self._run_epoch(stop)
            if not epoch.failures:
                return
            error = epoch.failures[0]
            if not isinstance(error, SendFailedError):
                raise error
            if epoch.committed_any or deadline is None:
                deadline = time.monotonic() + s.retry_timeout
                delay = FIRST_DELAY
            remaining = deadline - time.monotonic()
            if remaining <= 0 or stop.is_set():
                raise error.__cause__ or error
            wait = min(delay, s.retry_max_delay, remaining) * random.uniform(0.8, 1.0)
            log.warning("%s; rewinding the source to its committed positions in %.1fs", error, wait)
            self.rewinds += 1
            self.parts.metrics.source_rewinds += 1
            await wait_for_event(stop, wait)
            delay *= 2
            if stop.is_set():
                raise error.__cause__ or error

    async def _run_epoch(self, stop: asyncio.Event) -> _Epoch:
        thread = self.setup.thread("source", fresh=self.rewinds > 0)
        epoch = _Epoch(thread)
        polled: asyncio.Queue[RecordBatch | None] = asyncio.Queue()
        prepared: asyncio.Queue[_Prepared | None] = asyncio.Queue()
        try:
            if self.settings.exactly_once:
                await self._load_transaction_positions()
            await start_task(thread, self.setup, self.settings)
            ids = MessageIdDeriver(self.setup.context.offsets.get)
            if self.settings.exactly_once:
                await self._begin_transaction(epoch)
            async with asyncio.TaskGroup() as group:
                group.create_task(self._poll_stage(epoch, stop, ids, polled))
                group.create_task(self._prepare_stage(epoch, polled, prepared))
                group.create_task(self._commit_stage(epoch, prepared))
            if self.settings.exactly_once:
                await self._end_transaction(epoch)
        finally:
            await thread.stop_task()
        return epoch

    async def _poll_stage(
        self,
        epoch: _Epoch,
        stop: asyncio.Event,
        ids: MessageIdDeriver,
        out: asyncio.Queue[RecordBatch | None],
    ) -> None:
        s = self.settings
        loop = asyncio.get_running_loop()
        batches = BatchAccumulator(s.max_rows, s.max_bytes, s.linger)
        idle = 0.01
        # After a poll that returned rows the next one starts at once, so the task reads on
        # while this batch gets its message ids on the pool.
        ahead: asyncio.Future[Any] | None = None
        times = self.parts.metrics.times.task(f"source-{self.setup.context.task_id}")

        def poll() -> Coroutine[Any, Any, Any]:
            return retrying(
                lambda: epoch.thread.call(epoch.thread.task.poll),
                "source poll",
                s.retry_timeout,
                s.retry_max_delay,
            )

        try:
            while not stop.is_set() and not epoch.halt.is_set():
                # A poll that follows an empty one is awaited in place, not as a task of its
                # own: an idle source polls every second, and each task costs wake-ups.
                result = await (ahead if ahead is not None else poll())
                ahead = None
                polled = _as_batches(result)
                times.heartbeat(sum(batch.num_rows for batch in polled))
                if polled:
                    ahead = asyncio.ensure_future(poll())
                    await loop.run_in_executor(self.parts.pool, _give_ids, ids, polled)
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
        except asyncio.CancelledError:
            # The epoch is torn down (a sibling failed, or a hard stop): the stages behind
            # this one are gone, so nothing more is admitted (it could wait forever for budget
            # they would release) and a poll that may never return is not awaited.
            if ahead is not None:
                ahead.cancel()
            raise
        except Exception as error:
            # What was polled before the failure is good: it is still published and committed
            # (only a failed send or conversion halts the stages behind it).
            epoch.failures.append(error)
        if ahead is not None:
            # Read past a stop or a halt: not published, not committed, read again later.
            with contextlib.suppress(Exception):
                await ahead
        if not epoch.halt.is_set():
            for ready in batches.take():
                await self._admit(ready, out)
        await out.put(None)

    async def _admit(self, batch: RecordBatch, out: asyncio.Queue[RecordBatch | None]) -> None:
        await self.budget.acquire(batch.nbytes)
        await out.put(batch)

    async def _prepare_stage(
        self,
        epoch: _Epoch,
        source: asyncio.Queue[RecordBatch | None],
        out: asyncio.Queue[_Prepared | None],
    ) -> None:
        loop = asyncio.get_running_loop()
        try:
            while (batch := await source.get()) is not None:
                if epoch.halt.is_set():
                    await self.budget.release(batch.nbytes)
                    continue
                try:
                    async with self._transaction_lock:
                        routed = await loop.run_in_executor(
                            self.parts.pool, in_log_context(self._to_messages), batch
                        )
                        sends: list[asyncio.Future[Any]] = []
                        for item in routed:
                            await self.parts.topics.ensure(item.topic)
                            send = asyncio.ensure_future(self._send(item))
                            send.add_done_callback(_outcome_taken)
                            sends.append(send)
                except Exception as error:
                    epoch.fail(error)
                    await self.budget.release(batch.nbytes)
                    continue
                newest = newest_event_ms(batch.timestamps)
                await out.put(_Prepared(sends, batch.positions, batch.nbytes, newest))
            if not epoch.halt.is_set():
                self.all_sent.set()
        finally:
            await out.put(None)

    def _to_messages(self, batch: RecordBatch) -> list[_Routed]:
        """Transforms and conversion for one batch (on a pool thread): the message batch of
        each topic the rows go to, and its rows decoded when the run's sink will read them."""
        routed: list[_Routed] = []
        for part in apply_transforms(self.transforms, batch, self.parts.dead_letters):
            if part.num_rows == 0:
                continue
            topic = part.topic or self.settings.topic_for(part.stream)
            if self.direct is not None:
                self.direct.check_read(topic)
                routed.append(_Routed(topic, _metadata_only(part), None, part))
                continue
            encoded = self.parts.converter.encode(topic, part)
            values, keys, headers = encoded.values, encoded.keys, encoded.headers
            if encoded.failed:
                self.parts.dead_letters.report_rows(part, encoded.failed, "convert")
                good = _rows_kept(part, encoded.failed)
                part = part.filter(good)
                values = values.filter(good)
                keys = keys.filter(good) if keys is not None else None
                headers = headers.filter(good) if headers is not None else None
                if part.num_rows == 0:
                    continue
            messages = MessageBatch.build(
                values=values,
                keys=keys,
                timestamps=part.timestamps,
                # The format's headers (CloudEvents attributes) first, then the record's.
                headers=merged_headers(headers, message_headers(part)),
                message_ids=part.carried_message_ids,
            )
            decoded = None
            if self.parts.published is not None:
                decoded = self.parts.converter.decoded_form(topic, part)
            routed.append(_Routed(topic, messages, decoded))
        return routed

    async def _send(self, routed: _Routed) -> None:
        topic, messages = routed.topic, routed.messages
        try:
            if self.direct is not None and routed.records is not None:
                results = await self.direct.send_records(topic, messages, routed.records)
            else:
                results = await self.producer.send(topic, messages)
        except Exception as error:
            raise SendFailedError(f"publishing to {topic} failed: {error}") from error
        published = self.parts.published
        if published is not None and routed.decoded is not None and len(results) == 1:
            # One partition took the batch in order; spread over several, the sink decodes.
            result = results[0]
            if result.count == len(messages):
                published.put(topic, result.partition, result.first_offset, routed.decoded)
        self.parts.metrics.rows_published += len(messages)
        self.parts.metrics.bytes_published += messages.nbytes

    async def _commit_stage(self, epoch: _Epoch, source: asyncio.Queue[_Prepared | None]) -> None:
        acked = epoch.acked
        last_commit = time.monotonic()
        try:
            # Items arrive in poll order (see _acknowledged).
            while (item := await source.get()) is not None:
                if not await self._acknowledged(epoch, item):
                    continue
                # Commit as soon as the acks caught up with the sends (few duplicates after a
                # crash), and at least every commit_interval under a steady stream.
                caught_up = source.empty()
                due = time.monotonic() - last_commit >= self.settings.commit_interval
                if acked and (caught_up or due) and not self.settings.exactly_once:
                    await self._commit(epoch, acked)
                    last_commit = time.monotonic()
                elif acked and (caught_up or due) and not epoch.halt.is_set():
                    await self._commit_transaction(epoch, acked, source)
                    last_commit = time.monotonic()
        except asyncio.CancelledError:
            if acked and not self.settings.exactly_once:
                await self._commit_when_cancelled(acked)
            raise
        if acked and not self.settings.exactly_once:
            # Also after a failure: what the broker acknowledged is never published again.
            await self._commit(epoch, acked)

    async def _acknowledged(self, epoch: _Epoch, item: _Prepared) -> bool:
        """Await the sends of ``item``; when all were acknowledged (and none failed before),
        its positions join ``epoch.acked``. The first failed send ends committing for the
        epoch; sends behind it are still awaited so none outlives the epoch."""
        try:
            if not epoch.send_failed:
                try:
                    for send in item.sends:
                        await send
                except Exception as error:
                    epoch.send_failed = True
                    epoch.fail(error)
            if epoch.send_failed:
                await asyncio.gather(*item.sends, return_exceptions=True)
                return False
        finally:
            await self.budget.release(item.nbytes)
        self.parts.metrics.times.acked(item.newest_event_ms)
        for position in item.positions:
            epoch.acked[partition_id(position.partition)] = position
        return True

    async def _commit(self, epoch: _Epoch, acked: dict[str, Position]) -> None:
        """Store positions whose every message (and dead letter) the broker acknowledged."""
        positions = list(acked.values())
        try:
            await self.parts.dead_letters.drain()
        except Exception as error:
            epoch.fail(SendFailedError(f"publishing dead letters failed: {error}"))
            return
        try:
            await asyncio.to_thread(self.offsets.put, self.parts.pipeline, positions)
            acked.clear()
            epoch.committed_any = True
            self.parts.metrics.source_commits += 1
            await retrying(
                lambda: epoch.thread.call(epoch.thread.task.commit, positions),
                "source commit",
                self.settings.retry_timeout,
                self.settings.retry_max_delay,
            )
        except Exception as error:
            epoch.fail(error)

    async def _commit_when_cancelled(self, acked: dict[str, Position]) -> None:
        """The loop is being cancelled (the sink failed, a stop ran out of patience): store
        what the broker acknowledged so the next run does not publish it again, but give up
        after a short while rather than hold the stop (the connector's ``commit`` hook is
        not called: its task may be the thing that is stuck)."""
        positions = list(acked.values())
        try:
            async with asyncio.timeout(CANCELLED_COMMIT_SECONDS):
                await self.parts.dead_letters.drain()
                await asyncio.to_thread(self.offsets.put, self.parts.pipeline, positions)
            acked.clear()
            self.parts.metrics.source_commits += 1
        except Exception as error:
            log.warning("stopping without storing the acknowledged positions: %s", error)

    async def _commit_transaction(
        self,
        epoch: _Epoch,
        acked: dict[str, Position],
        source: asyncio.Queue[_Prepared | None],
    ) -> None:
        """Commit the open transaction with exactly the batches it holds: no new send starts
        while the sends already made are awaited and the transaction commits."""
        async with self._transaction_lock:
            while not source.empty():
                item = source.get_nowait()
                if item is None:
                    source.put_nowait(None)
                    break
                if not await self._acknowledged(epoch, item):
                    return
            await self._store_in_transaction(epoch, acked)
            if not epoch.halt.is_set():
                await self._begin_transaction(epoch)

    async def _begin_transaction(self, epoch: _Epoch) -> None:
        await self.producer.begin_transaction()
        epoch.transaction_open = True

    async def _end_transaction(self, epoch: _Epoch) -> None:
        """At the end of an epoch: commit what is acknowledged, or abort when sending stopped
        on a failure (the rewound task sends it again)."""
        if not epoch.transaction_open:
            return
        if epoch.halt.is_set():
            epoch.transaction_open = False
            try:
                await self.producer.abort_transaction()
            except Exception as error:  # a failed commit may have ended it already
                log.warning("aborting the transaction failed: %s", error)
            return
        await self._store_in_transaction(epoch, epoch.acked)

    async def _load_transaction_positions(self) -> None:
        """Under exactly_once the task resumes from the positions of the last committed
        transaction, which the broker holds."""
        stored = await self.parts.topics.broker.transaction_positions(self.parts.pipeline)
        reader = self.setup.context.offsets
        assert isinstance(reader, TransactionPositionReader), "exactly_once reads from the broker"
        reader.load(stored)

    async def _store_in_transaction(self, epoch: _Epoch, acked: dict[str, Position]) -> None:
        positions = list(acked.values())
        try:
            await self.parts.dead_letters.drain()
            encoded = {
                partition_id(p.partition): encode_position_value(dict(p.offset)) for p in positions
            }
            await self.producer.commit_transaction(self.parts.pipeline, encoded)
            epoch.transaction_open = False
        except Exception as error:
            epoch.fail(SendFailedError(f"committing the transaction failed: {error}"))
            return
        acked.clear()
        if not positions:
            return
        epoch.committed_any = True
        self.parts.metrics.source_commits += 1
        # The offset store mirrors them for ``offsets list``; the broker's copy is the truth.
        await asyncio.to_thread(self.offsets.put, self.parts.pipeline, positions)
        await epoch.thread.call(epoch.thread.task.commit, positions)


def _outcome_taken(send: asyncio.Future[Any]) -> None:
    """Marks a send's failure as seen. The commit stage awaits every send and sees its
    failure; but when the epoch is torn down (the sink failed under ``broker: none``, a stop
    ran out of patience) the sends still queued behind it end unawaited, failing as the broker
    closes, and asyncio would log each as a traceback ("Task exception was never retrieved")
    under the run's one-line error. Their rows are not committed either way."""
    if not send.cancelled():
        send.exception()


def _give_ids(ids: MessageIdDeriver, batches: list[RecordBatch]) -> None:
    """Message ids for the batches the task polled, in poll order (on the task's thread)."""
    for batch in batches:
        if batch.carried_message_ids is None and batch.num_rows:
            batch.message_ids = ids.ids(batch)


def _metadata_only(batch: RecordBatch) -> MessageBatch:
    """The messages of ``batch`` without bodies: what a sink reads besides the rows (event
    times, headers, ids) when the rows themselves go to it (``broker: none``)."""
    return MessageBatch.build(
        values=pa.nulls(batch.num_rows, pa.binary()),
        timestamps=batch.timestamps,
        headers=message_headers(batch),
        message_ids=batch.carried_message_ids,
    )


def _rows_kept(batch: RecordBatch, failed: dict[int, Exception]) -> pa.BooleanArray:
    keep = np.ones(batch.num_rows, dtype=bool)
    keep[list(failed)] = False
    return pa.array(keep)


def _as_batches(result: RecordBatch | list[RecordBatch] | list[Record] | None) -> list[RecordBatch]:
    if result is None:
        return []
    if isinstance(result, RecordBatch):
        return [result] if result.num_rows or result.marks else []
    if result and all(isinstance(item, RecordBatch) for item in result):
        return [b for b in result if isinstance(b, RecordBatch) and (b.num_rows or b.marks)]
    return RecordBatch.from_records([r for r in result if isinstance(r, Record)])

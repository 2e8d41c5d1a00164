"""The sink side of a pipeline: consumer -> converter -> transforms -> sink -> flush -> commit.

Batches are decoded on the worker pool while the sink task writes the previous ones on its own
thread. Every ``commit_interval`` (at the end, when the task asks, and before partitions are
taken away) the task flushes, says which positions are durable, and only those are committed
to the consumer group (or, on a queue broker, the batches they cover are acknowledged): a
committed offset never covers a row the sink has not made durable. Messages that cannot be
decoded or written go to the dead letter queue.

Partitions follow the consumer group, in Kafka Connect's shape: the task hears ``open`` for
partitions it is given and ``close`` for partitions taken away; before a revocation completes,
everything consumed from them is put, flushed and committed. While the task is slow (a write
retried for minutes) the consumer is paused rather than left unpolled, so the member keeps
its place in the group.

A sink that stores its positions itself is sought to them on every assignment; when its flush
fails, its transaction rolled back, so the loop rewinds the consumer to the stored positions
and delivers those rows again rather than retrying a flush that has nothing left to write.
A ``RetriableError`` rewinds with backoff until ``errors.retry_timeout`` passes without a
committed flush; reading the stored positions is retried the same way (the database that
failed the flush may not be back yet).

An idle sink costs little: its polls wait up to a second each and return as soon as messages
arrive (an embedded broker's consumer is woken by the append), the write stage sleeps until
a batch comes or a commit falls due, and the consumer lag takes an end-offsets request only
when messages came since the last one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence, Set
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from omconnect.connectors.api.errors import RetriableError
from omconnect.connectors.api.sink import SinkTask
from omconnect.connectors.api.sink import TopicPartition as SinkPartition
from omconnect.runtime.brokers.base import (
    ConsumedBatch,
    Consumer,
    RebalanceError,
    RebalanceListener,
    TopicPartition,
)
from omconnect.runtime.converters.base import DecodedGroup
from omconnect.runtime.worker import metrics as run_metrics
from omconnect.runtime.worker.log_context import in_log_context, set_log_context
from omconnect.runtime.worker.loop_parts import PipelineParts, TaskSetup, start_task
from omconnect.runtime.worker.transform_chain import apply_transforms
from omconnect.runtime.worker.waiting import FIRST_DELAY, retrying, wait_for_event
from omconnect.schemas.arrow import from_arrow_schema
from omconnect.schemas.message_ids import MessageIdRuns
from omconnect.schemas.record import Position, PositionMark, RecordBatch
from omconnect.schemas.schema import Schema

log = logging.getLogger("omconnect.sink")

# Running continuously: how long a poll waits for messages. A poll returns as soon as some
# arrive (the embedded broker's consumers are woken by the appends of this process), so this
# only says how often an idle sink wakes (a heartbeat for freshness, the stop event looked
# at): 25 idle sinks polling every 0.2 s kept a tenth of a core busy.
CONTINUOUS_POLL_TIMEOUT = 1.0
# Under --once once the source is done, until this member has its partitions' end offsets.
POLL_TIMEOUT = 0.2
# Under --once, while the source runs (see ``_decode_stage``).
ONCE_POLL_TIMEOUT = 0.02
# While the sink task is behind: how often the paused consumer polls (see ``_poll_paused``).
PAUSED_POLL_INTERVAL = 0.2
# Under --once on a broker without end offsets: how long a poll must bring nothing to end.
QUEUE_END_WAIT = 1.0
DECODE_AHEAD = 3

ConsumerFactory = Callable[[RebalanceListener], Awaitable[Consumer]]
EndCondition = asyncio.Future[dict[TopicPartition, int] | None]
"""Resolves under ``--once`` when the source is done: the offsets to reach, or None on a
broker without end offsets (the sink then stops at the first empty poll)."""


@dataclass(frozen=True)
class _Decoded:
    """The decoded rows of one consumed batch, and what to commit once they are put."""

    partition: TopicPartition
    next_offset: int
    records: list[RecordBatch]
    ack_token: Any = None


@dataclass
class _Barrier:
    """Put in the queue by a revocation: the write stage flushes and commits when it gets
    here, then resolves ``done``."""

    done: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


_IDLE = _Decoded(("", -1), 0, [])


class _Rewind(Exception):
    """A flush of a position-storing sink failed: deliver again from its stored positions."""


def _reached(positions: dict[TopicPartition, int], targets: dict[TopicPartition, int]) -> bool:
    return all(positions.get(tp, 0) >= end for tp, end in targets.items())


def broker_position(topic: str, partition: int, next_offset: int) -> Position:
    """The position of a sink: every message of the topic partition before ``next_offset``."""
    return Position({"topic": topic, "partition": partition}, {"offset": next_offset})


def _broker_offsets(positions: Sequence[Position]) -> dict[TopicPartition, int]:
    return {
        (str(p.partition["topic"]), int(p.partition["partition"])): int(p.offset["offset"])
        for p in positions
    }


class SinkLoop:
    """Runs one sink task until ``stop`` is set, or until it has consumed up to the offsets
    ``until`` resolves to (``--once``)."""

    def __init__(
        self,
        parts: PipelineParts,
        setup: TaskSetup[SinkTask],
        consumer_factory: ConsumerFactory,
    ) -> None:
        self.parts = parts
        self.setup = setup
        self.thread = setup.thread("sink")
        self.transforms = setup.transforms
        self.settings = parts.settings
        self.consumer_factory = consumer_factory
        self.consumer: Consumer | None = None
        self.stores_positions = bool(getattr(setup.task, "stores_positions", False))
        self.assigned: set[TopicPartition] = set()
        self.consumed: dict[TopicPartition, int] = {}
        self.committed: dict[TopicPartition, int] = {}
        self.unacked: list[tuple[TopicPartition, int, Any]] = []
        self._commit_requested = False
        self._queue: asyncio.Queue[_Decoded | _Barrier | None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._room = asyncio.Event()  # set whenever the write stage takes from the queue
        self._key_schemas: dict[tuple[str, pa.Schema], Schema] = {}
        setup.context.on_commit_request = self.request_commit

    async def open_consumer(self) -> Consumer:
        """Subscribe (before the source publishes: a queue broker keeps messages only for
        subscriptions that exist)."""
        if self.consumer is None:
            self.consumer = await self.consumer_factory(self)
        return self.consumer

    async def run(self, stop: asyncio.Event, until: EndCondition) -> None:
        set_log_context(task=f"sink-{self.setup.context.task_id}")
        self._loop = asyncio.get_running_loop()
        await start_task(self.thread, self.setup, self.settings)
        try:
            await self.open_consumer()
            delay = FIRST_DELAY
            deadline: float | None = None
            commits = self.parts.metrics.sink_commits
            while True:
                try:
                    await self._consume(stop, until)
                    await self._flush_and_commit()
                    break
                except _Rewind as rewind:
                    cause = rewind.__cause__
                    if deadline is None or self.parts.metrics.sink_commits > commits:
                        # The first failure since the last committed flush: errors.retry_timeout
                        # counts the time without progress, not since the first failure ever.
                        deadline = time.monotonic() + self.settings.retry_timeout
                        delay = FIRST_DELAY
                        commits = self.parts.metrics.sink_commits
                    if time.monotonic() >= deadline or not isinstance(cause, RetriableError):
                        raise (cause or rewind) from None
                    log.warning("sink flush failed, redelivering from stored positions: %s", cause)
                    await asyncio.sleep(min(delay, self.settings.retry_max_delay))
                    delay *= 2
                    await self._rewind()
            if self.assigned:
                await self.thread.call(self.thread.task.close, _sink_partitions(self.assigned))
        finally:
            await self.thread.stop_task()

    # -- the consumer group's callbacks (run inside ``consumer.poll``) --------------------

    async def on_partitions_assigned(self, partitions: Set[TopicPartition]) -> None:
        assert self.consumer is not None
        new = set(partitions) - self.assigned
        if not new:
            return
        if self.parts.capabilities.log:
            committed = await self.consumer.committed()
            for tp in new:
                if tp in committed:
                    self.committed[tp] = self.consumed[tp] = committed[tp]
        self.assigned |= new
        await self.thread.call(self.thread.task.open, _sink_partitions(new))
        if self.stores_positions and self.parts.capabilities.log:
            await self._seek_to_stored_positions(new)

    async def on_partitions_revoked(self, partitions: Set[TopicPartition]) -> None:
        lost = set(partitions) & self.assigned
        if not lost:
            return
        if self._queue is not None:
            barrier = _Barrier()
            await self._queue.put(barrier)
            await barrier.done
        await self.thread.call(self.thread.task.close, _sink_partitions(lost))
        self.assigned -= lost
        for tp in lost:
            self.consumed.pop(tp, None)
            self.committed.pop(tp, None)
        self.unacked = [entry for entry in self.unacked if entry[0] not in lost]

    # -------------------------------------------------------------------------------------

    def request_commit(self) -> None:
        """The task asked for a commit (on its thread, or on the loop): the write stage
        commits after the batch it is putting, or wakes up to commit now when it waits."""
        self._commit_requested = True
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: the run is over
                loop.call_soon_threadsafe(self._wake_write_stage)

    def _wake_write_stage(self) -> None:
        if self._queue is not None and self._queue.empty():
            self._queue.put_nowait(_IDLE)

    async def _rewind(self) -> None:
        """After a failed flush of a position-storing sink: the task drops what it buffered
        (``close``), the consumer goes back to the stored positions, the task reopens."""
        partitions = _sink_partitions(self.assigned)
        await self.thread.call(self.thread.task.close, partitions)
        await self._seek_to_stored_positions(self.assigned)
        await self.thread.call(self.thread.task.open, partitions)

    async def _seek_to_stored_positions(self, partitions: Set[TopicPartition]) -> None:
        """Seek ``partitions`` to the sink's stored positions (else the group's commits, else
        the partition's start)."""
        assert self.consumer is not None
        s = self.settings
        # Read from the sink's own database, which may be why the flush failed (down, not
        # back yet): retried like every task call.
        stored = _broker_offsets(
            await retrying(
                lambda: self.thread.call(self.thread.task.stored_positions),
                "sink stored positions",
                s.retry_timeout,
                s.retry_max_delay,
            )
        )
        committed = await self.consumer.committed()
        seek = {tp: stored.get(tp, committed.get(tp, 0)) for tp in partitions}
        for tp, offset in seek.items():
            self.consumed[tp] = self.committed[tp] = offset
        if seek:
            await self.consumer.seek(seek)

    async def _consume(self, stop: asyncio.Event, until: EndCondition) -> None:
        """Decode the next batches on the pool while the sink task writes the current one."""
        self._queue = asyncio.Queue(maxsize=DECODE_AHEAD)
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._decode_stage(stop, until, self._queue))
                await self._write_stage(self._queue)
        except BaseExceptionGroup as errors:
            rewind = errors.subgroup(_Rewind)
            if rewind is not None:
                failed = rewind.exceptions[0]
                # With the flush's error as its cause: ``run`` retries a RetriableError.
                raise failed from failed.__cause__
            raise
        finally:
            self._queue = None

    async def _decode_stage(
        self,
        stop: asyncio.Event,
        until: EndCondition,
        out: asyncio.Queue[_Decoded | _Barrier | None],
    ) -> None:
        assert self.consumer is not None
        consumer = self.consumer
        loop = asyncio.get_running_loop()
        polled = dict(self.consumed)
        times = self.parts.metrics.times
        heartbeats = times.task(f"sink-{self.setup.context.task_id}")
        capabilities = self.parts.capabilities
        lag = _LagProbe(times) if capabilities.log and capabilities.end_offsets else None

        def timeout(ending: bool, polled: dict[TopicPartition, int]) -> float:
            """How long a poll waits for messages. Under ``--once``, until the end offsets
            are known, not long: a poll waiting when the source ends would hold the run's
            end back by its timeout. Once this member has what they name of its own
            partitions, the poll that confirms the end (its callbacks, the others' commits)
            waits for nothing: nothing it would wait for is coming."""
            if ending and self._polled_own_ends(until.result(), polled):
                return 0
            if ending and until.result() is None:
                # A queue has no end offsets: the end is a poll that brings nothing, and
                # what the source published last may still be on its way to this member.
                return QUEUE_END_WAIT
            if not self.settings.once:
                return CONTINUOUS_POLL_TIMEOUT
            return POLL_TIMEOUT if ending else ONCE_POLL_TIMEOUT

        while not stop.is_set():
            # The end offsets were taken before this poll, whose rebalance callbacks
            # brought the assignment up to date with the topics they name.
            ending = until.done()
            paused = out.full()
            if paused:
                batches = await self._poll_paused(out)
            else:
                batches = await consumer.poll(self.settings.max_rows, timeout(ending, polled))
            heartbeats.heartbeat(sum(len(batch.messages) for batch in batches))
            if lag is not None:
                moved = paused or bool(batches)
                await lag.sample(consumer, self.assigned, self.committed, moved)
            for tp in list(polled):
                if tp not in self.assigned:
                    del polled[tp]
            for tp in self.assigned:
                polled.setdefault(tp, self.consumed.get(tp, 0))
            for batch in batches:
                tp = (batch.topic, batch.partition)
                if tp not in self.assigned:
                    # A driver without group callbacks: owning what it hands out.
                    await self.on_partitions_assigned({tp})
                self.parts.metrics.rows_consumed += len(batch.messages)
                records = await loop.run_in_executor(
                    self.parts.pool, in_log_context(self._to_records), batch
                )
                polled[tp] = batch.next_offset
                await out.put(_Decoded(tp, batch.next_offset, records, batch.ack_token))
            if ending and await self._finished(until.result(), polled, bool(batches)):
                break
        # Only on a normal end: after a failure or a cancel the write stage is gone, and a
        # full queue would never take this.
        await out.put(None)

    def _polled_own_ends(
        self, targets: dict[TopicPartition, int] | None, polled: dict[TopicPartition, int]
    ) -> bool:
        """Whether this member polled its own partitions up to ``targets`` (never, on a
        broker without end offsets: there the end is a poll that brings nothing)."""
        if targets is None:
            return False
        return _reached(polled, {tp: end for tp, end in targets.items() if tp in self.assigned})

    async def _finished(
        self,
        targets: dict[TopicPartition, int] | None,
        polled: dict[TopicPartition, int],
        got_messages: bool,
    ) -> bool:
        """``--once``: whether the group has consumed up to ``targets``: this member's own
        partitions by what it polled, the others' by the group's commits (a member that owns
        nothing yet, because a killed run's member still holds partitions until its session
        expires, waits for them instead of calling the run done)."""
        if targets is None:
            return not got_messages
        if not self._polled_own_ends(targets, polled):
            return False
        others = {tp: end for tp, end in targets.items() if tp not in self.assigned and end > 0}
        if not others:
            return True
        assert self.consumer is not None
        return _reached(await self.consumer.committed(), others)

    async def _poll_paused(
        self, out: asyncio.Queue[_Decoded | _Barrier | None]
    ) -> list[ConsumedBatch]:
        """The task is behind: wait for room in the queue with every owned partition paused,
        polling now and then so the group's callbacks run and the member stays in. Returns
        what partitions assigned meanwhile (not paused yet) brought."""
        assert self.consumer is not None
        paused = set(self.assigned)
        await self.consumer.pause(paused)
        try:
            while out.full():
                self._room.clear()
                batches = await self.consumer.poll(self.settings.max_rows, 0)
                if batches:
                    return batches
                await wait_for_event(self._room, PAUSED_POLL_INTERVAL)
            return []
        finally:
            await self.consumer.resume(paused)

    async def _write_stage(self, source: asyncio.Queue[_Decoded | _Barrier | None]) -> None:
        last_commit = time.monotonic()
        while True:
            item = await self._next_item(source, last_commit)
            self._room.set()
            if item is None:
                return
            if isinstance(item, _Barrier):
                await self._flush_and_commit()
                item.done.set_result(None)
                continue
            for record_batch in item.records:
                await self._put(record_batch)
            if item.next_offset and item.partition in self.assigned:
                self.consumed[item.partition] = item.next_offset
                if item.ack_token is not None:
                    self.unacked.append((item.partition, item.next_offset, item.ack_token))
            due = time.monotonic() - last_commit >= self.settings.commit_interval
            if due or self._commit_requested:
                await self._flush_and_commit()
                last_commit = time.monotonic()

    async def _next_item(
        self, source: asyncio.Queue[_Decoded | _Barrier | None], last_commit: float
    ) -> _Decoded | _Barrier | None:
        """The next item of the decode stage, or ``_IDLE`` when a commit falls due first:
        ``commit_interval`` after the last one, at once when the task asked. With nothing
        to commit there is no deadline: an idle sink waits without waking."""
        if not self._uncommitted():
            return await source.get()
        if self._commit_requested:
            deadline = 0.0
        else:
            deadline = last_commit + self.settings.commit_interval - time.monotonic()
        try:
            # Not asyncio.wait_for: on Python 3.11 it drops a cancel that arrives as the
            # item does, and the loop would run on after its run was torn down.
            async with asyncio.timeout(max(0.0, deadline)):
                return await source.get()
        except TimeoutError:
            return _IDLE

    async def _put(self, batch: RecordBatch) -> None:
        s = self.settings
        await retrying(
            lambda: self.thread.call(self.thread.task.put, batch),
            "sink put",
            s.retry_timeout,
            s.retry_max_delay,
        )
        self.parts.metrics.rows_written += batch.num_rows
        self.parts.metrics.times.put(batch.timestamps)

    def _to_records(self, consumed: ConsumedBatch) -> list[RecordBatch]:
        """Decode and transform one consumed batch (on a pool thread)."""
        messages = consumed.messages
        offsets = messages.offsets
        assert offsets is not None
        groups = None
        if consumed.records is not None:  # a run without a broker: the source's own rows
            groups = [_handed_over(consumed.records)]
        elif self.parts.published is not None:
            groups = self.parts.published.take(consumed.topic, consumed.partition, offsets)
        if groups is None:
            decoded = self.parts.converter.decode_with_headers(
                consumed.topic, messages.values, messages.keys, messages.headers
            )
            self.parts.dead_letters.report_messages(
                messages, decoded.failed, "convert", consumed.topic, consumed.partition
            )
            groups = decoded.groups
        batches = []
        for group in groups:
            rows = group.rows
            first = int(offsets[rows[0].as_py()].as_py())
            last = int(offsets[rows[len(rows) - 1].as_py()].as_py())
            where = consumed.topic, consumed.partition
            marks = (
                PositionMark(0, broker_position(*where, first)),
                PositionMark(group.values.num_rows, broker_position(*where, last + 1)),
            )
            batch = RecordBatch(
                values=group.values,
                schema=group.schema,
                marks=marks,
                keys=group.keys,
                key_schema=self._key_schema(consumed.topic, group.keys),
                timestamps=_pick(messages.timestamps, rows),
                tombstones=group.tombstones,
                row_headers=_pick(messages.headers, rows),
                message_ids=_pick(messages.carried_message_ids, rows),
                topic=consumed.topic,
                partition=consumed.partition,
            )
            batches.extend(apply_transforms(self.transforms, batch, self.parts.dead_letters))
        return batches

    def _key_schema(self, topic: str, keys: pa.RecordBatch | None) -> Schema | None:
        """The omconnect schema of decoded keys, made once per topic and Arrow schema."""
        if keys is None:
            return None
        found = self._key_schemas.get((topic, keys.schema))
        if found is None:
            found = from_arrow_schema(keys.schema, name=f"{topic}-key")
            self._key_schemas[(topic, keys.schema)] = found
        return found

    def _uncommitted(self) -> bool:
        return self.consumed != self.committed or bool(self.unacked)

    async def _flush_and_commit(self) -> None:
        if not self._uncommitted():
            # A request made before its rows were put (the broker of a run without one asks
            # as it hands them over) stands until they are.
            return
        self._commit_requested = False
        positions = [broker_position(t, p, o) for (t, p), o in self.consumed.items()]
        await self.parts.dead_letters.drain()
        durable = await self._flush(positions)
        offsets = {
            tp: offset
            for tp, offset in _broker_offsets(durable).items()
            if tp in self.assigned and offset > self.committed.get(tp, -1)
        }
        assert self.consumer is not None
        if self.parts.capabilities.acks:
            done = [
                e for e in self.unacked if e[1] <= offsets.get(e[0], self.committed.get(e[0], -1))
            ]
            if done:
                await self.consumer.ack([token for _, _, token in done])
                self.unacked = [e for e in self.unacked if e not in done]
        elif offsets:
            try:
                await self.consumer.commit(offsets)
            except RebalanceError as error:
                # The group moved on; the new owner reads from the last commit. What this
                # member wrote since is delivered again (at least once), never lost.
                log.warning("commit refused, partitions were reassigned: %s", error)
                return
        self.committed.update(offsets)
        self.parts.metrics.sink_commits += 1
        self.parts.metrics.times.flushed()

    async def _flush(self, positions: list[Position]) -> list[Position]:
        """The task's flush; the positions it says are durable."""
        s = self.settings
        if self.stores_positions:
            try:
                result = await self.thread.call(self.thread.task.flush, positions)
            except Exception as error:
                raise _Rewind() from error
        else:
            result = await retrying(
                lambda: self.thread.call(self.thread.task.flush, positions),
                "sink flush",
                s.retry_timeout,
                s.retry_max_delay,
            )
        return positions if result is None else list(result)


class _LagProbe:
    """Samples the consumer lag of the sink's partitions every ``LAG_SAMPLE_SECONDS``.

    The lag is the partitions' end offsets less the group's commits. The ends take a request
    to the broker; while polls bring nothing (and the consumer is not paused) nothing was
    appended to the partitions, so the ends of the last request still hold and an idle sink
    makes none: the lag still follows its commits, and stays flat (not growing) while idle.
    """

    def __init__(self, times: run_metrics.RunTimes) -> None:
        self.times = times
        self._ends: dict[TopicPartition, int] | None = None
        self._ends_of: frozenset[TopicPartition] = frozenset()
        self._moved = False
        self._sampled = float("-inf")

    async def sample(
        self,
        consumer: Consumer,
        owned: Set[TopicPartition],
        committed: dict[TopicPartition, int],
        moved: bool,
    ) -> None:
        """After a poll: ``moved`` when it brought messages or the consumer was paused."""
        self._moved = self._moved or moved
        now = time.monotonic()
        if not owned or now - self._sampled < run_metrics.LAG_SAMPLE_SECONDS:
            return
        self._sampled = now
        if self._ends is None or self._moved or self._ends_of != owned:
            try:
                ends = await consumer.end_offsets()
            except Exception as error:  # a probe never fails the run; the next poll will say
                log.debug("measuring the consumer lag failed: %s", error)
                return
            self._ends, self._ends_of, self._moved = ends, frozenset(owned), False
        self.times.consumer_lag_sampled(self._ends, owned, committed)


def _handed_over(records: RecordBatch) -> DecodedGroup:
    """The rows a source handed over with no broker between, as the group decoding their
    messages would give (their keys explicit, as a sink reading a topic gets them)."""
    return DecodedGroup(
        rows=pa.array(np.arange(records.num_rows, dtype=np.int64)),
        values=records.values,
        schema=records.schema,
        keys=records.key_columns(),
        tombstones=records.tombstones,
    )


def _pick(column: pa.Array | MessageIdRuns, rows: pa.Int64Array) -> pa.Array | MessageIdRuns:
    """``column`` at ``rows``: a zero-copy slice when the rows are one run (the usual case,
    a consumed batch of one schema), else a gather. Id runs stay runs when sliced."""
    first = rows[0].as_py() if len(rows) else 0
    if len(rows) and rows[len(rows) - 1].as_py() - first == len(rows) - 1:
        return column.slice(first, len(rows))
    return column.take(rows)


def _sink_partitions(partitions: Set[TopicPartition]) -> list[SinkPartition]:
    return [SinkPartition(topic, partition) for topic, partition in sorted(partitions)]

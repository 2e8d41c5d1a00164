"""``EmbeddedConsumer``: reads topics of the embedded log as a member of a consumer group."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Mapping, Sequence

from omconnect.runtime.brokers.base import ConsumedBatch, Consumer, TopicPartition
from omconnect.runtime.brokers.embedded import _log_store
from omconnect.runtime.brokers.embedded._append_signal import AppendSignal
from omconnect.runtime.brokers.embedded._segment_codec import SegmentCodec
from omconnect.runtime.brokers.embedded._sqlite_thread import SqliteThread
from omconnect.schemas.message_batch import MessageBatch

# How often a waiting poll looks at the file for other processes' appends: one indexed SELECT
# of the partitions table, so cheap enough to run 40 times a second.
POLL_INTERVAL = 0.025


class EmbeddedConsumer(Consumer):
    """Reads every partition of its topics, from the group's committed offsets.

    Partitions without a committed offset start at their first message (``start="earliest"``)
    or at their high-water when first seen (``"latest"``); so does a position beyond the
    high-water. A position before a trimmed partition's start moves up to it. Partitions of
    topics created after the consumer are picked up by the next poll. Reading does not commit:
    call ``commit`` with ``ConsumedBatch.next_offset`` once the messages are processed.
    """

    def __init__(
        self,
        thread: SqliteThread,
        signal: AppendSignal,
        group: str,
        topics: Sequence[str],
        start: str,
    ) -> None:
        if not topics:
            raise ValueError("a consumer needs at least one topic")
        self.group = group
        self.topics = tuple(dict.fromkeys(topics))
        self._thread = thread
        self._signal = signal
        self._start = start
        # Only touched on the connection's thread.
        self._positions: dict[TopicPartition, int] = {}
        self._decoded: dict[TopicPartition, tuple[int, MessageBatch]] = {}
        self._turn = 0

    async def poll(self, max_messages: int, timeout: float) -> list[ConsumedBatch]:
        """Up to ``max_messages`` messages after this consumer's positions, at most one batch
        per partition; waits up to ``timeout`` seconds for some to arrive, else returns []."""
        if max_messages < 1:
            raise ValueError(f"max_messages must be at least 1, got {max_messages}")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            batches = await self._thread.run(self._read_on_thread, max_messages)
            remaining = deadline - loop.time()
            if batches or remaining <= 0:
                return batches
            await self._signal.wait(min(remaining, POLL_INTERVAL))

    def _read_on_thread(
        self, connection: sqlite3.Connection, max_messages: int
    ) -> list[ConsumedBatch]:
        ranges = _log_store.partition_ranges(connection, self.topics)
        self._place_new_partitions(connection, ranges)
        ready = []
        for tp, (start, end) in sorted(ranges.items()):
            position = self._positions[tp]
            if position < start:
                position = start  # trimmed away: read on from the new start
            elif position > end:
                # Beyond the log (a recreated file, or a power loss under sync=normal):
                # reset like Kafka's auto.offset.reset rather than wait for offsets that
                # would be new, different messages.
                position = start if self._start == "earliest" else end
            self._positions[tp] = position
            if position < end:
                ready.append(tp)
        if not ready:
            return []
        self._turn += 1
        turn = self._turn % len(ready)
        batches: list[ConsumedBatch] = []
        budget = max_messages
        for tp in ready[turn:] + ready[:turn]:
            if budget == 0:
                break
            batch = self._read_partition(connection, tp, budget)
            if batch is not None:
                batches.append(batch)
                budget -= len(batch.messages)
        return batches

    def _place_new_partitions(
        self, connection: sqlite3.Connection, ranges: Mapping[TopicPartition, tuple[int, int]]
    ) -> None:
        new = [tp for tp in ranges if tp not in self._positions]
        if not new:
            return
        committed = _log_store.load_group_offsets(connection, self.group, self.topics)
        for tp in new:
            start, end = ranges[tp]
            fallback = start if self._start == "earliest" else end
            self._positions[tp] = committed.get(tp, fallback)

    def _read_partition(
        self, connection: sqlite3.Connection, tp: TopicPartition, budget: int
    ) -> ConsumedBatch | None:
        topic, partition = tp
        position = self._positions[tp]
        cached = self._decoded.get(tp)
        segments = _log_store.read_segments(
            connection, topic, partition, position, budget, cached[0] if cached else None
        )
        pieces: list[MessageBatch] = []
        first = position
        for segment in segments:
            if segment.base_offset > position:
                if pieces:
                    break  # a gap can only come from trimming; never join across it
                first = position = segment.base_offset
            if segment.body is None:
                assert cached is not None
                messages = cached[1]
            else:
                messages = SegmentCodec.decode(segment.body)
            skip = position - segment.base_offset
            take = min(segment.count - skip, budget)
            pieces.append(messages.slice(skip, take))
            position += take
            budget -= take
            if skip + take < segment.count:
                self._decoded[tp] = (segment.base_offset, messages)
            else:
                self._decoded.pop(tp, None)
            if budget == 0:
                break
        self._positions[tp] = position
        if not pieces:
            return None
        return ConsumedBatch(topic, partition, MessageBatch.concat(pieces).with_offsets(first))

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Store the group's next offsets durably (one transaction); positions of this
        consumer are not moved."""
        if offsets:
            await self._thread.run(_log_store.store_group_offsets, self.group, dict(offsets))

    async def committed(self) -> dict[TopicPartition, int]:
        """The group's committed offsets for partitions of the subscribed topics."""
        return await self._thread.run(_log_store.load_group_offsets, self.group, self.topics)

    async def end_offsets(self) -> dict[TopicPartition, int]:
        """The high-water of every existing partition of the subscribed topics."""
        ranges = await self._thread.run(_log_store.partition_ranges, self.topics)
        return {tp: end for tp, (_, end) in ranges.items()}

    async def seek(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Read these partitions from these offsets on the next poll."""
        await self._thread.run(self._seek_on_thread, dict(offsets))

    def _seek_on_thread(
        self, connection: sqlite3.Connection, offsets: dict[TopicPartition, int]
    ) -> None:
        for tp, offset in offsets.items():
            if tp[0] not in self.topics:
                raise ValueError(f"cannot seek {tp[0]!r}: the consumer reads {self.topics}")
            if offset < 0:
                raise ValueError(f"cannot seek {tp} to a negative offset ({offset})")
            self._positions[tp] = offset
            self._decoded.pop(tp, None)

    async def close(self) -> None:
        await self._thread.close()

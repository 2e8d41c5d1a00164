"""``EmbeddedProducer``: appends message batches to the embedded log."""

from __future__ import annotations

import sqlite3

import numpy as np
import pyarrow.compute as pc

from omconnect.runtime.brokers.base import Producer, SendResult
from omconnect.runtime.brokers.embedded import _log_store
from omconnect.runtime.brokers.embedded._append_signal import AppendSignal
from omconnect.runtime.brokers.embedded._log_store import PendingSegment
from omconnect.runtime.brokers.embedded._segment_codec import SegmentCodec
from omconnect.runtime.brokers.embedded._sqlite_thread import SqliteThread
from omconnect.runtime.brokers.key_partitioning import partitions_for_keys
from omconnect.schemas.message_batch import MessageBatch


class EmbeddedProducer(Producer):
    """Publishes batches through its own SQLite connection and thread.

    A send partitions the batch (Kafka's murmur2 of the key; messages without a key all go to
    one partition, rotating per send), encodes one segment per partition touched (more for
    very large batches) and appends them in one transaction. Topics are created with one
    partition on first send. Concurrent sends of one producer are applied in call order.
    """

    def __init__(
        self,
        thread: SqliteThread,
        codec: SegmentCodec,
        signal: AppendSignal,
        segment_bytes: int,
    ) -> None:
        self._thread = thread
        self._codec = codec
        self._signal = signal
        self._segment_bytes = segment_bytes
        # Only touched on the connection's thread.
        self._partition_counts: dict[str, int] = {}
        self._null_key_turn = 0

    async def send(
        self, topic: str, messages: MessageBatch, partition: int | None = None
    ) -> list[SendResult]:
        """Append ``messages`` to ``topic``; returns once the transaction committed.

        Raises:
            ValueError: ``partition`` does not exist in ``topic``.
        """
        if len(messages) == 0:
            return []
        results = await self._thread.run(self._send_on_thread, topic, messages, partition)
        self._signal.notify()
        return results

    def _send_on_thread(
        self,
        connection: sqlite3.Connection,
        topic: str,
        messages: MessageBatch,
        partition: int | None,
    ) -> list[SendResult]:
        partitions = self._partition_counts.get(topic)
        if partitions is None:
            partitions = _log_store.ensure_topic(connection, topic, 1)
            self._partition_counts[topic] = partitions
        segments: list[PendingSegment] = []
        for number, group in self._split_by_partition(messages, partitions, partition):
            segments.extend(self._encode(number, group))
        appended = _log_store.append(connection, topic, segments)
        return [SendResult(topic, p, first, count) for p, first, count in appended]

    def _split_by_partition(
        self, messages: MessageBatch, partitions: int, partition: int | None
    ) -> list[tuple[int, MessageBatch]]:
        if partition is not None:
            if not 0 <= partition < partitions:
                raise ValueError(
                    f"partition {partition} does not exist: the topic has {partitions}"
                )
            return [(partition, messages)]
        keys = messages.keys
        null_key_partition = self._null_key_turn % partitions
        if keys.null_count:
            self._null_key_turn += 1
        if partitions == 1:
            return [(0, messages)]
        targets = partitions_for_keys(keys, partitions, null_key_partition)
        first = int(targets[0])
        if bool((targets == first).all()):
            return [(first, messages)]
        # One gather for the whole batch, then zero-copy slices; the stable sort keeps each
        # partition's messages in send order.
        order = np.argsort(targets, kind="stable")
        ordered = messages.take(order)
        sorted_targets = targets[order]
        numbers, starts = np.unique(sorted_targets, return_index=True)
        ends = [*starts[1:].tolist(), len(messages)]
        return [
            (int(number), ordered.slice(int(start), int(end) - int(start)))
            for number, start, end in zip(numbers, starts, ends, strict=True)
        ]

    def _encode(self, partition: int, messages: MessageBatch) -> list[PendingSegment]:
        rows = len(messages)
        per_segment = max(1, rows * self._segment_bytes // max(1, messages.nbytes))
        segments = []
        for start in range(0, rows, per_segment):
            part = messages.slice(start, per_segment)
            max_timestamp = pc.max(part.timestamps).as_py()
            segments.append(
                PendingSegment(
                    partition=partition,
                    count=len(part),
                    max_timestamp=int(max_timestamp or 0),
                    body=self._codec.encode(part),
                )
            )
        return segments

    async def close(self) -> None:
        await self._thread.close()

"""``RedisProducer``: appends message batches to the streams of topic partitions."""

from __future__ import annotations

import asyncio

from omconnect.runtime.brokers.base import BrokerError, Producer, SendResult, TopicSettings
from omconnect.runtime.brokers.key_partitioning import KeyPartitioner
from omconnect.runtime.brokers.redis._catalog import TopicCatalog
from omconnect.runtime.brokers.redis._connection import (
    RedisConnection,
    ScriptCall,
    broker_errors,
    call_script,
)
from omconnect.runtime.brokers.redis._entry_codec import append_columns
from omconnect.schemas.message_batch import MessageBatch

# Entries per script call: one call holds the (single-threaded) server for its duration,
# about 10 ms for this many small messages.
CHUNK_ENTRIES = 2000
CHUNK_BYTES = 4 * 1024 * 1024


class RedisProducer(Producer):
    """Publishes through the broker's client.

    A send partitions the batch (Kafka's murmur2 of the key; messages without a key all go to
    one partition, rotating per send), and appends each partition's messages with the
    ``APPEND`` script, every partition's calls in one pipeline: one round trip per batch.
    Each call is atomic, so a partition's messages of one call get consecutive offsets. A
    send returns once the server replied (with ``appendfsync always`` that is on disk; with
    the default ``everysec`` up to a second of acknowledged writes can be lost in a crash).
    Sends of one producer are applied in call order: they queue on a lock, and redis-py
    does not retry a failed command (a send that fails is not retried behind later ones).

    Retention is applied while appending: ``retention_bytes`` as ``XTRIM MAXLEN ~`` with the
    count those bytes hold at the batch's mean entry size, ``retention_ms`` as
    ``XTRIM MINID ~`` from the stream's time checkpoints.
    """

    def __init__(self, connection: RedisConnection, catalog: TopicCatalog) -> None:
        self._connection = connection
        self._catalog = catalog
        self._order = asyncio.Lock()
        self._partitioner = KeyPartitioner()
        self._closed = False

    async def send(
        self, topic: str, messages: MessageBatch, partition: int | None = None
    ) -> list[SendResult]:
        """Append ``messages`` to ``topic`` (created with one partition if new).

        Raises:
            ValueError: ``partition`` does not exist in ``topic``, or a bad topic name.
            BrokerError: the server cannot be reached or refused; some of the messages may
                have been stored.
        """
        if self._closed:
            raise BrokerError("the producer is closed")
        if len(messages) == 0:
            return []
        async with self._order:
            settings = await self._catalog.settings_for_send(topic)
            parts = self._partitioner.split(messages, settings.partitions, partition)
            return await self._append(topic, settings, parts)

    async def _append(
        self, topic: str, settings: TopicSettings, parts: list[tuple[int, MessageBatch]]
    ) -> list[SendResult]:
        keys = self._connection.keys
        scripts = await self._connection.scripts()
        client = await self._connection.client()
        calls: list[ScriptCall] = []
        counts: list[tuple[int, int]] = []
        for number, group in parts:
            stream = [keys.stream(topic, number), keys.checkpoints(topic, number)]
            maxlen = _max_entries(settings.retention_bytes, group)
            retention_ms = settings.retention_ms or 0
            for chunk in _chunks(group):
                calls.append((stream, [len(chunk), maxlen, retention_ms, *append_columns(chunk)]))
                counts.append((number, len(chunk)))
        async with broker_errors(self._connection, f"appending to topic {topic!r}"):
            replies = await call_script(client, scripts.append, calls)
        results: list[SendResult] = []
        for (number, count), (first, _) in zip(counts, replies, strict=True):
            first_offset = int(first[2:]) - 1
            previous = results[-1] if results else None
            if (
                previous is not None
                and previous.partition == number
                and previous.first_offset + previous.count == first_offset
            ):
                results[-1] = SendResult(
                    topic, number, previous.first_offset, previous.count + count
                )
            else:
                results.append(SendResult(topic, number, first_offset, count))
        return results

    async def close(self) -> None:
        """Nothing is buffered: every send returned after the server replied."""
        self._closed = True


def _chunks(messages: MessageBatch) -> list[MessageBatch]:
    per_chunk = CHUNK_ENTRIES
    if messages.nbytes > CHUNK_BYTES:
        per_chunk = max(1, min(per_chunk, len(messages) * CHUNK_BYTES // messages.nbytes))
    return [messages.slice(start, per_chunk) for start in range(0, len(messages), per_chunk)]


def _max_entries(retention_bytes: int | None, messages: MessageBatch) -> int:
    """How many entries of this batch's mean size ``retention_bytes`` holds (0: no limit)."""
    if retention_bytes is None:
        return 0
    mean = max(1, messages.nbytes // max(1, len(messages)))
    return max(1, retention_bytes // mean)

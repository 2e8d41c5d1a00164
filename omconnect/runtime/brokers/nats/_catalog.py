"""Topics on the NATS server: creating their partition streams, counting and listing them.

Each stream of a topic carries the topic's partition count in its description (JSON), so
``partitions(topic)`` is one stream-info request on partition 0. A topic's streams are created
from the last partition down to partition 0, so a topic whose partition 0 exists is complete.
Listing every topic reads the server's stream list (pages of 256 with their state), kept for
``LISTING_TTL`` seconds so that pattern subscriptions can look for new topics on every poll.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Iterable

import nats.errors
import nats.js.errors
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig, StreamInfo

from omconnect.runtime.brokers.base import BrokerError, TopicInfo, TopicPartition, TopicSettings
from omconnect.runtime.brokers.nats._connection import NatsConnection, describe
from omconnect.runtime.brokers.nats._naming import check_topic

log = logging.getLogger("omconnect.broker.nats")

LISTING_TTL = 1.0
_NAME_IN_USE = 10058  # a stream of that name exists with another configuration
_SUBJECTS_OVERLAP = 10065


class TopicCatalog:
    """The topics of one connection's namespace."""

    def __init__(self, connection: NatsConnection) -> None:
        self._connection = connection
        self._naming = connection.naming
        self._counts: dict[str, int] = {}
        self._listing: list[tuple[str, int, StreamInfo]] = []
        self._listed_at = -LISTING_TTL

    async def partitions(self, topic: str, *, create: bool = False) -> int | None:
        """How many partitions ``topic`` has (None if it does not exist and ``create`` is
        false; else it is created with one)."""
        count = self._counts.get(topic)
        if count is not None:
            return count
        info = await self._stream_info(topic, 0)
        if info is None:
            if not create:
                return None
            return await self.ensure(topic, TopicSettings())
        count = _partition_count(info)
        self._counts[topic] = count
        return count

    def forget(self, topic: str) -> None:
        """Drop what is known of ``topic`` (its streams were deleted under us)."""
        self._counts.pop(topic, None)

    async def ensure(self, topic: str, settings: TopicSettings) -> int:
        """Create ``topic`` unless it exists; its partition count either way.

        Raises:
            ValueError: a name NATS cannot carry, or settings that are not positive.
            BrokerError: the server refused (another stream already takes the subjects).
        """
        check_topic(topic)
        if settings.partitions < 1:
            raise ValueError(f"a topic has at least one partition, got {settings.partitions}")
        retention = {
            "retention_ms": settings.retention_ms,
            "retention_bytes": settings.retention_bytes,
        }
        for name, value in retention.items():
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be positive, got {value}")
        existing = await self._stream_info(topic, 0)
        if existing is None:
            for partition in reversed(range(settings.partitions)):
                await self._create_stream(topic, partition, settings)
            existing = await self._stream_info(topic, 0)
            if existing is None:
                raise BrokerError(f"topic {topic!r} vanished right after it was created")
            if settings.compacted:
                log.warning(
                    "topic %r is marked compacted, but the nats driver does not compact (keys "
                    "travel in headers, not subjects): it keeps every message until retention "
                    "trims it",
                    topic,
                )
        count = _partition_count(existing)
        self._counts[topic] = count
        self._listed_at = -LISTING_TTL
        return count

    async def _create_stream(self, topic: str, partition: int, settings: TopicSettings) -> None:
        options = self._connection.options
        subject = self._naming.subject(topic, partition)
        config = StreamConfig(
            name=self._naming.stream(topic, partition),
            description=json.dumps(
                {
                    "omconnect_topic": topic,
                    "partition": partition,
                    "partitions": settings.partitions,
                }
            ),
            subjects=[subject],
            retention=RetentionPolicy.LIMITS,
            max_bytes=settings.retention_bytes or -1,
            max_age=settings.retention_ms / 1000 if settings.retention_ms else None,
            discard=DiscardPolicy.OLD,
            storage=StorageType.MEMORY if options.storage == "memory" else StorageType.FILE,
            num_replicas=options.replicas,
            duplicate_window=options.duplicate_window,
        )
        js = await self._connection.jetstream()
        try:
            await js.add_stream(config)
        except nats.js.errors.APIError as exc:
            if exc.err_code == _NAME_IN_USE:
                return  # made meanwhile (by another process), with its own settings
            if exc.err_code == _SUBJECTS_OVERLAP:
                raise BrokerError(
                    f"cannot create topic {topic!r}: another stream on the NATS server already "
                    f"takes its subject {subject!r} (pick another topic name or a "
                    "?namespace= for omconnect)"
                ) from None
            raise BrokerError(f"cannot create topic {topic!r}: {describe(exc)}") from None

    async def _stream_info(self, topic: str, partition: int) -> StreamInfo | None:
        js = await self._connection.jetstream()
        try:
            return await js.stream_info(self._naming.stream(topic, partition))
        except nats.js.errors.NotFoundError:
            return None
        except (nats.errors.Error, TimeoutError) as exc:
            raise BrokerError(
                f"NATS {self._connection.display}: cannot read topic {topic!r}: {describe(exc)}"
            ) from None

    async def listing(self, fresh: bool = False) -> list[tuple[str, int, StreamInfo]]:
        """(topic, partition, stream info) of every partition stream of the namespace,
        at most ``LISTING_TTL`` seconds old unless ``fresh``."""
        if fresh or time.monotonic() - self._listed_at >= LISTING_TTL:
            js = await self._connection.jetstream()
            found = []
            offset = 0
            try:
                while page := await js.streams_info(offset):
                    offset += len(page)
                    for info in page:
                        where = self._naming.partition_of(info.config.name or "")
                        if where is not None:
                            found.append((where[0], where[1], info))
            except (nats.errors.Error, TimeoutError) as exc:
                raise BrokerError(
                    f"NATS {self._connection.display}: cannot list streams: {describe(exc)}"
                ) from None
            self._listing = found
            self._listed_at = time.monotonic()
        return self._listing

    async def topic_counts(self, fresh: bool = False) -> dict[str, int]:
        """Every complete topic (its partition 0 exists) and its partition count."""
        return {
            topic: _partition_count(info)
            for topic, partition, info in await self.listing(fresh)
            if partition == 0
        }

    async def topic_infos(self) -> list[TopicInfo]:
        """Every topic with its partition count and the messages its streams hold."""
        listing = await self.listing(fresh=True)
        counts = {t: _partition_count(i) for t, p, i in listing if p == 0}
        messages = dict.fromkeys(counts, 0)
        for topic, partition, info in listing:
            if topic in counts and partition < counts[topic]:
                messages[topic] += info.state.messages
        return [TopicInfo(t, counts[t], messages[t]) for t in sorted(counts)]

    async def high_waters(self, topics: Iterable[str]) -> dict[TopicPartition, int]:
        """The offset after the last message of every partition of ``topics`` that exist."""
        wanted = [(t, p) for t in topics for p in range(await self.partitions(t) or 0)]
        infos = await asyncio.gather(*(self._stream_info(t, p) for t, p in wanted))
        return {tp: info.state.last_seq for tp, info in zip(wanted, infos, strict=True) if info}

    async def bounds(self, topic: str, partition: int) -> tuple[int, int] | None:
        """(first offset held, high-water) of a partition, or None if it does not exist."""
        info = await self._stream_info(topic, partition)
        if info is None:
            return None
        state = info.state
        return max(state.first_seq - 1, 0), state.last_seq


def _partition_count(info: StreamInfo) -> int:
    try:
        return int(json.loads(info.config.description or "{}")["partitions"])
    except (ValueError, KeyError, TypeError):
        return 1

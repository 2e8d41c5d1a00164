"""The topics of a broker: one hash field per topic (``<prefix>:topics``), its settings as
JSON. ``HSETNX`` creates a topic atomically, so the first creator's settings stay; a topic's
partitions are streams made by their first entry (or by the first group reading them)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable

from omconnect.runtime.brokers.base import TopicInfo, TopicPartition, TopicSettings
from omconnect.runtime.brokers.redis._connection import RedisConnection, broker_errors
from omconnect.runtime.brokers.redis._keys import check_topic

log = logging.getLogger("omconnect.broker.redis")


def _to_json(settings: TopicSettings) -> str:
    return json.dumps(
        {
            "partitions": settings.partitions,
            "compacted": settings.compacted,
            "retention_ms": settings.retention_ms,
            "retention_bytes": settings.retention_bytes,
        },
        sort_keys=True,
    )


def _from_json(raw: bytes | str) -> TopicSettings:
    data = json.loads(raw)
    return TopicSettings(
        partitions=int(data.get("partitions", 1)),
        compacted=bool(data.get("compacted", False)),
        retention_ms=data.get("retention_ms"),
        retention_bytes=data.get("retention_bytes"),
    )


def _text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


def check_settings(settings: TopicSettings) -> None:
    """Raises ValueError for settings no topic can have."""
    if settings.partitions < 1:
        raise ValueError(f"a topic has at least one partition, not {settings.partitions}")
    for name in ("retention_ms", "retention_bytes"):
        value = getattr(settings, name)
        if value is not None and value <= 0:
            raise ValueError(f"{name} must be positive, not {value}")


class TopicCatalog:
    """Reads and creates topics; a topic's settings never change, so they are cached."""

    def __init__(self, connection: RedisConnection) -> None:
        self._connection = connection
        self._known: dict[str, TopicSettings] = {}

    async def ensure(self, name: str, settings: TopicSettings) -> TopicSettings:
        """Create ``name`` with ``settings`` unless it exists; the settings it has.

        Raises:
            ValueError: a name or settings no topic can have.
            BrokerError: the server cannot be reached or refused.
        """
        check_topic(name)
        check_settings(settings)
        client = await self._connection.client()
        async with broker_errors(self._connection, f"creating topic {name!r}"):
            created = await client.hsetnx(self._connection.keys.topics, name, _to_json(settings))
            stored = settings if created else await self._stored(name)
        if created and settings.compacted:
            log.warning(
                "topic %r: Redis streams cannot compact by key; it keeps every message "
                "(or what retention leaves)",
                name,
            )
        self._known[name] = stored
        return stored

    async def settings_for_send(self, name: str) -> TopicSettings:
        """The settings of ``name``, creating it with one partition if it does not exist."""
        known = self._known.get(name)
        if known is not None:
            return known
        return await self.ensure(name, TopicSettings())

    async def _stored(self, name: str) -> TopicSettings:
        client = await self._connection.client()
        raw = await client.hget(self._connection.keys.topics, name)
        return _from_json(raw) if raw is not None else TopicSettings()

    async def all(self) -> dict[str, TopicSettings]:
        """Every topic of the prefix with its settings, read now."""
        client = await self._connection.client()
        async with broker_errors(self._connection, "listing topics"):
            raw = await client.hgetall(self._connection.keys.topics)
        topics = {_text(name): _from_json(value) for name, value in raw.items()}
        self._known.update(topics)
        return topics

    async def partition_counts(self) -> dict[str, int]:
        return {name: settings.partitions for name, settings in (await self.all()).items()}

    async def topic_infos(self) -> list[TopicInfo]:
        """Every topic with its partitions and the messages its streams hold now."""
        topics = await self.all()
        names = sorted(topics)
        keys = self._connection.keys
        client = await self._connection.client()
        async with broker_errors(self._connection, "counting messages"):
            pipe = client.pipeline(transaction=False)
            for name in names:
                for partition in range(topics[name].partitions):
                    pipe.xlen(keys.stream(name, partition))
            lengths = iter(await pipe.execute())
        return [
            TopicInfo(
                name,
                topics[name].partitions,
                sum(int(next(lengths)) for _ in range(topics[name].partitions)),
            )
            for name in names
        ]

    async def high_waters(self, topics: Iterable[str]) -> dict[TopicPartition, int]:
        """The offset after the last message of every partition of the existing ``topics``."""
        counts = await self.partition_counts()
        partitions = [(t, p) for t in sorted(set(topics)) if t in counts for p in range(counts[t])]
        if not partitions:
            return {}
        scripts = await self._connection.scripts()
        keys = [self._connection.keys.stream(t, p) for t, p in partitions]
        async with broker_errors(self._connection, "reading end offsets"):
            ends = await scripts.high_waters(keys=keys)
        return {tp: int(end) for tp, end in zip(partitions, ends, strict=True)}

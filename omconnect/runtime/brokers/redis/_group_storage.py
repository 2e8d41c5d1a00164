"""A consumer group as one JSON document in a Redis string (``<prefix>:group:<group>:doc``),
its committed offsets apart in a hash (``:offsets``); the document and the protocol are
``omconnect.runtime.brokers.groups``.

A change ``WATCH``es the document, reads it and writes it back in a MULTI/EXEC that fails
when someone wrote in between. Other commands ride in the same MULTI: a commit stores the
offsets and acknowledges (``XACK``) the entries below them, a sync or leave removes the
heartbeats of the members it dropped; the generation and ownership a commit needs are checked
on the watched document, as a Kafka coordinator checks a commit.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Set

import redis.exceptions as redis_errors
from redis.asyncio.client import Pipeline

from omconnect.runtime.brokers.base import BrokerError, TopicPartition
from omconnect.runtime.brokers.groups import Commit, GroupAttempt, GroupDocument, GroupStorage
from omconnect.runtime.brokers.redis import _scripts
from omconnect.runtime.brokers.redis._connection import RedisConnection, broker_errors
from omconnect.runtime.brokers.redis._keys import offset_field, parse_offset_field


class RedisGroupStorage(GroupStorage):
    """One group's document, offsets and heartbeats (``alive_key``, see ``_heartbeats``)."""

    def __init__(self, connection: RedisConnection, group: str) -> None:
        self.group = group
        self.keys = keys = connection.keys
        self._connection = connection
        self.key = keys.group_document(group)
        self.offsets_key = keys.group_offsets(group)
        self.alive_key = keys.group_alive(group)

    @contextlib.asynccontextmanager
    async def attempt(self) -> AsyncIterator[GroupAttempt]:
        client = await self._connection.client()
        async with (
            broker_errors(self._connection, f"updating consumer group {self.group!r}"),
            client.pipeline(transaction=True) as pipe,
        ):
            yield _WatchAttempt(self, pipe)

    async def committed(
        self, partitions: Set[TopicPartition] | None, document: GroupDocument | None
    ) -> dict[TopicPartition, int]:
        del document  # the offsets are in their hash
        client = await self._connection.client()
        if partitions is None:
            async with broker_errors(self._connection, f"reading the offsets of {self.group!r}"):
                raw = await client.hgetall(self.offsets_key)
            return {parse_offset_field(f): int(o) for f, o in raw.items()}
        if not partitions:
            return {}
        ordered = sorted(partitions)
        async with broker_errors(self._connection, f"reading the offsets of {self.group!r}"):
            values = await client.hmget(self.offsets_key, [offset_field(tp) for tp in ordered])
        return {tp: int(o) for tp, o in zip(ordered, values, strict=True) if o is not None}

    async def remove_if_unused(self, document: GroupDocument) -> None:
        """Also the group's Redis consumer groups on the streams of ``document``'s topics."""
        streams = [
            self.keys.stream(t, p) for t, count in document.partitions.items() for p in range(count)
        ]
        with contextlib.suppress(BrokerError):
            await self._delete_if_unused(streams)

    async def _delete_if_unused(self, streams: list[str]) -> None:
        client = await self._connection.client()
        async with (
            broker_errors(self._connection, f"removing consumer group {self.group!r}"),
            client.pipeline(transaction=True) as pipe,
        ):
            await pipe.watch(self.key, self.offsets_key)
            document = GroupDocument.from_json(await pipe.get(self.key), with_offsets=False)
            if document.members or await pipe.exists(self.offsets_key):
                return
            pipe.multi()
            pipe.delete(self.key)
            for stream in streams:
                pipe.xgroup_destroy(stream, self.group)
            try:
                await pipe.execute(raise_on_error=False)
            except redis_errors.WatchError:
                return


class _WatchAttempt(GroupAttempt):
    def __init__(self, storage: RedisGroupStorage, pipe: Pipeline) -> None:
        self._storage = storage
        self._pipe = pipe

    async def read(self) -> GroupDocument:
        await self._pipe.watch(self._storage.key)
        raw = await self._pipe.get(self._storage.key)
        return GroupDocument.from_json(raw, with_offsets=False)

    async def write(
        self, document: GroupDocument | None, commit: Commit | None, forget: Set[str]
    ) -> bool:
        storage, pipe = self._storage, self._pipe
        pipe.multi()
        if document is not None:
            pipe.set(storage.key, document.to_json())
        if forget:
            pipe.zrem(storage.alive_key, *sorted(forget))
        if commit is not None:
            self._queue_commit(commit)
        try:
            await pipe.execute()
        except redis_errors.WatchError:
            return False
        return True

    def _queue_commit(self, commit: Commit) -> None:
        storage, pipe = self._storage, self._pipe
        keys, group = storage.keys, storage.group
        pipe.hset(
            storage.offsets_key,
            mapping={offset_field(tp): o for tp, o in commit.offsets.items()},
        )
        for tp, offset in commit.offsets.items():
            stream = keys.stream(*tp)
            if commit.reset:  # an offset reset: the group reads from there next
                pipe.eval(_scripts.SEEK, 1, stream, group, offset)
            pipe.eval(_scripts.ACK_BELOW, 1, stream, group, offset)

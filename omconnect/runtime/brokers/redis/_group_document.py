"""A consumer group as one JSON document in a Redis string, changed by compare-and-set.

The document (``<prefix>:group:<group>:doc``) holds the group's ``generation``, its
``members`` (each one's subscription and the generation it last synced at), the partition
counts of the topics they subscribe to and the ``owners`` of the partitions. Every change
``WATCH``es the document, reads it, applies a function and writes it back in a MULTI/EXEC
that fails when someone wrote in between (then it reads again and retries). Other commands
can ride in the same MULTI: a commit stores the offsets (``:offsets``, a hash) and
acknowledges the entries below them only if the member's generation and ownership, checked
on the watched document, still hold, as a Kafka coordinator checks a commit.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import redis.exceptions as redis_errors
from redis.asyncio.client import Pipeline

from omconnect.runtime.brokers.base import BrokerError, TopicPartition
from omconnect.runtime.brokers.redis._assignment import Subscription
from omconnect.runtime.brokers.redis._connection import RedisConnection, broker_errors

T = TypeVar("T")

_ATTEMPTS = 100


@dataclass
class GroupDocument:
    """The state of one group; see the module docstring."""

    generation: int = 0
    members: dict[str, dict[str, Any]] = field(default_factory=dict)
    partitions: dict[str, int] = field(default_factory=dict)
    owners: dict[str, dict[str, str]] = field(default_factory=dict)

    @classmethod
    def from_json(cls, raw: bytes | str | None) -> GroupDocument:
        if not raw:
            return cls()
        data = json.loads(raw)
        return cls(
            generation=int(data.get("generation", 0)),
            members=dict(data.get("members", {})),
            partitions={t: int(n) for t, n in data.get("partitions", {}).items()},
            owners={t: dict(o) for t, o in data.get("owners", {}).items()},
        )

    def to_json(self) -> str:
        return json.dumps(
            {
                "generation": self.generation,
                "members": self.members,
                "partitions": self.partitions,
                "owners": self.owners,
            },
            sort_keys=True,
            separators=(",", ":"),
        )

    def subscriptions(self) -> list[Subscription]:
        """Every member's subscription, sorted by member id."""
        return [
            Subscription(mid, tuple(m.get("topics", ())), m.get("pattern"))
            for mid, m in sorted(self.members.items())
        ]

    def owner(self, tp: TopicPartition) -> str | None:
        return self.owners.get(tp[0], {}).get(str(tp[1]))

    def set_owner(self, tp: TopicPartition, member_id: str | None) -> None:
        topic, partition = tp[0], str(tp[1])
        if member_id is not None:
            self.owners.setdefault(topic, {})[partition] = member_id
        elif topic in self.owners:
            self.owners[topic].pop(partition, None)
            if not self.owners[topic]:
                del self.owners[topic]

    def owned_by(self, member_id: str) -> set[TopicPartition]:
        return {
            (topic, int(p))
            for topic, owners in self.owners.items()
            for p, owner in owners.items()
            if owner == member_id
        }

    def drop_member(self, member_id: str, *, release: bool) -> None:
        """Remove a member. One that leaves releases its partitions (the next owner takes
        its unprocessed entries at once); a dead one stays their owner of record, so the next
        owner knows to wait until its entries have been idle for ``claim_idle``."""
        self.members.pop(member_id, None)
        if release:
            for tp in self.owned_by(member_id):
                self.set_owner(tp, None)


Extra = Callable[[Pipeline, GroupDocument], None]


class GroupStore:
    """Loads and changes one group's document (and, in the same step, its offsets)."""

    def __init__(self, connection: RedisConnection, group: str) -> None:
        self.group = group
        self._connection = connection
        keys = connection.keys
        self.key = keys.group_document(group)
        self.offsets_key = keys.group_offsets(group)
        self.alive_key = keys.group_alive(group)

    async def change(
        self, apply: Callable[[GroupDocument], T], extra: Extra | None = None
    ) -> tuple[T, GroupDocument]:
        """Apply ``apply`` to the current document and store it atomically, together with
        the commands ``extra`` queues (given the changed document); reads and applies again
        when another member wrote meanwhile. Nothing is written when ``apply`` raised (its
        exception propagates), nor when it changed nothing and there is no ``extra``.

        Returns:
            What ``apply`` returned and the document as stored.
        """
        client = await self._connection.client()
        async with broker_errors(self._connection, f"updating consumer group {self.group!r}"):
            for _ in range(_ATTEMPTS):
                async with client.pipeline(transaction=True) as pipe:
                    await pipe.watch(self.key)
                    raw = await pipe.get(self.key)
                    document = GroupDocument.from_json(raw)
                    before = document.to_json()
                    result = apply(document)
                    after = document.to_json()
                    if after == before and extra is None:
                        return result, document
                    pipe.multi()
                    if after != before:
                        pipe.set(self.key, after)
                    if extra is not None:
                        extra(pipe, document)
                    try:
                        await pipe.execute()
                    except redis_errors.WatchError:
                        continue
                    return result, document
        raise BrokerError(f"consumer group {self.group!r} changed {_ATTEMPTS} times in a row")

    async def delete_if_unused(self, streams: Sequence[str]) -> None:
        """Remove a group that has no members and never committed (a ``topics tail``
        group): its document, and its Redis consumer groups on ``streams``; unless someone
        joined or committed meanwhile."""
        client = await self._connection.client()
        async with (
            broker_errors(self._connection, f"removing consumer group {self.group!r}"),
            client.pipeline(transaction=True) as pipe,
        ):
            await pipe.watch(self.key, self.offsets_key)
            document = GroupDocument.from_json(await pipe.get(self.key))
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

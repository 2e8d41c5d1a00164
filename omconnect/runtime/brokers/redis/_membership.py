"""``GroupMember``: one consumer's place in its group (see ``_group_document``).

Liveness: a member puts a heartbeat (the server's time) in the group's ``:alive`` sorted set
every ``heartbeat`` seconds from a background task, and on every sync. One whose heartbeat is
older than ``claim_idle`` plus two heartbeats is dead: the next member to sync drops it, and
its partitions go to the others. Its unprocessed entries have then been idle at least
``claim_idle``, the ``XAUTOCLAIM`` min idle time their next owner claims them with.

A member syncs (joins, or catches up with a new generation) inside ``poll``: it drops dead
members, puts its subscription and the subscribed partition counts in the document, bumps
the generation when any of that changed, and marks itself synced at it. Every member computes
the same range assignment from the document. Partitions change hands through their owner
entry: a member releases what it loses, after its revocation callback; the new owner claims
what is free, or owned by a dead member, or by one that has not synced for ``claim_idle``
seconds since the group changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping, Set
from dataclasses import dataclass

from redis.asyncio.client import Pipeline

from omconnect.runtime.brokers.base import BrokerError, CommitFencedError, TopicPartition
from omconnect.runtime.brokers.redis import _scripts
from omconnect.runtime.brokers.redis._assignment import (
    Subscription,
    range_assignment,
    subscribed_counts,
)
from omconnect.runtime.brokers.redis._catalog import TopicCatalog
from omconnect.runtime.brokers.redis._connection import RedisConnection, broker_errors
from omconnect.runtime.brokers.redis._group_document import GroupDocument, GroupStore
from omconnect.runtime.brokers.redis._keys import offset_field, parse_offset_field

log = logging.getLogger("omconnect.broker.redis")

# How often a member compares the subscribed topics with the document (a pattern's new topic).
TOPICS_INTERVAL = 1.0


@dataclass(frozen=True)
class SyncedView:
    """The group as a member synced it: its share of the partitions at this generation, and
    which of them the document says it owns now."""

    generation: int
    assignment: frozenset[TopicPartition]
    owned: frozenset[TopicPartition]


class GroupMember:
    """The member ``subscription.member_id`` of ``group``."""

    def __init__(
        self,
        connection: RedisConnection,
        catalog: TopicCatalog,
        group: str,
        subscription: Subscription,
        claim_idle: float,
    ) -> None:
        self.group = group
        self.subscription = subscription
        self.member_id = subscription.member_id
        self.generation: int | None = None
        self.claim_idle_ms = int(claim_idle * 1000)
        self.heartbeat = min(1.0, claim_idle / 4)
        self._expiry_ms = int((claim_idle + 2 * self.heartbeat) * 1000)
        self._connection = connection
        self._catalog = catalog
        self._store = GroupStore(connection, group)
        self._beating: asyncio.Task[None] | None = None
        self._dead: set[str] = set()
        self._generation_seen = 0.0
        self._topics_checked = -TOPICS_INTERVAL

    @property
    def joined(self) -> bool:
        return self.generation is not None

    async def _look(self, beat: bool) -> GroupDocument:
        """The document, and which members are dead now (a heartbeat of this one first)."""
        scripts = await self._connection.scripts()
        keys = [self._store.alive_key, self._store.key]
        async with broker_errors(self._connection, f"reading consumer group {self.group!r}"):
            now, beats, raw = await scripts.heartbeat(
                keys=keys, args=[self.member_id if beat else ""]
            )
        document = GroupDocument.from_json(raw)
        last = {beats[i].decode(): float(beats[i + 1]) for i in range(0, len(beats), 2)}
        cutoff = int(now) - self._expiry_ms
        self._dead = {
            m for m in document.members if m != self.member_id and last.get(m, 0) < cutoff
        }
        return document

    async def out_of_sync(self, pending: Set[TopicPartition]) -> bool:
        """Whether the member must sync: the generation moved, a member is dead, the
        subscribed topics changed, or a partition it waits for can be claimed now."""
        document = await self._look(beat=True)
        if document.generation != self.generation or self.member_id not in document.members:
            return True
        if self._dead:
            return True
        now = time.monotonic()
        if now - self._topics_checked >= TOPICS_INTERVAL:
            self._topics_checked = now
            counts = subscribed_counts(
                document.subscriptions(), await self._catalog.partition_counts()
            )
            if counts != document.partitions:
                return True
        return any(self.claim_idle_for(document, tp) is not None for tp in pending)

    def claim_idle_for(self, document: GroupDocument, tp: TopicPartition) -> int | None:
        """The ``XAUTOCLAIM`` min idle time (ms) this member can take ``tp`` with now, or
        None while its owner keeps it: 0 when it is free (its owner left or released it),
        ``claim_idle`` when it is taken from a dead or stuck owner."""
        owner = document.owner(tp)
        if owner is None or owner == self.member_id:
            return 0
        if owner not in document.members or owner in self._dead:
            return self.claim_idle_ms
        unsynced = document.members[owner].get("synced") != document.generation
        stuck = time.monotonic() - self._generation_seen >= self.claim_idle_ms / 1000
        return self.claim_idle_ms if unsynced and stuck else None

    async def sync(self) -> SyncedView:
        """Join or catch up (see the module docstring)."""
        await self._look(beat=True)
        counts_now = await self._catalog.partition_counts()
        me, dead = self.member_id, set(self._dead)
        entry = {"topics": list(self.subscription.topics), "pattern": self.subscription.pattern}
        dropped: set[str] = set()

        def apply(document: GroupDocument) -> None:
            changed = False
            dropped.clear()
            for member_id in list(document.members):
                if member_id != me and member_id in dead:
                    document.drop_member(member_id, release=False)
                    dropped.add(member_id)
                    changed = True
            current = document.members.get(me, {})
            if {k: current.get(k) for k in entry} != entry:
                changed = True
            document.members[me] = {**entry, "synced": current.get("synced")}
            counts = subscribed_counts(document.subscriptions(), counts_now)
            if counts != document.partitions:
                document.partitions = counts
                changed = True
            if changed:
                document.generation += 1
            document.members[me]["synced"] = document.generation

        def forget_dead(pipe: Pipeline, document: GroupDocument) -> None:
            if dropped:
                pipe.zrem(self._store.alive_key, *sorted(dropped))

        _, document = await self._store.change(apply, forget_dead if dead else None)
        for member_id in sorted(dropped):
            log.warning(
                "consumer group %r: member %s is gone (no heartbeat for %.1f s); its "
                "partitions go to the others",
                self.group,
                member_id,
                self._expiry_ms / 1000,
            )
        if document.generation != self.generation:
            self._generation_seen = time.monotonic()
        self.generation = document.generation
        if self._beating is None:
            self._beating = asyncio.create_task(self._beat())
        assignment = range_assignment(document.subscriptions(), document.partitions)
        return SyncedView(
            document.generation,
            frozenset(assignment.get(me, set())),
            frozenset(document.owned_by(me)),
        )

    async def release(self, partitions: Set[TopicPartition]) -> None:
        """Give up ``partitions`` (those the document still gives this member)."""
        me = self.member_id

        def apply(document: GroupDocument) -> None:
            for tp in partitions:
                if document.owner(tp) == me:
                    document.set_owner(tp, None)

        await self._store.change(apply)

    async def claim(
        self, wanted: Set[TopicPartition]
    ) -> tuple[dict[TopicPartition, int], dict[TopicPartition, int]]:
        """Take the partitions of ``wanted`` that can be claimed now: each with the min idle
        time to claim its pending entries with, and the committed offsets of those."""

        def apply(document: GroupDocument) -> dict[TopicPartition, int]:
            if document.generation != self.generation:
                return {}  # the group moved on: the next poll syncs again
            gained = {}
            for tp in wanted:
                idle = self.claim_idle_for(document, tp)
                if idle is not None:
                    gained[tp] = idle
                    document.set_owner(tp, self.member_id)
            return gained

        gained, _ = await self._store.change(apply)
        return gained, await self._committed_of(set(gained))

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Store ``offsets`` and acknowledge the entries below them, if this member is current
        and owns the partitions (or, before it joined, if the group has no live member: then
        the group also reads on from there); see ``RedisConsumer.commit``."""
        me, group, generation = self.member_id, self.group, self.generation
        if generation is None:
            await self._look(beat=False)
        dead = set(self._dead)

        def apply(document: GroupDocument) -> None:
            if generation is not None:
                if document.generation != generation or me not in document.members:
                    raise CommitFencedError(
                        f"consumer group {group!r} moved on (generation {document.generation}, "
                        f"this member synced {generation}): nothing was committed; the member "
                        "rejoins on its next poll"
                    )
                for tp in offsets:
                    if document.owner(tp) != me:
                        raise CommitFencedError(
                            f"partition {tp[1]} of {tp[0]!r} is not assigned to this member of "
                            f"consumer group {group!r}: nothing was committed"
                        )
                return
            live = set(document.members) - dead
            if live:
                raise CommitFencedError(
                    f"consumer group {group!r} has {len(live)} live member(s): stop them "
                    "before changing its offsets; nothing was committed"
                )
            if document.members:
                for member_id in list(document.members):
                    document.drop_member(member_id, release=False)
                document.generation += 1

        keys = self._connection.keys

        def store(pipe: Pipeline, document: GroupDocument) -> None:
            pipe.hset(
                self._store.offsets_key,
                mapping={offset_field(tp): int(o) for tp, o in offsets.items()},
            )
            for tp, offset in offsets.items():
                stream = keys.stream(*tp)
                if generation is None:  # an offset reset: the group reads from there next
                    pipe.eval(_scripts.SEEK, 1, stream, group, int(offset))
                pipe.eval(_scripts.ACK_BELOW, 1, stream, group, int(offset))

        await self._store.change(apply, store)

    async def committed(self) -> dict[TopicPartition, int]:
        """The group's committed offsets of the subscribed topics."""
        client = await self._connection.client()
        async with broker_errors(self._connection, f"reading the offsets of {self.group!r}"):
            raw = await client.hgetall(self._store.offsets_key)
        found = {parse_offset_field(f): int(o) for f, o in raw.items()}
        topics = self.subscription.topics_among({t for t, _ in found})
        return {tp: o for tp, o in found.items() if tp[0] in topics}

    async def _committed_of(self, partitions: set[TopicPartition]) -> dict[TopicPartition, int]:
        if not partitions:
            return {}
        ordered = sorted(partitions)
        client = await self._connection.client()
        async with broker_errors(self._connection, f"reading the offsets of {self.group!r}"):
            raw = await client.hmget(self._store.offsets_key, [offset_field(tp) for tp in ordered])
        return {tp: int(o) for tp, o in zip(ordered, raw, strict=True) if o is not None}

    async def leave(self) -> None:
        """Stop the heartbeats and, if it joined, leave the group (its partitions are free for
        the others at once); a group left with no members and no offsets is removed."""
        if self._beating is not None:
            self._beating.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._beating
            self._beating = None
        if self.generation is None:
            return
        me = self.member_id
        self.generation = None

        def apply(document: GroupDocument) -> None:
            if me in document.members:
                document.drop_member(me, release=True)
                document.generation += 1

        def forget(pipe: Pipeline, document: GroupDocument) -> None:
            pipe.zrem(self._store.alive_key, me)

        _, document = await self._store.change(apply, forget)
        if not document.members:
            keys = self._connection.keys
            streams = [
                keys.stream(t, p) for t, count in document.partitions.items() for p in range(count)
            ]
            with contextlib.suppress(BrokerError):
                await self._store.delete_if_unused(streams)

    async def _beat(self) -> None:
        scripts = await self._connection.scripts()
        keys = [self._store.alive_key, self._store.key]
        while True:
            await asyncio.sleep(self.heartbeat)
            try:
                await scripts.heartbeat(keys=keys, args=[self.member_id])
            except Exception as exc:  # the server is away: the next poll says so
                log.debug("consumer group %r: heartbeat failed: %s", self.group, exc)

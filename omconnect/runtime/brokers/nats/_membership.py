"""``GroupMember``: one consumer's place in its group's document (see ``_group_document``).

A member syncs (joins, or catches up with a new generation) inside ``poll``: it drops members
that are gone (``_liveness``), puts its subscription and the subscribed partition counts in the
document, bumps the generation when any of that changed, and marks itself synced at it. Every
member computes the same range assignment from the document. Partitions change hands through
their owner entry: a member releases what it loses, after its revocation callback; the new
owner claims what is free, or owned by a member that is gone, or by one that has not synced
for ``session_timeout`` seconds since the group changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping, Set
from dataclasses import dataclass

from nats.aio.subscription import Subscription as NatsSubscription

from omconnect.runtime.brokers.base import CommitFencedError, TopicPartition
from omconnect.runtime.brokers.nats._assignment import (
    Subscription,
    range_assignment,
    subscribed_counts,
)
from omconnect.runtime.brokers.nats._catalog import TopicCatalog
from omconnect.runtime.brokers.nats._connection import NatsConnection
from omconnect.runtime.brokers.nats._group_document import GroupDocument, GroupStore
from omconnect.runtime.brokers.nats._liveness import PING_INTERVAL, Liveness, answer_pings

log = logging.getLogger("omconnect.broker.nats")

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
        connection: NatsConnection,
        catalog: TopicCatalog,
        group: str,
        subscription: Subscription,
        session_timeout: float,
    ) -> None:
        self.group = group
        self.subscription = subscription
        self.member_id = subscription.member_id
        self.generation: int | None = None
        self._connection = connection
        self._catalog = catalog
        self._session_timeout = session_timeout
        self._store: GroupStore | None = None
        self._liveness = Liveness(session_timeout)
        self._pinging: asyncio.Task[None] | None = None
        self._answering: NatsSubscription | None = None
        self._generation_seen = 0.0
        self._others: list[str] = []
        self._topics_checked = -TOPICS_INTERVAL

    @property
    def joined(self) -> bool:
        return self.generation is not None

    async def store(self, create: bool = True) -> GroupStore | None:
        """The group's document store (None when the bucket does not exist and ``create`` is
        false)."""
        if self._store is None:
            bucket = await self._connection.groups(create)
            if bucket is None:
                return None
            self._store = GroupStore(bucket, self.group)
        return self._store

    async def out_of_sync(self, pending: Set[TopicPartition]) -> bool:
        """Whether the member must sync: the generation moved, a member is gone, the
        subscribed topics changed, or a partition it waits for can be claimed now."""
        store = await self.store()
        assert store is not None
        document, _ = await store.load()
        self._others = [m for m in document.members if m != self.member_id]
        if document.generation != self.generation or self.member_id not in document.members:
            return True
        if self._liveness.dead & set(document.members):
            return True
        now = time.monotonic()
        if now - self._topics_checked >= TOPICS_INTERVAL:
            self._topics_checked = now
            counts = subscribed_counts(document.subscriptions(), await self._catalog.topic_counts())
            if counts != document.partitions:
                return True
        return any(self.claimable(document, tp) for tp in pending)

    def claimable(self, document: GroupDocument, tp: TopicPartition) -> bool:
        owner = document.owner(tp)
        if owner in (None, self.member_id) or owner not in document.members:
            return True
        if owner in self._liveness.dead:
            return True
        # The owner has not synced since the group changed, for a whole session timeout.
        unsynced = document.members[owner].get("synced") != document.generation
        return unsynced and time.monotonic() - self._generation_seen >= self._session_timeout

    async def sync(self) -> SyncedView:
        """Join or catch up (see the module docstring)."""
        store = await self.store()
        assert store is not None
        if self._answering is None:
            client = await self._connection.client()
            self._answering = await answer_pings(client, self.member_id)
        counts_now = await self._catalog.topic_counts()
        me, dead = self.member_id, set(self._liveness.dead)
        entry = {"topics": list(self.subscription.topics), "pattern": self.subscription.pattern}
        dropped: set[str] = set()

        def apply(document: GroupDocument) -> None:
            changed = False
            dropped.clear()
            for member_id in list(document.members):
                if member_id != me and member_id in dead:
                    document.drop_member(member_id)
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

        _, document = await store.change(apply)
        for member_id in sorted(dropped):
            log.warning(
                "consumer group %r: member %s is gone (no answer to pings); its partitions go "
                "to the others",
                self.group,
                member_id,
            )
        if document.generation != self.generation:
            self._generation_seen = time.monotonic()
        self.generation = document.generation
        self._others = [m for m in document.members if m != me]
        if self._pinging is None:
            self._pinging = asyncio.create_task(self._ping_others())
        assignment = range_assignment(document.subscriptions(), document.partitions)
        return SyncedView(
            document.generation,
            frozenset(assignment.get(me, set())),
            frozenset(document.owned_by(me)),
        )

    async def release(self, partitions: Set[TopicPartition]) -> None:
        """Give up ``partitions`` (those the document still gives this member)."""
        store = await self.store()
        assert store is not None
        me = self.member_id

        def apply(document: GroupDocument) -> None:
            for tp in partitions:
                if document.owner(tp) == me:
                    document.set_owner(tp, None)

        await store.change(apply)

    async def claim(
        self, wanted: Set[TopicPartition]
    ) -> tuple[set[TopicPartition], dict[TopicPartition, int]]:
        """Take the partitions of ``wanted`` that can be claimed now; those and their
        committed offsets."""
        store = await self.store()
        assert store is not None

        def apply(document: GroupDocument) -> set[TopicPartition]:
            if document.generation != self.generation:
                return set()  # the group moved on: the next poll syncs again
            gained = {tp for tp in wanted if self.claimable(document, tp)}
            for tp in gained:
                document.set_owner(tp, self.member_id)
            return gained

        gained, document = await store.change(apply)
        return gained, document.committed({t for t, _ in gained})

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Store ``offsets`` if this member is current and owns them (or, before it joined,
        if the group has no live member); see ``NatsConsumer.commit``."""
        store = await self.store()
        assert store is not None
        me, group, generation = self.member_id, self.group, self.generation
        gone: set[str] = set()
        if generation is None:
            document, _ = await store.load()
            client = await self._connection.client()
            gone = await self._liveness.gone_now(client, document.members)

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
            else:
                live = set(document.members) - gone
                if live:
                    raise CommitFencedError(
                        f"consumer group {group!r} has {len(live)} live member(s): stop them "
                        "before changing its offsets; nothing was committed"
                    )
                if document.members:
                    for member_id in list(document.members):
                        document.drop_member(member_id)
                    document.generation += 1
            for tp, offset in offsets.items():
                document.set_offset(tp, int(offset))

        await store.change(apply)

    async def committed(self) -> dict[TopicPartition, int]:
        """The group's committed offsets of the subscribed topics (none without a bucket)."""
        store = await self.store(create=False)
        if store is None:
            return {}
        document, _ = await store.load()
        return document.committed(self.subscription.topics_among(document.offsets))

    async def leave(self) -> None:
        """Stop answering pings and, if it joined, leave the group (its partitions are free
        for the others at once); a group left with no members and no offsets is removed."""
        if self._pinging is not None:
            self._pinging.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pinging
        if self._answering is not None:
            with contextlib.suppress(Exception):
                await self._answering.unsubscribe()
        if self._store is None or self.generation is None:
            return
        me = self.member_id

        def apply(document: GroupDocument) -> None:
            if me in document.members:
                document.drop_member(me)
                document.generation += 1

        await self._store.change(apply)
        await self._store.delete_if_unused()

    async def _ping_others(self) -> None:
        client = await self._connection.client()
        while True:
            await asyncio.sleep(PING_INTERVAL)
            with contextlib.suppress(Exception):
                await self._liveness.check(client, self._others)

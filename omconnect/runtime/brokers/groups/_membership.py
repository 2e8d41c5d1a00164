"""``GroupMember``: one consumer's place in its group's document, the same protocol for every
driver that stores groups as a document (``_storage``); how members tell that one of them is
gone is the driver's ``MemberLiveness`` (``_liveness``).

A member syncs (joins, or catches up with a new generation) inside ``poll``: it drops members
that are gone, puts its subscription and the subscribed partition counts in the document,
bumps the generation when any of that changed, and marks itself synced at it. Every member
computes the same range assignment from the document. Partitions change hands through their
owner entry: a member releases what it loses, after its revocation callback; the new owner
claims what is free, or owned by a member that is gone, or by one that has not synced for
``takeover_after`` seconds since the group changed. A commit is stored only if the member is
still current and owns the partitions; before it joined, only while the group has no live
member (an offset reset).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Set
from dataclasses import dataclass

from omconnect.runtime.brokers.base import CommitFencedError, TopicPartition
from omconnect.runtime.brokers.groups._document import GroupDocument
from omconnect.runtime.brokers.groups._liveness import MemberLiveness
from omconnect.runtime.brokers.groups._range_assignor import (
    Subscription,
    range_assignment,
    subscribed_counts,
)
from omconnect.runtime.brokers.groups._storage import Commit, GroupStorage

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
    """The member ``subscription.member_id`` of the group of ``storage``."""

    def __init__(
        self,
        storage: GroupStorage,
        liveness: MemberLiveness,
        subscription: Subscription,
        partition_counts: Callable[[], Awaitable[Mapping[str, int]]],
        takeover_after: float,
        log: logging.Logger,
    ) -> None:
        """
        Args:
            partition_counts: every topic's partition count now.
            takeover_after: how long a member may go without syncing after the group changed
                before its partitions are taken from it.
            log: where dropped members are reported.
        """
        self.group = storage.group
        self.subscription = subscription
        self.member_id = subscription.member_id
        self.generation: int | None = None
        self._storage = storage
        self._liveness = liveness
        self._partition_counts = partition_counts
        self._takeover_after = takeover_after
        self._log = log
        self._generation_seen = 0.0
        self._topics_checked = -TOPICS_INTERVAL

    @property
    def joined(self) -> bool:
        return self.generation is not None

    async def out_of_sync(self, pending: Set[TopicPartition]) -> bool:
        """Whether the member must sync: the generation moved, a member is gone, the
        subscribed topics changed, or a partition it waits for can be claimed now."""
        document = await self._liveness.look()
        if document.generation != self.generation or self.member_id not in document.members:
            return True
        if self._liveness.dead & set(document.members):
            return True
        now = time.monotonic()
        if now - self._topics_checked >= TOPICS_INTERVAL:
            self._topics_checked = now
            counts = subscribed_counts(document.subscriptions(), await self._partition_counts())
            if counts != document.partitions:
                return True
        return any(self.takeover(document, tp) is not None for tp in pending)

    def takeover(self, document: GroupDocument, tp: TopicPartition) -> bool | None:
        """Whether this member can claim ``tp`` now: False when it is free (released, or
        already this member's), True when it is taken from a member that is gone or has not
        synced for ``takeover_after`` seconds since the group changed; None while its owner
        keeps it."""
        owner = document.owner(tp)
        if owner is None or owner == self.member_id:
            return False
        if owner not in document.members or owner in self._liveness.dead:
            return True
        unsynced = document.members[owner].get("synced") != document.generation
        stuck = time.monotonic() - self._generation_seen >= self._takeover_after
        return True if unsynced and stuck else None

    async def sync(self) -> SyncedView:
        """Join or catch up (see the module docstring)."""
        await self._liveness.before_sync()
        counts_now = await self._partition_counts()
        me, dead = self.member_id, set(self._liveness.dead)
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

        _, document = await self._storage.change(apply, forget=dropped)
        for member_id in sorted(dropped):
            self._log.warning(
                "consumer group %r: member %s is gone (%s); its partitions go to the others",
                self.group,
                member_id,
                self._liveness.gone_reason,
            )
        if document.generation != self.generation:
            self._generation_seen = time.monotonic()
        self.generation = document.generation
        await self._liveness.after_sync(document)
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

        await self._storage.change(apply)

    async def claim(
        self, wanted: Set[TopicPartition]
    ) -> tuple[dict[TopicPartition, bool], dict[TopicPartition, int]]:
        """Take the partitions of ``wanted`` that can be claimed now: each with whether it
        was taken from another member (see ``takeover``), and the committed offsets of
        those."""

        def apply(document: GroupDocument) -> dict[TopicPartition, bool]:
            if document.generation != self.generation:
                return {}  # the group moved on: the next poll syncs again
            gained = {}
            for tp in wanted:
                taken = self.takeover(document, tp)
                if taken is not None:
                    gained[tp] = taken
                    document.set_owner(tp, self.member_id)
            return gained

        gained, document = await self._storage.change(apply)
        if not gained:
            return gained, {}
        return gained, await self._storage.committed(set(gained), document)

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Store ``offsets`` if this member is current and owns the partitions (or, before it
        joined, if the group has no live member: an offset reset)."""
        me, group, generation = self.member_id, self.group, self.generation
        gone = await self._liveness.gone_now() if generation is None else set()

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
                        document.drop_member(member_id, release=False)
                    document.generation += 1
            if document.offsets is not None:
                for tp, offset in offsets.items():
                    document.set_offset(tp, int(offset))

        commit = Commit({tp: int(o) for tp, o in offsets.items()}, reset=generation is None)
        await self._storage.change(apply, commit=commit)

    async def committed(self) -> dict[TopicPartition, int]:
        """The group's committed offsets of the subscribed topics."""
        found = await self._storage.committed(None, None)
        topics = self.subscription.topics_among({t for t, _ in found})
        return {tp: o for tp, o in found.items() if tp[0] in topics}

    async def leave(self) -> None:
        """Stop the liveness signals and, if it joined, leave the group (its partitions are
        free for the others at once); a group left with no members that never committed is
        removed."""
        await self._liveness.stop()
        if self.generation is None:
            return
        me = self.member_id
        self.generation = None

        def apply(document: GroupDocument) -> None:
            if me in document.members:
                document.drop_member(me, release=True)
                document.generation += 1

        _, document = await self._storage.change(apply, forget={me})
        if not document.members:
            await self._storage.remove_if_unused(document)

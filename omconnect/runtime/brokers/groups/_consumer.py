"""``DocumentGroupConsumer``: what a consumer whose group is a ``GroupMember`` does the same on
every driver: the rebalance inside ``poll`` (revoke, release, claim, assign), commits,
seeks, pauses and leaving. A driver adds how it reads a partition it owns (one reader per
partition) and ``poll``'s reading itself.
"""

from __future__ import annotations

import logging
from abc import abstractmethod
from collections.abc import Mapping, Sequence, Set
from typing import ClassVar, Generic, TypeVar

from omconnect.runtime.brokers.base import (
    BrokerError,
    ConsumedBatch,
    Consumer,
    ConsumerStart,
    RebalanceListener,
    TopicPartition,
)
from omconnect.runtime.brokers.groups._membership import GroupMember
from omconnect.runtime.brokers.groups._range_assignor import Subscription

R = TypeVar("R")

# The longest a waiting poll goes without looking at the group (another member joined, left
# or died; a topic appeared).
SYNC_INTERVAL = 0.25


class DocumentGroupConsumer(Consumer, Generic[R]):
    """A member of ``group`` reading the partitions it owns, each through a reader ``R``.

    A subclass sets ``_member`` in its ``__init__`` and implements ``_poll``,
    ``_start_reading``, ``_seek_reader`` and, when a reader holds anything, ``_stop_reading``.
    """

    _log: ClassVar[logging.Logger]
    _member: GroupMember

    def __init__(
        self,
        group: str,
        topics: Sequence[str],
        pattern: str | None,
        listener: RebalanceListener | None,
        start: ConsumerStart,
    ) -> None:
        subscription = Subscription.new(topics, pattern)
        if start not in ("earliest", "latest"):
            raise ValueError(f"start must be 'earliest' or 'latest', not {start!r}")
        self.group = group
        self.topics = subscription.topics
        self.pattern = pattern
        self.member_id = subscription.member_id
        self._subscription = subscription
        self._listener = listener
        self._start: ConsumerStart = start
        self._closed = False
        self._owned: dict[TopicPartition, R] = {}
        self._pending: set[TopicPartition] = set()
        self._paused: set[TopicPartition] = set()
        self._seeks: dict[TopicPartition, int] = {}
        self._turn = 0

    async def poll(self, max_messages: int, timeout: float) -> list[ConsumedBatch]:
        """Up to ``max_messages`` messages of the owned, unpaused partitions after this
        consumer's positions, at most one batch per partition; waits up to ``timeout`` seconds
        for some to arrive, else returns []. Joins the group on the first call and runs the
        rebalance callbacks when the assignment changed."""
        if max_messages < 1:
            raise ValueError(f"max_messages must be at least 1, got {max_messages}")
        if self._closed:
            raise BrokerError("the consumer is closed")
        return await self._poll(max_messages, timeout)

    @abstractmethod
    async def _poll(self, max_messages: int, timeout: float) -> list[ConsumedBatch]:
        """``poll`` once its arguments are checked; calls ``_keep_in_sync`` first."""

    @abstractmethod
    async def _start_reading(
        self,
        gained: Mapping[TopicPartition, bool],
        committed: Mapping[TopicPartition, int],
        seeks: Mapping[TopicPartition, int],
    ) -> dict[TopicPartition, R]:
        """Readers of the partitions just claimed (with whether each was taken from another
        member), starting at their seek, else their committed offset, else ``start``."""

    @abstractmethod
    async def _seek_reader(self, reader: R, offset: int) -> None:
        """Read on from ``offset`` with ``reader``."""

    async def _stop_reading(self, reader: R) -> None:
        """Let go of ``reader`` (its partition is lost, or the consumer closes)."""

    def _readable(self) -> list[tuple[TopicPartition, R]]:
        """The owned, unpaused partitions with their readers, starting one further each
        call (so no partition is always served first)."""
        readable = sorted(set(self._owned) - self._paused)
        if not readable:
            return []
        self._turn += 1
        turn = self._turn % len(readable)
        return [(tp, self._owned[tp]) for tp in readable[turn:] + readable[:turn]]

    # -- the group ----------------------------------------------------------------------

    async def _keep_in_sync(self) -> None:
        if not self._member.joined or await self._member.out_of_sync(self._pending):
            await self._rebalance()

    async def _rebalance(self) -> None:
        first = not self._member.joined
        view = await self._member.sync()
        lost = set(self._owned) - (view.assignment & view.owned)
        if lost:
            for tp in lost:
                await self._stop_reading(self._owned.pop(tp))
            if self._listener is not None:
                await self._listener.on_partitions_revoked(frozenset(lost))
        # Also what the document still gives this member that it no longer reads (a release
        # an outage interrupted): until released, nobody else may take it.
        if release := lost | (view.owned - view.assignment):
            await self._member.release(release)
        wanted = view.assignment - set(self._owned)
        gained: dict[TopicPartition, bool] = {}
        if wanted:
            gained, committed = await self._member.claim(wanted)
            seeks = {tp: self._seeks.pop(tp) for tp in gained if tp in self._seeks}
            self._owned.update(await self._start_reading(gained, committed, seeks))
        self._pending = set(wanted - set(gained))
        if self._listener is not None and (gained or first):
            await self._listener.on_partitions_assigned(frozenset(gained))

    # -- offsets ------------------------------------------------------------------------

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Store the group's next offsets, checking in the same atomic step that this member
        is current and owns the partitions; the positions of this consumer are not moved.

        Raises:
            CommitFencedError: the group changed since this member's last poll, or a partition
                is not assigned to it (before its first poll: the group has live members);
                nothing was committed.
        """
        if not offsets:
            return
        for tp, offset in offsets.items():
            if offset < 0:
                raise ValueError(f"cannot commit a negative offset for {tp} ({offset})")
        await self._member.commit(offsets)

    async def committed(self) -> dict[TopicPartition, int]:
        """The group's committed offsets for partitions of the subscribed topics."""
        return await self._member.committed()

    async def seek(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Read these partitions from these offsets next. A partition this member does not
        own yet (before the first poll, say) starts there when it is assigned to it, instead
        of where its group is."""
        self._subscription.check_seek(offsets)
        for tp, offset in offsets.items():
            reader = self._owned.get(tp)
            if reader is not None:
                await self._seek_reader(reader, offset)
            else:
                self._seeks[tp] = offset

    async def assignment(self) -> set[TopicPartition]:
        """The partitions this member owns now; empty before its first poll."""
        return set(self._owned)

    async def pause(self, partitions: Set[TopicPartition]) -> None:
        """Return no messages of ``partitions`` until ``resume``; they stay assigned."""
        self._paused |= set(partitions)

    async def resume(self, partitions: Set[TopicPartition]) -> None:
        """Return messages of paused ``partitions`` again."""
        self._paused -= set(partitions)

    async def close(self) -> None:
        """Leave the group (its partitions go to the other members at their next poll) and
        let go of this member's readers; idempotent. The listener is not called: commit
        before closing."""
        if self._closed:
            return
        self._closed = True
        for reader in self._owned.values():
            await self._stop_reading(reader)
        self._owned.clear()
        try:
            await self._member.leave()
        except BrokerError as exc:
            self._log.warning("consumer group %r: could not leave cleanly: %s", self.group, exc)

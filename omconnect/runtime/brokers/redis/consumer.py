"""``RedisConsumer``: reads topics from Redis streams as a member of a consumer group."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time
import uuid
from collections.abc import Mapping, Sequence, Set

from omconnect.runtime.brokers.base import (
    BrokerError,
    ConsumedBatch,
    Consumer,
    ConsumerStart,
    RebalanceListener,
    TopicPartition,
)
from omconnect.runtime.brokers.redis._assignment import Subscription
from omconnect.runtime.brokers.redis._catalog import TopicCatalog
from omconnect.runtime.brokers.redis._connection import RedisConnection, ServerUnavailable
from omconnect.runtime.brokers.redis._membership import GroupMember
from omconnect.runtime.brokers.redis._reader import PartitionState, StreamGone, StreamReader

log = logging.getLogger("omconnect.broker.redis")

# The longest a waiting poll goes without looking at the group (another member joined,
# left or died; a topic appeared).
SYNC_INTERVAL = 0.25
# How often a poll says the server is away while it stays away.
OUTAGE_WARNING_INTERVAL = 10.0
# The most one poll returns: the read runs as one script, which holds the single-threaded
# server for its duration (about 50 ms for this many small entries).
MAX_POLL_ENTRIES = 5000


class RedisConsumer(Consumer):
    """A member of ``group``: reads the partitions the group assigns it, in batches.

    The group is a document on the server (``_membership``): members join it on their first
    ``poll``, and every poll compares it with what the member last synced. The partitions of
    the subscribed topics are split over the members by Kafka's range assignor (members
    sorted by id, which starts with the creation time, so older members keep the lower
    ranges); the assignment changes when a member joins, leaves (``close``) or dies (no
    heartbeat for ``claim_idle`` seconds and a little), and when a subscribed topic appears.
    Inside ``poll``, ``on_partitions_revoked`` runs first, while the member still owns the
    partitions (commits made there count); then it releases them, and the new owner's next
    poll claims them and calls ``on_partitions_assigned``.

    Positions (``_reader``): a partition gained continues where its Redis consumer group is,
    after the entries its previous owner had read and not committed (claimed first), or at
    the committed offset, the first message (``start="earliest"``) or the high-water
    (``"latest"``) for a group that never read it. Offsets are entry id numbers less one.
    Reading does not commit: ``commit`` stores ``ConsumedBatch.next_offset`` and acknowledges
    (``XACK``) the entries below it, refused with ``CommitFencedError`` when the group moved on
    since this member's last poll or for a partition it does not own. Before its first poll,
    a consumer commits only while the group has no live member (an offset reset): then the
    group also reads on from the committed offsets.
    """

    def __init__(
        self,
        connection: RedisConnection,
        catalog: TopicCatalog,
        group: str,
        topics: Sequence[str] = (),
        *,
        pattern: str | None = None,
        listener: RebalanceListener | None = None,
        start: ConsumerStart = "earliest",
        claim_idle: float = 10.0,
    ) -> None:
        if not topics and pattern is None:
            raise ValueError("a consumer needs at least one topic or a pattern")
        if pattern is not None:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(
                    f"topic pattern {pattern!r} is not a regular expression: {exc}"
                ) from None
        if start not in ("earliest", "latest"):
            raise ValueError(f"start must be 'earliest' or 'latest', not {start!r}")
        self.group = group
        self.topics = tuple(dict.fromkeys(topics))
        self.pattern = pattern
        self.member_id = f"{time.time_ns():016x}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._subscription = Subscription(self.member_id, self.topics, pattern)
        self._member = GroupMember(connection, catalog, group, self._subscription, claim_idle)
        self._reader = StreamReader(connection, group, self.member_id)
        self._connection = connection
        self._catalog = catalog
        self._listener = listener
        self._start: ConsumerStart = start
        self._closed = False
        self._owned: dict[TopicPartition, PartitionState] = {}
        self._pending: set[TopicPartition] = set()
        self._paused: set[TopicPartition] = set()
        self._seeks: dict[TopicPartition, int] = {}
        self._turn = 0
        self._warned = -OUTAGE_WARNING_INTERVAL
        # A blocking wait stays well inside the per-command socket timeout.
        self._wait_slice = min(SYNC_INTERVAL, connection.options.timeout / 2)

    async def poll(self, max_messages: int, timeout: float) -> list[ConsumedBatch]:
        """Up to ``max_messages`` (and ``MAX_POLL_ENTRIES``) messages of the owned, unpaused
        partitions after this consumer's positions, at most one batch per partition; waits up
        to ``timeout`` seconds for some to arrive, else returns []. Joins the group on the
        first call and runs the rebalance callbacks when the assignment changed. While the
        server is away (after it answered once) a poll logs a warning and returns [] after
        its timeout."""
        if max_messages < 1:
            raise ValueError(f"max_messages must be at least 1, got {max_messages}")
        if self._closed:
            raise BrokerError("the consumer is closed")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            await self._keep_in_sync()
            while True:
                batches = await self._fetch(min(max_messages, MAX_POLL_ENTRIES))
                left = deadline - loop.time()
                if batches or left <= 0:
                    return batches
                await self._reader.wait(self._readable(), min(left, self._wait_slice))
                await self._keep_in_sync()
        except ServerUnavailable as exc:
            if time.monotonic() - self._warned >= OUTAGE_WARNING_INTERVAL:
                self._warned = time.monotonic()
                log.warning("consumer group %r: %s", self.group, exc)
            await asyncio.sleep(max(0.0, min(deadline - loop.time(), 1.0)))
            return []

    def _readable(self) -> list[tuple[TopicPartition, PartitionState]]:
        readable = sorted(set(self._owned) - self._paused)
        if not readable:
            return []
        self._turn += 1
        turn = self._turn % len(readable)
        return [(tp, self._owned[tp]) for tp in readable[turn:] + readable[:turn]]

    async def _fetch(self, budget: int) -> list[ConsumedBatch]:
        try:
            return await self._reader.fetch(self._readable(), budget)
        except StreamGone as exc:
            log.warning("consumer group %r: %s", self.group, exc)
            gained = dict.fromkeys(self._owned, 0)
            committed = await self._member.committed()
            self._owned.update(await self._reader.start(gained, committed, {}, self._start))
            return []

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
                del self._owned[tp]
            if self._listener is not None:
                await self._listener.on_partitions_revoked(frozenset(lost))
        # Also what the document still gives this member that it no longer reads (a release
        # an outage interrupted): until released, nobody else may take it.
        if release := lost | (view.owned - view.assignment):
            await self._member.release(release)
        wanted = view.assignment - set(self._owned)
        gained: dict[TopicPartition, int] = {}
        if wanted:
            gained, committed = await self._member.claim(wanted)
            seeks = {tp: self._seeks.pop(tp) for tp in gained if tp in self._seeks}
            self._owned.update(await self._reader.start(gained, committed, seeks, self._start))
        self._pending = set(wanted - set(gained))
        if self._listener is not None and (gained or first):
            await self._listener.on_partitions_assigned(frozenset(gained))

    # -- offsets ------------------------------------------------------------------------

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Store the group's next offsets and acknowledge the entries below them, checking
        in the same atomic step that this member is current and owns the partitions; the
        positions of this consumer are not moved.

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

    async def end_offsets(self) -> dict[TopicPartition, int]:
        """The offset after the last message of every existing partition of the subscribed
        topics, owned or not (a consumer that has not polled yet knows where to start)."""
        topics = set(self.topics)
        if self.pattern is not None:
            topics |= self._subscription.topics_among(await self._catalog.partition_counts())
        return await self._catalog.high_waters(topics)

    async def seek(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Read these partitions from these offsets next (at most their high-water). A
        partition this member does not own yet (before the first poll, say) starts there when
        it is assigned to it, instead of where its group is."""
        for tp, offset in offsets.items():
            if not self._subscription.topics_among([tp[0]]):
                raise ValueError(f"cannot seek {tp[0]!r}: the consumer does not subscribe to it")
            if offset < 0:
                raise ValueError(f"cannot seek {tp} to a negative offset ({offset})")
        for tp, offset in offsets.items():
            state = self._owned.get(tp)
            if state is not None:
                await self._reader.seek(state, offset)
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
        """Leave the group (its partitions go to the other members at their next poll, with
        what this member read and did not commit); idempotent. The listener is not called:
        commit before closing."""
        if self._closed:
            return
        self._closed = True
        self._owned.clear()
        try:
            await self._member.leave()
        except BrokerError as exc:
            log.warning("consumer group %r: could not leave cleanly: %s", self.group, exc)

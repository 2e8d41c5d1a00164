"""``NatsConsumer``: reads topics from JetStream as a member of a consumer group."""

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
from omconnect.runtime.brokers.nats._assignment import Subscription
from omconnect.runtime.brokers.nats._catalog import TopicCatalog
from omconnect.runtime.brokers.nats._connection import NatsConnection
from omconnect.runtime.brokers.nats._membership import GroupMember
from omconnect.runtime.brokers.nats._reader import PartitionReader

log = logging.getLogger("omconnect.broker.nats")

# The longest a waiting poll goes without looking at the group document (another member
# joined, left or died; a topic appeared).
SYNC_INTERVAL = 0.25
# The longest a poll waits for the answers to its requests for what is there now.
PROBE_WAIT = 1.0
# Once messages arrive for a waiting poll, it takes the ones that follow within this.
QUIET = 0.01


class NatsConsumer(Consumer):
    """A member of ``group``: reads the partitions the group assigns it, in batches.

    The group is a document in the broker's key-value bucket (``_membership``): members
    join it on their first ``poll``, and every poll compares it with what the member last
    synced. The partitions of the subscribed topics are split over the members by Kafka's
    range assignor (members sorted by id, which starts with the creation time, so older
    members keep the lower ranges); the assignment changes when a member joins, leaves
    (``close``) or is gone (``_liveness``: its process died, or it stopped answering for
    ``session_timeout`` seconds), and when a subscribed topic appears or changes its
    partitions. Inside ``poll``, ``on_partitions_revoked`` runs first, while the member still
    owns the partitions (commits made there count); then it releases them, and the new
    owner's next poll claims them and calls ``on_partitions_assigned``. A partition whose
    owner has not synced for ``session_timeout`` seconds after the group changed is taken
    from it anyway.

    Positions: a partition gained starts at the group's committed offset, else at its first
    message (``start="earliest"``) or its high-water (``"latest"``); so does a position
    beyond the high-water, and a position before a trimmed partition's start moves up to it.
    Offsets are stream sequences less one. Reading does not commit: ``commit`` stores
    ``ConsumedBatch.next_offset`` once the messages are processed, refused with
    ``CommitFencedError`` when the group moved on since this member's last poll, or for a
    partition it does not own. Before its first poll, a consumer commits only while the group
    has no live member (offset resets of a stopped pipeline).
    """

    def __init__(
        self,
        connection: NatsConnection,
        catalog: TopicCatalog,
        group: str,
        topics: Sequence[str] = (),
        *,
        pattern: str | None = None,
        listener: RebalanceListener | None = None,
        start: ConsumerStart = "earliest",
        session_timeout: float = 10.0,
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
        self._member = GroupMember(connection, catalog, group, self._subscription, session_timeout)
        self._connection = connection
        self._catalog = catalog
        self._listener = listener
        self._start: ConsumerStart = start
        self._closed = False
        self._owned: set[TopicPartition] = set()
        self._pending: set[TopicPartition] = set()
        self._paused: set[TopicPartition] = set()
        self._readers: dict[TopicPartition, PartitionReader] = {}
        self._arrived = asyncio.Event()
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
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        await self._keep_in_sync()
        while True:
            batches = await self._read(max_messages, deadline - loop.time())
            if batches or loop.time() >= deadline:
                return batches
            await self._keep_in_sync()

    async def _read(self, budget: int, remaining: float) -> list[ConsumedBatch]:
        readable = sorted(self._owned - self._paused)
        if not readable:
            await asyncio.sleep(max(0.0, min(remaining, SYNC_INTERVAL)))
            return []
        self._turn += 1
        turn = self._turn % len(readable)
        order = readable[turn:] + readable[:turn]
        readers = [self._readers[tp] for tp in order]
        if not any(r.buffered for r in readers):
            # What is there now: each reader's request is answered at once.
            answered = min(max(remaining, 0.05), PROBE_WAIT)
            await self._gather(readers, budget, None, asyncio.get_running_loop().time() + answered)
        if not any(r.buffered for r in readers) and remaining > 0:
            # Nothing: wait for what arrives, then for the rest of what arrives with it.
            wait = min(remaining, SYNC_INTERVAL)
            await self._gather(readers, budget, wait, asyncio.get_running_loop().time() + wait)
        return self._take(order, budget)

    async def _gather(
        self, readers: list[PartitionReader], budget: int, wait: float | None, end: float
    ) -> None:
        """Send the readers' requests and wait until they are answered (``wait`` None), or
        until messages came and then stopped coming for ``QUIET`` seconds, or ``end``."""
        self._arrived.clear()
        for reader in readers:
            await reader.request(budget, wait)
        loop = asyncio.get_running_loop()
        while sum(r.buffered for r in readers) < budget:
            if wait is None and not any(r.requesting for r in readers):
                return
            got = any(r.buffered for r in readers)
            left = end - loop.time()
            if left <= 0:
                return
            self._arrived.clear()
            try:
                async with asyncio.timeout(min(left, QUIET) if got else left):
                    await self._arrived.wait()
            except TimeoutError:
                if got:
                    return

    def _take(self, order: list[TopicPartition], budget: int) -> list[ConsumedBatch]:
        batches = []
        for tp in order:
            if budget == 0:
                break
            batch = self._readers[tp].take(budget)
            if batch is not None:
                batches.append(batch)
                budget -= len(batch.messages)
        return batches

    # -- the group ----------------------------------------------------------------------

    async def _keep_in_sync(self) -> None:
        if not self._member.joined:
            await self._rebalance()
            return
        try:
            if await self._member.out_of_sync(self._pending):
                await self._rebalance()
        except BrokerError as exc:
            # The server is away (restarting): read on with the partitions owned; a commit
            # meanwhile is refused if the group moved on.
            log.warning("consumer group %r: cannot sync with the group: %s", self.group, exc)

    async def _rebalance(self) -> None:
        first = not self._member.joined
        view = await self._member.sync()
        lost = self._owned - (view.assignment & view.owned)
        if lost:
            self._owned -= lost
            for tp in lost:
                await self._readers.pop(tp).close()
            if self._listener is not None:
                await self._listener.on_partitions_revoked(frozenset(lost))
            await self._member.release(lost)
        wanted = view.assignment - self._owned
        gained: set[TopicPartition] = set()
        committed: dict[TopicPartition, int] = {}
        if wanted:
            gained, committed = await self._member.claim(wanted)
        client, js = await self._connection.client(), await self._connection.jetstream()
        for tp in gained:
            position = self._seeks.pop(tp, committed.get(tp))
            stream = self._connection.naming.stream(*tp)
            self._readers[tp] = PartitionReader(
                client, js, tp, stream, position, self._arrived, self._start
            )
        self._owned |= gained
        self._pending = set(wanted - gained)
        if self._listener is not None and (gained or first):
            await self._listener.on_partitions_assigned(frozenset(gained))

    # -- offsets ------------------------------------------------------------------------

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Store the group's next offsets, checking in the same atomic step that this member
        is current and owns the partitions; positions of this consumer are not moved.

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
            counts = await self._catalog.topic_counts(fresh=True)
            topics |= self._subscription.topics_among(counts)
        return await self._catalog.high_waters(sorted(topics))

    async def seek(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Read these partitions from these offsets next. A partition this member does not
        own yet (before the first poll, say) starts there when it is assigned to it, instead
        of at the committed offset."""
        for tp, offset in offsets.items():
            if not self._subscription.topics_among([tp[0]]):
                raise ValueError(f"cannot seek {tp[0]!r}: the consumer does not subscribe to it")
            if offset < 0:
                raise ValueError(f"cannot seek {tp} to a negative offset ({offset})")
        for tp, offset in offsets.items():
            reader = self._readers.get(tp)
            if tp in self._owned and reader is not None:
                await reader.seek(offset)
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
        delete this member's readers; idempotent. The listener is not called: commit before
        closing."""
        if self._closed:
            return
        self._closed = True
        for reader in self._readers.values():
            await reader.close()
        self._readers.clear()
        self._owned.clear()
        try:
            await self._member.leave()
        except BrokerError as exc:
            log.warning("consumer group %r: could not leave cleanly: %s", self.group, exc)

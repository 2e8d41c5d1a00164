"""``RedisConsumer``: reads topics from Redis streams as a member of a consumer group."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence

from omconnect.runtime.brokers.base import (
    ConsumedBatch,
    ConsumerStart,
    RebalanceListener,
    TopicPartition,
)
from omconnect.runtime.brokers.groups import SYNC_INTERVAL, DocumentGroupConsumer, GroupMember
from omconnect.runtime.brokers.redis._catalog import TopicCatalog
from omconnect.runtime.brokers.redis._connection import RedisConnection, ServerUnavailable
from omconnect.runtime.brokers.redis._group_storage import RedisGroupStorage
from omconnect.runtime.brokers.redis._heartbeats import HeartbeatLiveness
from omconnect.runtime.brokers.redis._reader import PartitionState, StreamGone, StreamReader

log = logging.getLogger("omconnect.broker.redis")

# How often a poll says the server is away while it stays away.
OUTAGE_WARNING_INTERVAL = 10.0
# The most one poll returns: the read runs as one script, which holds the single-threaded
# server for its duration (about 50 ms for this many small entries).
MAX_POLL_ENTRIES = 5000


class RedisConsumer(DocumentGroupConsumer[PartitionState]):
    """A member of ``group``: reads the partitions the group assigns it, in batches.

    The group is a document on the server (``_group_storage``, with the protocol of
    ``omconnect.runtime.brokers.groups``): members join it on their first ``poll``, and every
    poll compares it with what the member last synced. The partitions of the subscribed
    topics are split over the members by Kafka's range assignor (members sorted by id, which
    starts with the creation time, so older members keep the lower ranges); the assignment
    changes when a member joins, leaves (``close``) or dies (``_heartbeats``: no heartbeat for
    ``claim_idle`` seconds and a little), and when a subscribed topic appears. Inside
    ``poll``, ``on_partitions_revoked`` runs first, while the member still owns the
    partitions (commits made there count); then it releases them, and the new owner's next
    poll claims them and calls ``on_partitions_assigned``.

    Positions (``_reader``): a partition gained continues where its Redis consumer group is,
    after the entries its previous owner had read and not committed (claimed first), or at
    the committed offset, the first message (``start="earliest"``) or the high-water
    (``"latest"``) for a group that never read it; a seek goes at most to the high-water.
    Offsets are entry id numbers less one. Reading does not commit: ``commit`` stores
    ``ConsumedBatch.next_offset`` and acknowledges (``XACK``) the entries below it, refused
    with ``CommitFencedError`` when the group moved on since this member's last poll or for a
    partition it does not own. Before its first poll, a consumer commits only while the group
    has no live member (an offset reset): then the group also reads on from the committed
    offsets. A poll returns at most ``MAX_POLL_ENTRIES`` messages; while the server is away
    (after it answered once) it logs a warning and returns [] after its timeout. ``close``
    leaves what this member read and did not commit to the next owner.
    """

    _log = log

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
        super().__init__(group, topics, pattern, listener, start)
        storage = RedisGroupStorage(connection, group)
        liveness = HeartbeatLiveness(connection, storage, self.member_id, claim_idle)
        self._member = GroupMember(
            storage, liveness, self._subscription, catalog.partition_counts, claim_idle, log
        )
        self._claim_idle_ms = int(claim_idle * 1000)
        self._reader = StreamReader(connection, group, self.member_id)
        self._catalog = catalog
        self._warned = -OUTAGE_WARNING_INTERVAL
        # A blocking wait stays well inside the per-command socket timeout.
        self._wait_slice = min(SYNC_INTERVAL, connection.options.timeout / 2)

    async def _poll(self, max_messages: int, timeout: float) -> list[ConsumedBatch]:
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

    async def _fetch(self, budget: int) -> list[ConsumedBatch]:
        try:
            return await self._reader.fetch(self._readable(), budget)
        except StreamGone as exc:
            log.warning("consumer group %r: %s", self.group, exc)
            gained = dict.fromkeys(self._owned, 0)
            committed = await self._member.committed()
            self._owned.update(await self._reader.start(gained, committed, {}, self._start))
            return []

    async def _start_reading(
        self,
        gained: Mapping[TopicPartition, bool],
        committed: Mapping[TopicPartition, int],
        seeks: Mapping[TopicPartition, int],
    ) -> dict[TopicPartition, PartitionState]:
        # A partition taken from a dead or stuck member: claim its entries once they have
        # been idle for claim_idle; one that was released: at once.
        min_idle = {tp: self._claim_idle_ms if taken else 0 for tp, taken in gained.items()}
        return await self._reader.start(min_idle, committed, seeks, self._start)

    async def _seek_reader(self, reader: PartitionState, offset: int) -> None:
        await self._reader.seek(reader, offset)

    async def end_offsets(self) -> dict[TopicPartition, int]:
        """The offset after the last message of every existing partition of the subscribed
        topics, owned or not (a consumer that has not polled yet knows where to start)."""
        topics = set(self.topics)
        if self.pattern is not None:
            topics |= self._subscription.topics_among(await self._catalog.partition_counts())
        return await self._catalog.high_waters(topics)

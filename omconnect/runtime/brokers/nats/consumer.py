"""``NatsConsumer``: reads topics from JetStream as a member of a consumer group."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence

from omconnect.runtime.brokers.base import (
    BrokerError,
    ConsumedBatch,
    ConsumerStart,
    RebalanceListener,
    TopicPartition,
)
from omconnect.runtime.brokers.groups import SYNC_INTERVAL, DocumentGroupConsumer, GroupMember
from omconnect.runtime.brokers.nats._catalog import TopicCatalog
from omconnect.runtime.brokers.nats._connection import NatsConnection
from omconnect.runtime.brokers.nats._group_storage import KvGroupStorage
from omconnect.runtime.brokers.nats._liveness import PingLiveness
from omconnect.runtime.brokers.nats._reader import PartitionReader

log = logging.getLogger("omconnect.broker.nats")

# The longest a poll waits for the answers to its requests for what is there now.
PROBE_WAIT = 1.0
# Once messages arrive for a waiting poll, it takes the ones that follow within this.
QUIET = 0.01


class NatsConsumer(DocumentGroupConsumer[PartitionReader]):
    """A member of ``group``: reads the partitions the group assigns it, in batches.

    The group is a document in the broker's key-value bucket (``_group_storage``, with the
    protocol of ``omconnect.runtime.brokers.groups``): members join it on their first
    ``poll``, and every poll compares it with what the member last synced. The partitions of
    the subscribed topics are split over the members by Kafka's range assignor (members
    sorted by id, which starts with the creation time, so older members keep the lower
    ranges); the assignment changes when a member joins, leaves (``close``) or is gone
    (``_liveness``: its process died, or it stopped answering for ``session_timeout``
    seconds), and when a subscribed topic appears or changes its partitions. Inside ``poll``,
    ``on_partitions_revoked`` runs first, while the member still owns the partitions (commits
    made there count); then it releases them, and the new owner's next poll claims them and
    calls ``on_partitions_assigned``. A partition whose owner has not synced for
    ``session_timeout`` seconds after the group changed is taken from it anyway.

    Positions: a partition gained starts at the group's committed offset, else at its first
    message (``start="earliest"``) or its high-water (``"latest"``); so does a position
    beyond the high-water, and a position before a trimmed partition's start moves up to it.
    Offsets are stream sequences less one. Reading does not commit: ``commit`` stores
    ``ConsumedBatch.next_offset`` once the messages are processed, refused with
    ``CommitFencedError`` when the group moved on since this member's last poll, or for a
    partition it does not own. Before its first poll, a consumer commits only while the group
    has no live member (offset resets of a stopped pipeline). While the server is away, a
    member that joined reads on with the partitions it owns (a warning says why it cannot
    sync); a commit meanwhile is refused if the group moved on.
    """

    _log = log

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
        super().__init__(group, topics, pattern, listener, start)
        storage = KvGroupStorage(connection, group)
        liveness = PingLiveness(connection, storage, self.member_id, session_timeout)
        self._member = GroupMember(
            storage, liveness, self._subscription, catalog.topic_counts, session_timeout, log
        )
        self._connection = connection
        self._catalog = catalog
        self._arrived = asyncio.Event()

    async def _poll(self, max_messages: int, timeout: float) -> list[ConsumedBatch]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        await self._sync_or_read_on()
        while True:
            batches = await self._read(max_messages, deadline - loop.time())
            if batches or loop.time() >= deadline:
                return batches
            await self._sync_or_read_on()

    async def _sync_or_read_on(self) -> None:
        joined = self._member.joined
        try:
            await self._keep_in_sync()
        except BrokerError as exc:
            if not joined:
                raise
            # The server is away (restarting): read on with the partitions owned; a commit
            # meanwhile is refused if the group moved on.
            log.warning("consumer group %r: cannot sync with the group: %s", self.group, exc)

    async def _read(self, budget: int, remaining: float) -> list[ConsumedBatch]:
        order = self._readable()
        if not order:
            await asyncio.sleep(max(0.0, min(remaining, SYNC_INTERVAL)))
            return []
        readers = [reader for _, reader in order]
        if not any(r.buffered for r in readers):
            # What is there now: each reader's request is answered at once.
            answered = min(max(remaining, 0.05), PROBE_WAIT)
            await self._gather(readers, budget, None, asyncio.get_running_loop().time() + answered)
        if not any(r.buffered for r in readers) and remaining > 0:
            # Nothing: wait for what arrives, then for the rest of what arrives with it.
            wait = min(remaining, SYNC_INTERVAL)
            await self._gather(readers, budget, wait, asyncio.get_running_loop().time() + wait)
        return self._take(readers, budget)

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

    def _take(self, readers: list[PartitionReader], budget: int) -> list[ConsumedBatch]:
        batches = []
        for reader in readers:
            if budget == 0:
                break
            batch = reader.take(budget)
            if batch is not None:
                batches.append(batch)
                budget -= len(batch.messages)
        return batches

    async def _start_reading(
        self,
        gained: Mapping[TopicPartition, bool],
        committed: Mapping[TopicPartition, int],
        seeks: Mapping[TopicPartition, int],
    ) -> dict[TopicPartition, PartitionReader]:
        client, js = await self._connection.client(), await self._connection.jetstream()
        naming = self._connection.naming
        return {
            tp: PartitionReader(
                client,
                js,
                tp,
                naming.stream(*tp),
                seeks.get(tp, committed.get(tp)),
                self._arrived,
                self._start,
            )
            for tp in gained
        }

    async def _seek_reader(self, reader: PartitionReader, offset: int) -> None:
        await reader.seek(offset)

    async def _stop_reading(self, reader: PartitionReader) -> None:
        await reader.close()

    async def end_offsets(self) -> dict[TopicPartition, int]:
        """The offset after the last message of every existing partition of the subscribed
        topics, owned or not (a consumer that has not polled yet knows where to start)."""
        topics = set(self.topics)
        if self.pattern is not None:
            counts = await self._catalog.topic_counts(fresh=True)
            topics |= self._subscription.topics_among(counts)
        return await self._catalog.high_waters(sorted(topics))

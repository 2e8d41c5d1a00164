"""``EmbeddedConsumer``: reads topics of the embedded log as a member of a consumer group."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import Mapping, Sequence, Set

from omconnect.runtime.brokers.base import (
    ConsumedBatch,
    Consumer,
    ConsumerStart,
    RebalanceListener,
    TopicPartition,
)
from omconnect.runtime.brokers.embedded import _group_store, _log_store
from omconnect.runtime.brokers.embedded._append_signal import AppendSignal
from omconnect.runtime.brokers.embedded._owner_lock import OwnerLock
from omconnect.runtime.brokers.embedded._segment_codec import SegmentCodec
from omconnect.runtime.brokers.embedded._sqlite_thread import SqliteThread
from omconnect.runtime.brokers.groups import Subscription, partitions_digest, subscribed_counts
from omconnect.schemas.message_batch import MessageBatch

log = logging.getLogger("omconnect.broker.embedded")

# How often a waiting poll looks at the file for other processes' appends and group changes:
# a few indexed SELECTs, so cheap enough to run 40 times a second. A consumer that keeps
# finding nothing looks less and less often, down to every IDLE_POLL_INTERVAL: each look costs
# a thread hop and the SELECTs (about 0.15 ms of CPU), which an idle `serve` of 25 continuous
# pipelines paid 250 times a second at a 0.2 s poll timeout. Appends of this process (any
# broker on the same file) wake a waiting poll at once whatever the interval, and so does
# the process's watcher of the file (``_append_signal``) when another process changed
# something a consumer reads, within its WATCH_INTERVAL. A consumer the watcher covers (alone
# in its group, waiting for no partition, held back by no open transaction) looks on its own
# only every WATCHED_LOOK_INTERVAL, in case; the others every IDLE_POLL_INTERVAL, for what
# only a look tells (a member of the group whose process died, a partition whose owner
# missed its handover, a transaction past its timeout).
POLL_INTERVAL = 0.025
IDLE_POLL_INTERVAL = 1.0
WATCHED_LOOK_INTERVAL = 10.0
# How often a polling member looks whether another member of its group died (one open and
# flock attempt per member), so that it takes over a killed member's partitions in well under
# a second instead of at its next heartbeat.
LIVENESS_INTERVAL = 0.5


class EmbeddedConsumer(Consumer):
    """A member of ``group``: reads the partitions the group assigns it, in batches.

    Joining: the first ``poll`` joins the group. Until then the consumer owns nothing and
    ``commit`` is accepted only while the group has no live member (offset resets of a stopped
    pipeline), as Kafka accepts commits from outside an empty group; ``committed``,
    ``end_offsets`` and ``seek`` never join.

    Assignment: the partitions of each subscribed topic are split into contiguous ranges over
    the members subscribing to it, sorted by member id (Kafka's range assignor; an id starts
    with the consumer's creation time, so older members keep the lower ranges). It changes
    when a member joins, leaves (``close``) or expires, and when a subscribed topic's
    partitions change or a topic matching ``pattern`` appears. A member expires as soon as its
    process is gone, even killed by SIGKILL (it holds a ``flock`` from joining to closing,
    which the kernel drops; the other members look every ``LIVENESS_INTERVAL`` while they poll
    (an idle one at each look, every ``IDLE_POLL_INTERVAL``), and a newcomer when it joins),
    or when it has not heartbeaten for its ``session_timeout`` seconds (a stopped or hung
    process; a background task heartbeats every third of it, so a member that does not poll
    for minutes stays in). Inside ``poll``, ``on_partitions_revoked`` runs first, while the
    member still owns the partitions (commits made there count); then they are released and
    the new owner's ``poll`` calls ``on_partitions_assigned``. A member that does not poll
    within its session timeout after the group changed loses the partitions the group moved
    away from it anyway.

    Fencing: ``commit`` is refused with ``CommitFencedError``, writing nothing, when the group
    changed since this member's last poll synced its assignment, or for a partition it does
    not own.

    Positions: a partition gained starts at the group's committed offset, else at its first
    message (``start="earliest"``) or its high-water (``"latest"``); so does a position beyond
    the high-water. A position before a trimmed partition's start moves up to it. Reading
    does not commit: call ``commit`` with ``ConsumedBatch.next_offset`` once the messages are
    processed.
    """

    def __init__(
        self,
        thread: SqliteThread,
        signal: AppendSignal,
        group: str,
        topics: Sequence[str] = (),
        *,
        pattern: str | None = None,
        listener: RebalanceListener | None = None,
        start: ConsumerStart = "earliest",
        session_timeout: float = 10.0,
    ) -> None:
        subscription = Subscription.new(topics, pattern)
        if session_timeout <= 0:
            raise ValueError(f"session_timeout must be positive, got {session_timeout}")
        self.group = group
        self.topics = subscription.topics
        self.pattern = pattern
        self._subscription = subscription
        self._listener = listener
        self._thread = thread
        self._signal = signal
        self._start = start
        self._session_ms = int(session_timeout * 1000)
        self._heartbeat_task: asyncio.Task[None] | None = None
        self._member_lock: OwnerLock | None = None
        self._liveness_checked = 0.0  # time.monotonic() of the last look for dead members
        self._joined = False
        self._look_interval = POLL_INTERVAL  # see IDLE_POLL_INTERVAL
        # When the last look found nothing (loop time) and the signal's wakes at its start;
        # None after a change of this consumer's own (a seek, a resume) that needs a look.
        self._quiet: tuple[float, int] | None = None
        self._held_back = False  # the last look met an open transaction
        self._watching = False
        self._closed = False
        # The assignment as this member applied it; changed only by _rebalance.
        self._generation: int | None = None
        self._owned: set[TopicPartition] = set()
        self._pending: set[TopicPartition] = set()
        self._paused: set[TopicPartition] = set()
        # Only touched on the connection's thread, except when _rebalance drops lost partitions.
        self._positions: dict[TopicPartition, int] = {}
        self._decoded: dict[TopicPartition, tuple[int, MessageBatch]] = {}
        self._seeks: dict[TopicPartition, int] = {}
        self._members: tuple[Subscription, ...] = ()
        self._topics_token: tuple[int, int] | None = None
        self._turn = 0

    @property
    def member_id(self) -> str:
        """This member's id in the group (members are ordered by it for the assignment)."""
        return self._subscription.member_id

    async def poll(self, max_messages: int, timeout: float) -> list[ConsumedBatch]:
        """Up to ``max_messages`` messages of the owned, unpaused partitions after this
        consumer's positions, at most one batch per partition; waits up to ``timeout`` seconds
        for some to arrive, else returns []. Joins the group on the first call and runs the
        rebalance callbacks when the assignment changed.

        A poll looks at the file when it starts (unless nothing can have changed since its
        last look), whenever the file changed (an append of this process at once, another
        process's change within ``WATCH_INTERVAL``), and in between at growing intervals (see
        ``IDLE_POLL_INTERVAL``); not when its timeout runs out (the next poll looks then)."""
        if max_messages < 1:
            raise ValueError(f"max_messages must be at least 1, got {max_messages}")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        if not self._watching:
            self._signal.open_consumer()
            self._watching = True
        look = not self._unchanged(loop.time())
        while True:
            if look:
                wakes = self._signal.wakes()
                batches = await self._thread.run(self._read_on_thread, max_messages, True)
                if batches is None:
                    await self._rebalance()
                    batches = await self._thread.run(self._read_on_thread, max_messages, False)
                    assert batches is not None
                if batches:
                    self._look_interval = POLL_INTERVAL
                    self._quiet = None
                    return batches
                self._quiet = (loop.time(), wakes)
            remaining = deadline - loop.time()
            if remaining <= 0:
                return []
            wait = min(remaining, self._interval())
            woken = await self._signal.wait(wait)
            self._look_interval = min(self._longest_look_interval(), self._look_interval * 2)
            if not woken and wait >= remaining:
                # The timeout ran out and nothing changed: the caller's next poll looks if it
                # is time to, so a look now would be the same look twice in a row.
                return []
            look = woken or not self._unchanged(loop.time())

    def _longest_look_interval(self) -> float:
        """How long a waiting poll may go without looking on its own (module comment)."""
        covered = len(self._members) <= 1 and not self._pending and not self._held_back
        return WATCHED_LOOK_INTERVAL if covered else IDLE_POLL_INTERVAL

    def _unchanged(self, now: float) -> bool:
        """Whether a look now would find what the last one did: it found nothing, less than
        the look interval ago, and the file did not change since (no wake)."""
        if self._quiet is None or self._generation is None:
            return False
        looked, wakes = self._quiet
        return wakes == self._signal.wakes() and now - looked < self._interval()

    def _interval(self) -> float:
        # Clamped: it may have grown while the watcher covered this consumer, which it no
        # longer does (a member joined its group).
        return min(self._look_interval, self._longest_look_interval())

    async def _rebalance(self) -> None:
        view = await self._thread.run(self._sync_on_thread)
        self._joined = True
        _log_expired(view.expired)
        if self._heartbeat_task is None:
            self._heartbeat_task = asyncio.create_task(self._heartbeat())
        self._members = view.members
        self._topics_token = None
        lost = self._owned - (view.assignment & view.owned)
        if lost:
            self._owned -= lost
            for tp in lost:
                self._positions.pop(tp, None)
                self._decoded.pop(tp, None)
            if self._listener is not None:
                await self._listener.on_partitions_revoked(frozenset(lost))
        wanted = view.assignment - self._owned
        gained = await self._thread.run(self._claim_on_thread, frozenset(self._owned), wanted)
        self._owned |= gained
        self._pending = set(wanted - gained)
        first = self._generation is None
        self._generation = view.generation
        if self._listener is not None and (gained or first):
            await self._listener.on_partitions_assigned(frozenset(gained))

    def _sync_on_thread(self, connection: sqlite3.Connection) -> _group_store.GroupView:
        if self._member_lock is None:
            lock = _group_store.member_lock(connection, self.member_id)
            lock.acquire()  # before the member's row exists: a missing lock means a dead member
            self._member_lock = lock
        view = _group_store.sync_member(
            connection, self.group, self._subscription, self._session_ms
        )
        self._liveness_checked = time.monotonic()  # the sync expired the dead members
        return view

    def _claim_on_thread(
        self,
        connection: sqlite3.Connection,
        keep: frozenset[TopicPartition],
        wanted: frozenset[TopicPartition],
    ) -> set[TopicPartition]:
        gained = _group_store.claim_partitions(connection, self.group, self.member_id, keep, wanted)
        if not gained:
            return gained
        topics = sorted({t for t, _ in gained})
        committed = _log_store.load_group_offsets(connection, self.group, topics)
        ranges = _log_store.partition_ranges(connection, topics)
        for tp in gained:
            start, end = ranges.get(tp, (0, 0))
            fallback = start if self._start == "earliest" else end
            self._positions[tp] = self._seeks.pop(tp, committed.get(tp, fallback))
            self._decoded.pop(tp, None)
        return gained

    def _group_changed(self, connection: sqlite3.Connection) -> bool:
        """Whether the assignment may have changed since this member last applied it."""
        if self._generation is None:
            return True
        state = _group_store.group_state(connection, self.group, self.member_id)
        if state is None or state[0] != self._generation:
            return True
        now = time.monotonic()
        if now - self._liveness_checked >= LIVENESS_INTERVAL:
            self._liveness_checked = now
            if _group_store.dead_member_in(connection, self.group, self.member_id):
                return True  # the sync expires it
        token = _group_store.topics_token(connection)
        if token != self._topics_token:
            counts = _group_store.topic_partition_counts(connection)
            digest = partitions_digest(subscribed_counts(self._members, counts))
            if digest != state[1]:
                return True
            self._topics_token = token
        return bool(self._pending) and _group_store.claimable(
            connection, self.group, self.member_id, self._pending
        )

    def _read_on_thread(
        self, connection: sqlite3.Connection, max_messages: int, check_group: bool
    ) -> list[ConsumedBatch] | None:
        if check_group and self._group_changed(connection):
            return None
        readable = self._owned - self._paused
        self._held_back = held_back = False
        if not readable:
            return []
        bounds = _log_store.readable_ranges(
            connection, sorted({t for t, _ in readable}), self._positions
        )
        ready = []
        for tp in sorted(readable):
            start, end = bounds[tp].start_offset, bounds[tp].high_water
            position = self._positions[tp]
            if position < start:
                position = start  # trimmed away: read on from the new start
            elif position > end:
                # Beyond the log (a recreated file, or a power loss under sync=normal):
                # reset like Kafka's auto.offset.reset rather than wait for offsets that
                # would be new, different messages.
                position = start if self._start == "earliest" else end
            position = bounds[tp].next_readable(position)  # past aborted transactions
            self._positions[tp] = position
            if position < bounds[tp].stable_offset:  # never into an open transaction
                ready.append(tp)
            elif bounds[tp].stable_offset < bounds[tp].high_water:
                held_back = True
        self._held_back = held_back
        if not ready:
            return []
        self._turn += 1
        turn = self._turn % len(ready)
        batches: list[ConsumedBatch] = []
        budget = max_messages
        for tp in ready[turn:] + ready[:turn]:
            if budget == 0:
                break
            batch = self._read_partition(connection, tp, budget, bounds[tp].stable_offset)
            if batch is not None:
                batches.append(batch)
                budget -= len(batch.messages)
        return batches

    def _read_partition(
        self, connection: sqlite3.Connection, tp: TopicPartition, budget: int, stable: int
    ) -> ConsumedBatch | None:
        topic, partition = tp
        position = self._positions[tp]
        cached = self._decoded.get(tp)
        segments = _log_store.read_segments(
            connection, topic, partition, position, budget, cached[0] if cached else None, stable
        )
        pieces: list[MessageBatch] = []
        first = position
        for segment in segments:
            if segment.base_offset > position:
                if pieces:
                    break  # a gap can only come from trimming; never join across it
                first = position = segment.base_offset
            if segment.body is None:
                assert cached is not None
                messages = cached[1]
            else:
                messages = SegmentCodec.decode(segment.body)
            skip = position - segment.base_offset
            take = min(segment.count - skip, budget)
            pieces.append(messages.slice(skip, take))
            position += take
            budget -= take
            if skip + take < segment.count:
                self._decoded[tp] = (segment.base_offset, messages)
            else:
                self._decoded.pop(tp, None)
            if budget == 0:
                break
        self._positions[tp] = position
        if not pieces:
            return None
        return ConsumedBatch(topic, partition, MessageBatch.concat(pieces).with_offsets(first))

    async def _heartbeat(self) -> None:
        interval = self._session_ms / 3000
        while True:
            await asyncio.sleep(interval)
            try:
                alive, expired = await self._thread.run(
                    _group_store.heartbeat, self.group, self.member_id, interval
                )
            except sqlite3.Error as exc:
                # A write lock held longer than busy_timeout: try again next beat; the
                # session timeout is what decides whether the member is lost.
                log.warning("consumer group %r: heartbeat failed: %s", self.group, exc)
                continue
            _log_expired(expired)
            if not alive:
                log.warning(
                    "consumer group %r: member %s was expired; it rejoins on its next poll",
                    self.group,
                    self.member_id,
                )

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Store the group's next offsets durably, in one transaction with the fencing check;
        positions of this consumer are not moved.

        Raises:
            CommitFencedError: the group changed since this member's last poll, or a partition
                is not assigned to it (before its first poll: the group has live members);
                nothing was committed.
        """
        if not offsets:
            return
        member_id = self.member_id if self._joined else None
        await self._thread.run(_group_store.commit_offsets, self.group, member_id, dict(offsets))

    async def committed(self) -> dict[TopicPartition, int]:
        """The group's committed offsets for partitions of the subscribed topics (owned or
        not)."""
        return await self._thread.run(self._committed_on_thread)

    def _committed_on_thread(self, connection: sqlite3.Connection) -> dict[TopicPartition, int]:
        topics = self._subscribed_topics(connection)
        return _log_store.load_group_offsets(connection, self.group, topics)

    async def end_offsets(self) -> dict[TopicPartition, int]:
        """The offset after the last readable message of every existing partition of the
        subscribed topics, owned or not (a consumer that has not polled yet knows where to
        start tailing): the high-water, less an open transaction's messages and aborted ones
        at the tail."""
        return await self._thread.run(self._end_offsets_on_thread)

    def _end_offsets_on_thread(self, connection: sqlite3.Connection) -> dict[TopicPartition, int]:
        # Read-committed: the end is what a reader can reach, never an open transaction's
        # messages nor aborted ones at the tail (``--once`` would wait for them forever).
        ranges = _log_store.readable_ranges(connection, self._subscribed_topics(connection))
        return {
            tp: _log_store.readable_end(connection, tp, readable) for tp, readable in ranges.items()
        }

    def _subscribed_topics(self, connection: sqlite3.Connection) -> list[str]:
        if self.pattern is None:
            return list(self.topics)
        existing = _group_store.topic_partition_counts(connection)
        return sorted(set(self.topics) | self._subscription.topics_among(existing))

    async def seek(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Read these partitions from these offsets next. A partition this member does not
        own yet (before the first poll, say) starts there when it is assigned to it, instead
        of at the committed offset."""
        await self._thread.run(self._seek_on_thread, dict(offsets))
        self._quiet = None

    def _seek_on_thread(
        self, connection: sqlite3.Connection, offsets: dict[TopicPartition, int]
    ) -> None:
        self._subscription.check_seek(offsets)
        for tp, offset in offsets.items():
            if tp in self._owned:
                self._positions[tp] = offset
                self._decoded.pop(tp, None)
            else:
                self._seeks[tp] = offset

    async def assignment(self) -> set[TopicPartition]:
        """The partitions this member owns now; empty before its first poll."""
        return set(self._owned)

    async def pause(self, partitions: Set[TopicPartition]) -> None:
        """Return no messages of ``partitions`` until ``resume``; they stay assigned and the
        heartbeats go on. Pausing is independent of the assignment: a paused partition
        assigned later is paused too."""
        self._paused |= set(partitions)

    async def resume(self, partitions: Set[TopicPartition]) -> None:
        """Return messages of paused ``partitions`` again."""
        self._paused -= set(partitions)
        self._quiet = None

    async def close(self) -> None:
        """Leave the group (its partitions go to the other members at their next poll) and
        close the connection; idempotent. The listener is not called: commit before closing."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._watching:
                self._watching = False
                await self._signal.close_consumer()
            if self._heartbeat_task is not None:
                self._heartbeat_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._heartbeat_task
            if self._member_lock is not None:  # it joined, or tried to
                await self._thread.run(self._leave_on_thread, self._member_lock)
        finally:
            await self._thread.close()

    def _leave_on_thread(self, connection: sqlite3.Connection, lock: OwnerLock) -> None:
        try:
            _group_store.leave_group(connection, self.group, self.member_id)
        finally:
            lock.release()  # after the row is gone: nobody sees a live member without its lock


def _log_expired(expired: Sequence[_group_store.ExpiredMember]) -> None:
    for member in expired:
        if member.process_gone:
            log.warning(
                "consumer group %r: member %s expired, its process is gone",
                member.group,
                member.member_id,
            )
        else:
            log.warning(
                "consumer group %r: member %s missed its heartbeats, expired",
                member.group,
                member.member_id,
            )

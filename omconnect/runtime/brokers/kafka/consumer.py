"""``KafkaConsumer``: a Kafka consumer-group member that reads in batches."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence, Set
from functools import partial
from typing import TypeVar

from confluent_kafka import Consumer as LibrdkafkaConsumer
from confluent_kafka import ConsumerGroupState, KafkaError, KafkaException, Message
from confluent_kafka import TopicPartition as KafkaPartition

from omconnect.runtime.brokers.base import (
    BrokerError,
    ConsumedBatch,
    Consumer,
    ConsumerStart,
    RebalanceListener,
    TopicPartition,
)
from omconnect.runtime.brokers.kafka._admin import KafkaAdmin, is_internal
from omconnect.runtime.brokers.kafka._errors import (
    ConnectionProblems,
    broker_error,
    commit_error,
    fenced,
)
from omconnect.runtime.brokers.kafka._librdkafka import BlockingCalls, consumer_config
from omconnect.runtime.brokers.kafka._log_reader import LogReader
from omconnect.runtime.brokers.kafka._membership import Membership
from omconnect.runtime.brokers.kafka._records import incoming_batch

log = logging.getLogger("omconnect.broker.kafka")

T = TypeVar("T")

# A poll waits in slices this long, so it notices its first assignment and its deadline.
_SLICE = 0.1
# How long a first poll waits at least for the coordinator to know the member.
_MEMBER_WAIT = 0.5
# How long the first poll after an assignment waits at most for the fetcher to have every
# new partition.
_CATCH_UP = 0.5
# How many queued records a poll takes from librdkafka at least (then shares them out in turn
# across partitions, see ``_fetched``).
_PULL = 1000
# Errors a consumer reports in its message stream that need no action here.
_PASSING = frozenset(
    {
        KafkaError._PARTITION_EOF,
        KafkaError.UNKNOWN_TOPIC_OR_PART,
        KafkaError._UNKNOWN_PARTITION,
        KafkaError._UNKNOWN_TOPIC,
    }
)


class KafkaConsumer(Consumer):
    """A member of ``group`` reading ``topics`` and the topics whose whole name matches
    ``pattern``, through librdkafka's consumer-group protocol (range assignment, eager
    rebalances), reading committed messages only (``isolation.level=read_committed``).

    Joining: the first ``poll`` subscribes and returns once the coordinator knows the member
    (it has a member id: the other members hear of the rebalance at their next heartbeat); the
    coordinator then assigns partitions, which takes a while (Tansu answers a join after half
    a session timeout, and a group with members waits for them to rejoin). So that a new
    member does not report "nothing" for a log that holds messages for it, its first poll
    waits for the assignment (up to ``join_wait``) when the subscribed partitions hold
    something the member would read. ``commit``, ``committed``, ``end_offsets`` and ``seek``
    never join. A pattern subscription looks for new matching topics every
    ``metadata_refresh_ms`` (internal ``__`` topics never match).

    Fencing: a commit is refused with ``CommitFencedError`` for a partition the member does
    not own, and while the group rebalances without the member having polled since (Kafka's
    coordinator would accept that commit, from the current generation; the group state is
    asked for on every commit to refuse it as the contract says); inside
    ``on_partitions_revoked`` commits of the revoked partitions are allowed. Kafka's own
    refusals (an old generation, an unknown member) are ``CommitFencedError`` too.

    Positions: see ``_membership``. ``next_offset`` of a batch is its last offset plus one;
    ``end_offsets`` is where a reader of committed messages ends (``LogReader``), so a reader
    that read everything is exactly there, transaction markers and aborted tails included.
    """

    def __init__(
        self,
        admin: KafkaAdmin,
        calls: BlockingCalls,
        problems: ConnectionProblems,
        reader: LogReader,
        group: str,
        topics: Sequence[str],
        *,
        pattern: str | None,
        listener: RebalanceListener | None,
        start: ConsumerStart,
    ) -> None:
        if not topics and pattern is None:
            raise ValueError("a consumer needs at least one topic or a pattern")
        if start not in ("earliest", "latest"):
            raise ValueError(f"start must be 'earliest' or 'latest', not {start!r}")
        try:
            self._regex = re.compile(pattern) if pattern is not None else None
        except re.error as exc:
            raise ValueError(
                f"topic pattern {pattern!r} is not a regular expression: {exc}"
            ) from None
        self.group = group
        self.topics = tuple(dict.fromkeys(topics))
        self.pattern = pattern
        self._admin = admin
        self._calls = calls
        self._reader = reader
        self._start = start
        options = admin.options
        self._options = options
        self._timeout = options.request_timeout_ms / 1000
        self._client = LibrdkafkaConsumer(consumer_config(options, problems, group, start))
        self._membership = Membership(
            self._client,
            group,
            listener,
            listener_timeout=options.max_poll_interval_ms / 1000,
            committed_timeout=self._timeout,
        )
        self._subscription: tuple[str, ...] | None = None
        self._first_poll = True
        self._next_refresh = 0.0
        self._polling = asyncio.Lock()
        self._closed = False

    async def poll(self, max_messages: int, timeout: float) -> list[ConsumedBatch]:
        """Up to ``max_messages`` messages of the owned, unpaused partitions, at most one
        batch per partition, waiting up to ``timeout`` seconds (the first poll longer, see
        the class docstring). Rebalance callbacks run inside this call."""
        if max_messages < 1:
            raise ValueError(f"max_messages must be at least 1, got {max_messages}")
        if self._closed:
            raise BrokerError("kafka: the consumer is closed")
        loop = asyncio.get_running_loop()
        membership = self._membership
        membership.loop = loop
        async with self._polling:
            await self._subscribe()
            started = loop.time()
            deadline = started + timeout
            waiting = await self._join_to_wait_for()
            if waiting == "assignment":
                deadline = max(deadline, started + self._options.join_wait)
            elif waiting == "member":
                deadline = max(deadline, started + _MEMBER_WAIT)
            while True:
                wait = max(0.0, min(deadline - loop.time(), _SLICE))
                batches = await self._calls.run(
                    "polling",
                    wait + self._options.max_poll_interval_ms / 1000,
                    self._poll_once,
                    max_messages,
                    wait,
                )
                if batches:
                    return batches
                if waiting == "assignment" and membership.assigned_once:
                    waiting = None  # now wait the poll's own timeout for messages
                    deadline = min(deadline, loop.time() + timeout)
                elif waiting == "member" and self._client.memberid():
                    waiting = None
                    deadline = min(deadline, started + timeout)
                if loop.time() >= deadline:
                    return []

    async def _join_to_wait_for(self) -> str | None:
        """What the first poll waits for beyond its timeout while the member joins: its first
        assignment, when the subscribed partitions have messages it would read; else the
        coordinator's knowing it (its member id), so the other members hear of the rebalance
        at their next heartbeat; None for later polls."""
        first, self._first_poll = self._first_poll, False
        if not first or not self._subscription or self._membership.assigned_once:
            return None
        if await self._has_backlog():
            return "assignment"
        return "member" if not self._client.memberid() else None

    def _poll_once(self, max_messages: int, wait: float) -> list[ConsumedBatch]:
        """One round of ``consume`` calls (rebalance callbacks run inside them) and batches
        of what was fetched, on a worker thread: take what librdkafka has queued; when none
        of it is readable, block up to ``wait`` for a first record and take what else came."""
        membership = self._membership
        fetched = membership.fetched

        def readable(tp: TopicPartition) -> bool:
            return tp in membership.owned and tp not in membership.paused

        pull = max(max_messages, _PULL)
        # Always consume, if only one record: rebalance callbacks are served there.
        self._keep(self._client.consume(max(1, pull - fetched.count(readable)), 0))
        if membership.unfetched:
            self._catch_up(pull)
        if fetched.count(readable) == 0:
            first = self._client.consume(1, wait)
            if first:
                self._keep(first + self._client.consume(pull - 1, 0))
        return [
            ConsumedBatch(t, p, incoming_batch(records))
            for (t, p), records in fetched.take(max_messages, readable)
        ]

    def _catch_up(self, pull: int) -> None:
        """After an assignment, wait (briefly) until a fetch response came for every new
        partition, so that the first polls share out all of them in turn rather than the
        one librdkafka happened to fetch first."""
        membership = self._membership
        deadline = time.monotonic() + _CATCH_UP
        while True:
            membership.unfetched = frozenset(
                tp
                for tp in membership.unfetched
                if tp in membership.owned
                and self._client.get_watermark_offsets(KafkaPartition(*tp), cached=True)[1] < 0
            )
            if not membership.unfetched or time.monotonic() >= deadline:
                membership.unfetched = frozenset()
                return
            room = pull - membership.fetched.count(lambda _: True)
            self._keep(self._client.consume(max(1, room), 0.01))

    def _keep(self, records: list[Message]) -> None:
        """Buffer the records of owned partitions; act on the errors among them."""
        membership = self._membership
        for record in records:
            error = record.error()
            if error is not None:
                if error.fatal():
                    raise BrokerError(f"kafka: consumer of group {self.group!r}: {error.str()}")
                if error.code() not in _PASSING:
                    log.warning("consumer group %r: %s", self.group, error.str())
                continue
            tp = (record.topic() or "", record.partition() or 0)
            if tp in membership.owned:
                membership.fetched.add(tp, record)

    async def _subscribe(self) -> None:
        """Subscribe on the first poll; with a pattern, follow the matching topics."""
        now = time.monotonic()
        if self._subscription is not None and (self._regex is None or now < self._next_refresh):
            return
        await self._admin.check_reachable()
        names = set(self.topics)
        if self._regex is not None:
            names |= self._matching(await self._admin.topics())
            self._next_refresh = now + self._options.metadata_refresh_ms / 1000
        wanted = tuple(sorted(names))
        if wanted == self._subscription:
            return
        membership = self._membership
        if self._start == "latest" and membership.latest is None:
            ends = await self._calls.run(
                "reading end offsets",
                self._timeout + 1,
                self._reader.high_waters,
                await self._partitions_of(wanted),
            )
            membership.latest = {tp: high for tp, (_, high) in ends.items()}
        if wanted:
            self._client.subscribe(list(wanted), **membership.callbacks())
        elif self._subscription:
            self._client.unsubscribe()
        self._subscription = wanted

    def _matching(self, topics: Mapping[str, int]) -> set[str]:
        assert self._regex is not None
        return {t for t in topics if not is_internal(t) and self._regex.fullmatch(t)}

    async def _partitions_of(self, topics: Sequence[str]) -> list[TopicPartition]:
        counts = await self._admin.topics()
        return [(t, p) for t in topics for p in range(counts.get(t, 0))]

    async def _subscribed_partitions(self) -> list[TopicPartition]:
        """Every existing partition of the subscribed topics (pattern matches included)."""
        counts = await self._admin.topics()
        names = set(self.topics) | (self._matching(counts) if self._regex is not None else set())
        return [(t, p) for t in sorted(names) for p in range(counts.get(t, 0))]

    async def _has_backlog(self) -> bool:
        """Whether the subscribed partitions hold messages this member would read from where
        it would start."""
        partitions = await self._partitions_of(self._subscription or ())
        if partitions:
            committed = await self._committed_of(partitions)
            ends = await self._calls.run(
                "reading end offsets", self._timeout + 1, self._reader.high_waters, partitions
            )
            membership = self._membership
            for tp, (low, high) in ends.items():
                start = membership.seeks.get(tp, committed.get(tp))
                if start is None and self._start == "earliest":
                    start = low
                if start is not None and high > max(start, low):
                    return True
        return False

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Store the group's next offsets (synchronously, on the group's coordinator).

        Raises:
            CommitFencedError: a partition is not this member's, the group is rebalancing
                and this member has not polled since, or Kafka refused the member; nothing
                was committed.
            BrokerError: the commit failed otherwise.
        """
        if not offsets:
            return
        membership = self._membership
        if self._subscription is not None:
            revoking = membership.revoking
            foreign = set(offsets) - membership.owned - revoking
            if foreign:
                raise fenced(self.group, "not assigned to this member", foreign)
            stable = ConsumerGroupState.STABLE
            if not revoking and await self._admin.group_state(self.group) != stable:
                raise fenced(
                    self.group,
                    "the group is rebalancing and this member has not polled since; it polls "
                    "to take its new assignment",
                )
        listing = [KafkaPartition(t, p, offset) for (t, p), offset in offsets.items()]

        def commit() -> list[KafkaPartition]:
            return self._client.commit(offsets=listing, asynchronous=False) or []

        try:
            stored = await self._on_client("committing offsets", commit)
        except KafkaException as error:
            raise commit_error(error, self.group) from None
        for partition in stored:
            if partition.error is not None:
                raise commit_error(KafkaException(partition.error), self.group)

    async def committed(self) -> dict[TopicPartition, int]:
        """The group's committed offsets of every partition of the subscribed topics."""
        partitions = await self._subscribed_partitions()
        return await self._committed_of(partitions)

    async def _committed_of(
        self, partitions: Sequence[TopicPartition]
    ) -> dict[TopicPartition, int]:
        if not partitions:
            return {}
        listing = [KafkaPartition(t, p) for t, p in partitions]
        try:
            found = await self._on_client(
                "reading committed offsets",
                partial(self._client.committed, listing, timeout=self._timeout),
            )
        except KafkaException as error:
            raise broker_error(f"reading the offsets of group {self.group!r}", error) from None
        return {(f.topic, f.partition): f.offset for f in found if f.offset >= 0}

    async def end_offsets(self) -> dict[TopicPartition, int]:
        """Where a reader of each subscribed partition's committed messages ends: the offset
        after the last message it gets (transaction markers and aborted messages at the
        tail, and an open transaction's messages, are not counted)."""
        await self._admin.check_reachable()
        partitions = await self._subscribed_partitions()
        return await self._calls.run(
            "reading end offsets", self._timeout + 1, self._reader.readable_ends, partitions
        )

    async def seek(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Read these partitions from these offsets next; a partition not owned yet starts
        there once it is assigned to this member (instead of at the committed offset)."""
        for (topic, _), offset in offsets.items():
            if topic not in self.topics and not (self._regex and self._regex.fullmatch(topic)):
                raise ValueError(f"cannot seek {topic!r}: the consumer does not subscribe to it")
            if offset < 0:
                raise ValueError(f"cannot seek {topic!r} to a negative offset ({offset})")
        membership = self._membership
        for tp, offset in offsets.items():
            membership.fetched.drop([tp])
            if tp in membership.owned:
                await self._on_client(
                    "seeking", partial(self._client.seek, KafkaPartition(*tp, offset))
                )
            else:
                membership.seeks[tp] = offset

    async def assignment(self) -> set[TopicPartition]:
        """The partitions this member owns now (empty before its first assignment)."""
        return set(self._membership.owned)

    async def pause(self, partitions: Set[TopicPartition]) -> None:
        """Return no messages of ``partitions`` until ``resume``; membership and heartbeats
        go on. A paused partition assigned later is paused too."""
        membership = self._membership
        membership.paused = membership.paused | frozenset(partitions)
        owned = [KafkaPartition(*tp) for tp in partitions if tp in membership.owned]
        if owned:
            self._client.pause(owned)

    async def resume(self, partitions: Set[TopicPartition]) -> None:
        """Return messages of paused ``partitions`` again, from where the member was (what
        was fetched before the pause first)."""
        membership = self._membership
        membership.paused = membership.paused - frozenset(partitions)
        owned = [KafkaPartition(*tp) for tp in partitions if tp in membership.owned]
        if owned:
            self._client.resume(owned)

    async def _on_client(self, what: str, call: Callable[[], T]) -> T:
        """A blocking call of the librdkafka consumer: on the thread running the rebalance
        listener when it runs now (the listener commits there), else on a worker thread."""
        inside = self._membership.call_inside(call)
        if inside is None:
            return await self._calls.run(what, self._timeout + 1, call)
        try:
            async with asyncio.timeout(self._timeout + 1):
                return await asyncio.wrap_future(inside)
        except TimeoutError:
            raise BrokerError(f"kafka: {what} took longer than {self._timeout + 1:g} s") from None

    async def close(self) -> None:
        """Leave the group (its partitions go to the other members) and release the client;
        the listener is not called: commit before closing. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._membership.closing = True
        async with self._polling:
            try:
                await self._calls.run("leaving the group", self._timeout + 1, self._client.close)
            except KafkaException as error:
                log.warning("consumer group %r: leaving failed: %s", self.group, error)

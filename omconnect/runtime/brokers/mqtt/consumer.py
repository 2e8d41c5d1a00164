"""``MqttConsumer``: a member of a consumer group, reading through a shared subscription."""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from omconnect.clients.mqtt_inbox import Inbox, Received
from omconnect.runtime.brokers.base import (
    BrokerError,
    ConsumedBatch,
    QueueConsumer,
    RebalanceListener,
)
from omconnect.runtime.brokers.mqtt._message_codec import decode_messages, original_topic
from omconnect.runtime.brokers.mqtt._naming import check_group, check_topic
from omconnect.runtime.brokers.mqtt._server import MqttServer
from omconnect.runtime.brokers.mqtt._session import Held, MemberSession

log = logging.getLogger("omconnect.broker.mqtt")

# How often a poll says the server is away while it stays away.
OUTAGE_WARNING_INTERVAL = 10.0


@dataclass(frozen=True)
class _Handed:
    """A batch a poll returned and nobody acknowledged yet."""

    topic: str
    items: list[Received]


class MqttConsumer(QueueConsumer):
    """A member of ``group``: its messages of ``topics`` (and of every topic whose whole
    name matches ``pattern``), in batches, acknowledged with ``ack``.

    Its session (``_session``) connects as the slot ``_membership`` picks (taking over the
    session a gone member left there, with its unacknowledged messages) and subscribes
    before ``Broker.consumer`` returns: ``$share/<group>/<prefix>/<topic>`` per topic, or
    ``$share/<group>/<prefix>/+`` (every topic) for a pattern, whose messages of other topics
    it acknowledges and drops; and the group's requeue topic, where members hand messages
    back. Messages come in as the server pushes them (up to ``receive_maximum``
    unacknowledged); a poll returns them per topic, numbered with this consumer's own
    increasing sequence, from the time it was made in nanoseconds (partition 0; offsets good
    for ordering, not for seeking). ``ack`` sends the PUBACK of exactly a batch's messages.

    When another member joins, this one hands the messages it received and has not returned
    yet back to the group (``MemberSession.hand_back``), so the newcomer gets a share of what
    was already published. A consumer that loses its connection takes its session back on
    the next poll; batches it returned before are then no longer acknowledged (the server
    sends their messages again).
    """

    scheme = "mqtt"

    def __init__(
        self,
        server: MqttServer,
        group: str,
        topics: Sequence[str],
        pattern: str | None,
        listener: RebalanceListener | None,
        held_here: set[int],
    ) -> None:
        super().__init__(listener)
        self.group = check_group(group)
        self.topics = [check_topic(t) for t in topics]
        self.pattern = re.compile(pattern) if pattern is not None else None
        self._naming = naming = server.naming
        # A pattern's subscription covers the topics too: a session subscribed to two filters
        # that match a message gets it twice.
        filters = [naming.every_topic] if pattern is not None else map(naming.topic, self.topics)
        self._inbox = Inbox(asyncio.get_running_loop())
        self._session = MemberSession(
            server, group, [naming.shared(group, f) for f in filters], held_here, self._inbox
        )
        self._buffers: dict[str, deque[Received]] = {}
        self._handed: dict[int, _Handed] = {}
        self._backlog: Held = []  # to hand back: another member joined
        self._tokens = itertools.count()
        # Offsets go on from the time the consumer was made: from 0, the offsets of a later
        # run would repeat an earlier run's, over which a sink naming its output by offset
        # (the file sinks) would write.
        self._sequence = time.time_ns()
        self._closed = False
        self._warned = -OUTAGE_WARNING_INTERVAL

    async def join(self) -> None:
        """Take a slot and subscribe (``MemberSession.join``).

        Raises:
            BrokerError: the server cannot be reached or refused the subscriptions.
        """
        await self._session.join()

    async def _reconnected(self, deadline: float) -> bool:
        """Whether the consumer is connected, taking its session back when it lost its
        connection (what it held then is sent again by the server)."""
        if self._session.connected:
            return True
        self._buffers.clear()
        self._backlog.clear()
        self._handed.clear()
        try:
            await self._session.rejoin()
            return True
        except BrokerError as exc:
            if time.monotonic() - self._warned >= OUTAGE_WARNING_INTERVAL:
                self._warned = time.monotonic()
                log.warning("consumer group %r: %s", self.group, exc)
            loop = asyncio.get_running_loop()
            await asyncio.sleep(max(0.0, min(deadline - loop.time(), 1.0)))
            return False

    # -- reading --------------------------------------------------------------------------

    async def poll(self, max_messages: int, timeout: float) -> list[ConsumedBatch]:
        """Up to ``max_messages`` messages of unpaused topics, waiting at most ``timeout``
        seconds; while the server is away, a warning now and then and [] after ``timeout``.

        Raises:
            BrokerError: the consumer is closed.
        """
        if self._closed:
            raise BrokerError(f"the consumer of group {self.group!r} is closed")
        await self._assign(set(self.topics))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            if not await self._reconnected(deadline):
                return []
            self._sort()
            if self._backlog:
                try:
                    await self._share_with_newcomer()
                except BrokerError:
                    if self._session.connected:
                        raise
                    continue  # connect again; what it held comes again
            batches = await self._take(max_messages)
            left = deadline - loop.time()
            if batches or left <= 0:
                return batches
            await self._inbox.wait(left)
            await self._inbox.gather(max_messages)

    def _sort(self) -> None:
        """File what arrived: claims update the members, messages of subscribed topics go to
        their topic's buffer, the rest is acknowledged and dropped."""
        session = self._session
        unwanted = []
        for item in self._inbox.take():
            if item.connection != session.number:
                continue  # from a lost connection: the server sends it again
            if session.members.update(item.topic, item.payload, item.retain):
                if session.members.joined:
                    # What came before the newcomer's claim, the server gave this member
                    # alone; what comes after, it already spreads over both.
                    session.members.joined = False
                    self._backlog += self._buffered()
                continue
            if item.topic == session.requeue_topic:
                topic = original_topic(item.properties)
            else:
                topic = self._naming.topic_name(item.topic)
            if topic is not None and self._wants(topic):
                self._buffers.setdefault(topic, deque()).append(item)
            else:
                unwanted.append(item)
        session.ack(unwanted)

    def _wants(self, topic: str) -> bool:
        return topic in self.topics or (
            self.pattern is not None and self.pattern.fullmatch(topic) is not None
        )

    async def _take(self, max_messages: int) -> list[ConsumedBatch]:
        batches: list[ConsumedBatch] = []
        budget = max_messages
        for topic, buffer in list(self._buffers.items()):
            if budget <= 0:
                break
            if topic in self._paused or not buffer:
                continue
            await self._assign({topic})
            items = [buffer.popleft() for _ in range(min(budget, len(buffer)))]
            budget -= len(items)
            first = self._sequence
            self._sequence += len(items)
            messages = decode_messages(
                [(i.payload, i.properties, i.received_ms) for i in items],
                np.arange(first, self._sequence, dtype=np.int64),
            )
            token = next(self._tokens)
            self._handed[token] = _Handed(topic, items)
            batches.append(ConsumedBatch(topic, 0, messages, ack_token=token))
        return batches

    def _buffered(self) -> Held:
        """What this member received and did not return, and empties its buffers."""
        held = [(topic, item) for topic, buffer in self._buffers.items() for item in buffer]
        self._buffers.clear()
        return held

    async def _share_with_newcomer(self) -> None:
        """Another member joined: hand back what this one had received before and did not
        return, so the server spreads it over every member (this one included); Mosquitto
        would leave it all here."""
        held, self._backlog = self._backlog, []
        left = held
        try:
            left = await self._session.hand_back(held)
        finally:  # what nobody took, or everything when handing back failed
            for topic, item in reversed(left):
                self._buffers.setdefault(topic, deque()).appendleft(item)

    # -- acknowledging --------------------------------------------------------------------

    async def ack(self, tokens: Sequence[Any]) -> None:
        """Acknowledge the messages of the batches of ``tokens``: the server forgets them.
        Tokens of batches that came on a connection since lost are ignored (their messages
        are sent again)."""
        items = []
        for token in tokens:
            handed = self._handed.pop(token, None)
            if handed is not None:
                items.extend(handed.items)
        self._session.ack(items)

    # -- leaving --------------------------------------------------------------------------

    async def close(self) -> None:
        """Leave the group (``MemberSession.leave``): with other members live, what this one
        did not acknowledge goes to them and its session ends; as the last member its session
        stays, subscribed, for the next member. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._session.connected:
            self._sort()  # the latest claims: is another member live?
        try:
            await self._session.leave(self._unacknowledged)
        finally:
            self._buffers.clear()
            self._backlog.clear()
            self._handed.clear()

    def _unacknowledged(self) -> Held:
        self._sort()  # what the server sent before it took the unsubscribe
        held, self._backlog = self._backlog + self._buffered(), []
        number = self._session.number
        held += [
            (handed.topic, item)
            for handed in self._handed.values()
            for item in handed.items
            if item.connection == number
        ]
        return held

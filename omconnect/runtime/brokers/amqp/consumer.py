"""``AmqpConsumer``: a competing consumer of its group's queue, acknowledging per batch."""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
import time
from collections import deque
from collections.abc import Sequence
from typing import Any, NamedTuple

import aiormq.abc
from aio_pika.abc import AbstractChannel
from aiormq import spec
from aiormq.abc import DeliveredMessage

from omconnect.runtime.brokers.amqp._connection import (
    CLIENT_ERRORS,
    AmqpConnection,
    broker_errors,
    close_channel,
    describe,
)
from omconnect.runtime.brokers.amqp._delivery_tags import DeliveryTags
from omconnect.runtime.brokers.amqp._message_codec import decode_rows
from omconnect.runtime.brokers.amqp._pattern_binding import binding_key
from omconnect.runtime.brokers.amqp._topology import Topology
from omconnect.runtime.brokers.base import (
    BrokerError,
    ConsumedBatch,
    QueueConsumer,
    RebalanceListener,
)

log = logging.getLogger("omconnect.broker.amqp")

# Once messages arrive, a poll gathers what arrives with them until the flow pauses this long.
QUIET = 0.005
# How often a poll says the server is away while it stays away.
OUTAGE_WARNING_INTERVAL = 10.0


class _Delivery(NamedTuple):
    tag: int
    topic: str
    body: bytes
    properties: spec.Basic.Properties


class AmqpConsumer(QueueConsumer):
    """A member of ``group``: one of the competing consumers of the group's queue.

    The queue (durable, quorum or classic) is declared and bound to the subscribed topics'
    exchanges when the consumer is made, so it holds everything published after that; a
    ``pattern`` binds it to the all-topics exchange with the narrowest key that covers the
    pattern (``_pattern_binding``), and messages of topics the pattern does not match are
    acknowledged unread. Every member of a group reads the same queue: RabbitMQ gives each
    message to one of them. The members do not split topics, so every member owns every
    subscribed topic (partition 0): ``on_partitions_assigned`` is called for the explicit
    topics on the first poll and for a pattern's topics before their first message is
    returned, and nothing is ever revoked.

    A poll receives through a consumer registered for that poll only, with a prefetch of what
    the poll still wants (bounded by ``prefetch`` less what this member holds
    unacknowledged), and cancels it before returning: a member holds no more than its polls
    asked for, so the members of a group share the queue by what they poll rather than by
    who subscribed first. Messages that arrive after a poll stopped waiting, and those of
    paused topics, wait in the member for its next poll (still unacknowledged, counted
    against ``prefetch``).

    Offsets are this consumer's own sequence in the order it returns messages, starting at the
    time the consumer was made (nanoseconds since the epoch): a queue has no offsets, and a
    sequence from 0 would repeat the offsets of an earlier run of the same pipeline, over
    which a sink that names its output by offset (the file sinks) would write.
    ``ack`` acknowledges exactly the deliveries of the batches given; what this member holds
    unacknowledged when it closes, or when its connection dies, goes back to the queue and to
    another member (or to this one after it reconnected), marked redelivered. While the
    server is away a poll logs a warning and returns nothing after its timeout; the next poll
    after it is back opens a new channel.
    """

    scheme = "amqp"

    def __init__(
        self,
        connection: AmqpConnection,
        topology: Topology,
        group: str,
        topics: Sequence[str] = (),
        *,
        pattern: str | None = None,
        listener: RebalanceListener | None = None,
    ) -> None:
        super().__init__(listener)
        self.group = group
        self.topics = tuple(topics)
        self.pattern = pattern
        self._connection = connection
        self._topology = topology
        self._names = connection.names
        self._queue = self._names.queue(group)
        self._binding = binding_key(pattern) if pattern is not None else None
        self._matcher = re.compile(pattern) if pattern is not None else None
        self._prefetch = connection.options.prefetch
        self._channel: AbstractChannel | None = None
        self._raw: aiormq.abc.AbstractChannel | None = None
        self._buffer: deque[_Delivery] = deque()
        self._tags = DeliveryTags()
        self._tokens: dict[int, list[int]] = {}
        self._token_numbers = itertools.count()
        self._sequence = time.time_ns()
        self._announced = False
        self._arrived = asyncio.Event()
        self._room = 0
        self._ignored: set[str] = set()
        self._warned = -OUTAGE_WARNING_INTERVAL
        self._closed = False

    async def subscribe(self) -> None:
        """Declare the group's queue and its bindings and open this member's channel.

        Raises:
            BrokerError: the server cannot be reached or refused.
        """
        await self._open()

    async def _open(self) -> None:
        raw = self._raw
        if self._channel is not None and not self._channel.is_closed and raw and not raw.is_closed:
            return
        if self._channel is not None:
            held = len(self._tags)
            log.warning(
                "consumer group %r: its channel closed; the %d messages it held "
                "unacknowledged are delivered again",
                self.group,
                held,
            )
            self._buffer.clear()
            self._tags = DeliveryTags()
            self._tokens.clear()
            self._channel = self._raw = None
        queue = await self._topology.ensure_queue(self.group)
        for topic in self.topics:
            await self._topology.bind_topic(queue, topic)
        if self._binding is not None:
            await self._topology.bind_pattern(queue, self._binding)
        channel = await self._connection.channel()
        self._raw = await channel.get_underlay_channel()
        self._channel = channel

    async def poll(self, max_messages: int, timeout: float) -> list[ConsumedBatch]:
        """Up to ``max_messages`` messages of unpaused topics, waiting at most ``timeout``
        seconds for the first and a moment for those that arrive with it."""
        if self._closed:
            raise BrokerError("the consumer is closed")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            await self._open()
            if not self._announced:
                self._announced = True
                await self._assign(set(self.topics))
            if self._ready() < max_messages and timeout > 0:
                await self._receive(max_messages, deadline)
        except BrokerError as exc:
            if time.monotonic() - self._warned >= OUTAGE_WARNING_INTERVAL:
                self._warned = time.monotonic()
                log.warning("consumer group %r: %s", self.group, exc)
            await asyncio.sleep(max(0.0, min(deadline - loop.time(), 1.0)))
        return await self._take(max_messages)

    async def _receive(self, max_messages: int, deadline: float) -> None:
        """Register a consumer for what the poll still wants, wait for it, cancel it."""
        loop = asyncio.get_running_loop()
        room = min(max_messages - self._ready(), self._prefetch - len(self._tags))
        if room <= 0 or (not self._matcher and set(self.topics) <= self._paused):
            await asyncio.sleep(max(0.0, deadline - loop.time()))
            return
        raw = self._raw
        assert raw is not None, "polls open the channel first"
        doing = f"reading the queue {self._queue!r}"
        async with broker_errors(self._connection, doing):
            await raw.basic_qos(prefetch_count=room)
            self._room = room
            self._arrived.clear()
            consuming = await raw.basic_consume(self._queue, self._on_delivery, no_ack=False)
            assert consuming.consumer_tag is not None, "the server names every consumer"
            try:
                while self._ready() < max_messages and self._room > 0:
                    left = deadline - loop.time()
                    if left <= 0:
                        break
                    self._arrived.clear()
                    try:
                        async with asyncio.timeout(min(left, QUIET) if self._ready() else left):
                            await self._arrived.wait()
                    except TimeoutError:
                        if self._ready():
                            break
            finally:
                if not raw.is_closed:
                    await raw.basic_cancel(consuming.consumer_tag)

    async def _on_delivery(self, message: DeliveredMessage) -> None:
        if message.channel is not self._raw:
            return  # of a channel given up: the server delivers it again
        delivery = message.delivery
        assert isinstance(delivery, spec.Basic.Deliver) and delivery.delivery_tag is not None
        tag = delivery.delivery_tag
        self._tags.add(tag)
        self._room -= 1
        topic = self._topic_of(delivery)
        if topic is None:
            await self._acknowledge([tag])
            return
        self._buffer.append(_Delivery(tag, topic, message.body, message.header.properties))
        self._arrived.set()

    def _topic_of(self, delivery: spec.Basic.Deliver) -> str | None:
        """The topic of a delivered message, or None for one this member does not read: a
        topic the pattern's binding lets through but the pattern does not match, or one an
        older binding of the queue still brings."""
        exchange = delivery.exchange or ""
        topic = self._names.topic_of(exchange) if exchange else (delivery.routing_key or "")
        if topic in self.topics or (self._matcher and self._matcher.fullmatch(topic)):
            return topic
        if not self._matcher and topic not in self._ignored:
            self._ignored.add(topic)
            log.warning(
                "consumer group %r: its queue %r receives messages of %r, which it does not "
                "subscribe to (an older binding?): they are acknowledged unread; unbind the "
                "queue from that exchange to stop them",
                self.group,
                self._queue,
                exchange or topic,
            )
        return None

    def _ready(self) -> int:
        return sum(d.topic not in self._paused for d in self._buffer)

    async def _take(self, max_messages: int) -> list[ConsumedBatch]:
        by_topic: dict[str, list[_Delivery]] = {}
        kept: deque[_Delivery] = deque()
        taken = 0
        for delivery in self._buffer:
            if taken < max_messages and delivery.topic not in self._paused:
                by_topic.setdefault(delivery.topic, []).append(delivery)
                taken += 1
            else:
                kept.append(delivery)
        self._buffer = kept
        await self._assign(by_topic.keys())
        batches = []
        for topic, deliveries in by_topic.items():
            token = next(self._token_numbers)
            self._tokens[token] = [d.tag for d in deliveries]
            rows = decode_rows([(d.body, d.properties) for d in deliveries], self._sequence)
            self._sequence += len(deliveries)
            batches.append(ConsumedBatch(topic, 0, rows, ack_token=token))
        return batches

    async def ack(self, tokens: Sequence[Any]) -> None:
        """Acknowledge the messages of the batches whose ``ack_token`` is given; returns once
        RabbitMQ has processed the acknowledgements (a connection lost afterwards does not
        bring those messages back). Tokens of batches read before this member's channel was
        lost are skipped: those messages are delivered again anyway."""
        tags = [tag for token in tokens for tag in self._tokens.pop(token, ())]
        if tags:
            await self._acknowledge(tags, confirm=True)

    async def _acknowledge(self, tags: list[int], confirm: bool = False) -> None:
        through, alone = self._tags.acknowledge(tags)
        raw = self._raw
        if raw is None:
            return  # closed: the server has put them back in the queue
        try:
            if through is not None:
                await raw.basic_ack(through, multiple=True)
            for tag in alone:
                await raw.basic_ack(tag)
            if confirm:
                # A channel's frames are processed in order: the reply to a request sent
                # after the acknowledgements comes once they were.
                await raw.queue_declare(self._queue, passive=True)
        except CLIENT_ERRORS as exc:
            log.warning(
                "consumer group %r: cannot acknowledge %d messages (%s); they may be "
                "delivered again",
                self.group,
                len(tags),
                describe(exc),
            )

    async def close(self) -> None:
        """Leave the queue: what this member holds unacknowledged goes back to it."""
        self._closed = True
        channel, self._channel, self._raw = self._channel, None, None
        self._buffer.clear()
        self._tokens.clear()
        if channel is not None:
            await close_channel(channel)

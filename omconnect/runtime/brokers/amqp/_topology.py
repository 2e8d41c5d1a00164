"""Declaring what the driver uses on the server: a topic's exchange (bound to the all-topics
exchange), a group's queue and its bindings. A name new to the server is written in the
catalog before it is declared, so whatever the driver declared is listed (a crash in
between lists a topic without an exchange, which its next use declares); an exchange or
queue another client made first is used, not listed.

Declarations are idempotent, so a process declares each topic once, and a group's queue and
bindings each time a consumer (re)opens: a queue deleted meanwhile comes back, empty.
Whether a name is new is asked with a passive declare on a channel of its own, since the
server closes a channel whose passive declare finds nothing.
"""

from __future__ import annotations

import asyncio

import aiormq.exceptions
from aio_pika import ExchangeType
from aio_pika.abc import AbstractChannel

from omconnect.runtime.brokers.amqp._catalog import GROUP, TOPIC, Catalog
from omconnect.runtime.brokers.amqp._connection import AmqpConnection, broker_errors

# Where topics' exchanges forward every message, keyed by topic name: pattern subscriptions
# bind here (``_pattern_binding``), so topics created after them reach them too.
ALL_TOPICS_TYPE = ExchangeType.TOPIC


class Topology:
    """Declares exchanges, queues and bindings through one channel of the broker's."""

    def __init__(self, connection: AmqpConnection, catalog: Catalog) -> None:
        self._connection = connection
        self._catalog = catalog
        self._names = connection.names
        self._channel: AbstractChannel | None = None
        self._probe: AbstractChannel | None = None
        self._topics: set[str] = set()
        self._groups: set[str] = set()
        self._all_topics = False
        self._lock = asyncio.Lock()

    async def ensure_topic(self, topic: str) -> str:
        """Declare ``topic``'s exchange (durable, fanout) bound to the all-topics exchange,
        once per process; its name.

        Raises:
            ValueError: a topic name RabbitMQ cannot carry.
            BrokerError: the server cannot be reached or refused (an exchange of that name
                with another type, missing permissions).
        """
        exchange = self._names.exchange(topic)
        if topic in self._topics:
            return exchange
        async with self._lock, broker_errors(self._connection, f"declaring topic {topic!r}"):
            if topic not in self._topics:
                if not await self._exists(exchange=exchange):
                    await self._catalog.record(TOPIC, topic)
                channel = await self._admin()
                await channel.declare_exchange(exchange, ExchangeType.FANOUT, durable=True)
                raw = await channel.get_underlay_channel()
                await raw.exchange_bind(
                    destination=await self._all_topics_exchange(channel), source=exchange
                )
                self._topics.add(topic)
        return exchange

    async def ensure_queue(self, group: str) -> str:
        """Declare ``group``'s queue (durable, of the broker's queue type); its name.

        Raises:
            ValueError: a group name RabbitMQ cannot carry.
            BrokerError: the server cannot be reached or refused (a queue of that name of
                another type, missing permissions).
        """
        queue = self._names.queue(group)
        doing = f"declaring the queue of consumer group {group!r}"
        async with self._lock, broker_errors(self._connection, doing):
            if group not in self._groups:
                if not await self._exists(queue=queue):
                    await self._catalog.record(GROUP, group)
                self._groups.add(group)
            channel = await self._admin()
            await channel.declare_queue(
                queue, durable=True, arguments={"x-queue-type": self._connection.queue_type}
            )
        return queue

    async def bind_topic(self, queue: str, topic: str) -> None:
        """Bind ``queue`` to ``topic``'s exchange (declaring the topic if need be)."""
        exchange = await self.ensure_topic(topic)
        async with self._lock, broker_errors(self._connection, f"subscribing to topic {topic!r}"):
            raw = await (await self._admin()).get_underlay_channel()
            await raw.queue_bind(queue, exchange)

    async def bind_pattern(self, queue: str, key: str) -> None:
        """Bind ``queue`` to the all-topics exchange with the routing ``key``."""
        async with self._lock, broker_errors(self._connection, f"subscribing to {key!r}"):
            channel = await self._admin()
            exchange = await self._all_topics_exchange(channel)
            await (await channel.get_underlay_channel()).queue_bind(queue, exchange, key)

    def forget(self, topic: str) -> None:
        """Declare ``topic`` again on next use (its exchange is gone)."""
        self._topics.discard(topic)
        self._all_topics = False

    async def _all_topics_exchange(self, channel: AbstractChannel) -> str:
        name = self._names.all_topics
        if not self._all_topics:
            await channel.declare_exchange(name, ALL_TOPICS_TYPE, durable=True)
            self._all_topics = True
        return name

    async def _admin(self) -> AbstractChannel:
        if self._channel is None or self._channel.is_closed:
            self._channel = await self._connection.channel()
        return self._channel

    async def _exists(self, *, exchange: str | None = None, queue: str | None = None) -> bool:
        if self._probe is None or self._probe.is_closed:
            self._probe = await self._connection.channel()
        try:
            if exchange is not None:
                await self._probe.get_exchange(exchange, ensure=True)
            elif queue is not None:
                await self._probe.get_queue(queue, ensure=True)
        except aiormq.exceptions.ChannelNotFoundEntity:
            return False
        return True

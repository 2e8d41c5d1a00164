"""``AmqpBroker``: the OpenMessaging access point of a RabbitMQ vhost."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from omconnect.runtime.brokers.amqp._catalog import TOPIC, Catalog
from omconnect.runtime.brokers.amqp._connection import AmqpConnection
from omconnect.runtime.brokers.amqp._options import AmqpOptions
from omconnect.runtime.brokers.amqp._topology import Topology
from omconnect.runtime.brokers.amqp.consumer import AmqpConsumer
from omconnect.runtime.brokers.amqp.producer import AmqpProducer
from omconnect.runtime.brokers.base import (
    QUEUE_CAPABILITIES,
    ConsumerStart,
    OwningBroker,
    RebalanceListener,
    TopicInfo,
    TopicSettings,
)

log = logging.getLogger("omconnect.broker.amqp")


class AmqpBroker(OwningBroker):
    """An access point to a RabbitMQ vhost; see the package docstring for how topics,
    groups and acknowledgements map onto exchanges and queues.

    Opening does no I/O: the first producer send, consumer or admin call connects, within
    ``connect_timeout`` seconds or a ``BrokerError`` that says what to check. Opened with
    ``create`` false (read-only commands), ``list_topics`` declares nothing.
    """

    # No transactions: AMQP 0-9-1 transactions (tx.select) cannot store source positions
    # with the messages, are atomic only for messages routed to a single queue, and exclude
    # publisher confirms on their channel: nothing exactly-once can be built on them.
    capabilities = QUEUE_CAPABILITIES

    def __init__(self, options: AmqpOptions, url: str, create: bool = True) -> None:
        super().__init__(url)
        self.options = options
        self._connection = AmqpConnection(options)
        self._catalog = Catalog(self._connection, create)
        self._topology = Topology(self._connection, self._catalog)

    async def producer(self) -> AmqpProducer:
        return self._owned(AmqpProducer(self._connection, self._topology))

    async def consumer(
        self,
        group: str,
        topics: Sequence[str] = (),
        *,
        pattern: str | None = None,
        listener: RebalanceListener | None = None,
        start: ConsumerStart = "earliest",
    ) -> AmqpConsumer:
        """A member of ``group`` reading ``topics`` and every topic whose whole name matches
        the regular expression ``pattern`` (topics created later included).

        The group's queue is declared and bound before this returns, so it keeps what is
        published from now on; a queue that exists already holds what arrived since the
        group last read it, whatever ``start`` says (a queue has no positions to start at).

        Raises:
            ValueError: a group or topic name RabbitMQ cannot carry, or a bad ``pattern``.
            BrokerError: the server cannot be reached or refused.
        """
        del start
        consumer = self._owned(
            AmqpConsumer(
                self._connection, self._topology, group, topics, pattern=pattern, listener=listener
            )
        )
        await consumer.subscribe()
        return consumer

    async def create_topic(self, name: str, settings: TopicSettings | None = None) -> None:
        """Declare ``name``'s exchange (durable, fanout) if it does not exist. An amqp://
        topic has one partition and keeps no messages (the groups' queues do), so partitions,
        retention and compaction are not honoured; a warning says so.

        Raises:
            ValueError: a name RabbitMQ cannot carry, or no partitions.
            BrokerError: the server refused (an exchange of that name with another type), or
                cannot be reached.
        """
        settings = settings or TopicSettings()
        if settings.partitions < 1:
            raise ValueError(f"a topic has at least one partition, not {settings.partitions}")
        await self._topology.ensure_topic(name)
        unused = [
            text
            for text, asked in (
                (f"{settings.partitions} partitions", settings.partitions > 1),
                ("compaction", settings.compacted),
                ("retention", settings.retention_ms or settings.retention_bytes),
            )
            if asked
        ]
        if unused:
            log.warning(
                "topic %r: amqp:// topics have one partition and keep no messages; %s not honoured",
                name,
                ", ".join(unused),
            )

    async def list_topics(self) -> list[TopicInfo]:
        """The topics declared under the broker's prefix, as the catalog stream lists them
        (without stream queues: the topics this process declared). An exchange holds no
        messages, so ``messages`` is 0; each group's queue holds its own. Reading the stream
        appends a marker message to it (see ``_catalog``)."""
        names = (await self._catalog.read())[TOPIC]
        return [TopicInfo(name, 1, 0) for name in sorted(names)]

    async def _close_connection(self) -> None:
        await self._connection.close()

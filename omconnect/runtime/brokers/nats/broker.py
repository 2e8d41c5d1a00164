"""``NatsBroker``: the OpenMessaging access point of a NATS server with JetStream."""

from __future__ import annotations

from collections.abc import Sequence

from omconnect.runtime.brokers.base import (
    Capabilities,
    ConsumerStart,
    OwningBroker,
    RebalanceListener,
    TopicInfo,
    TopicSettings,
)
from omconnect.runtime.brokers.nats._catalog import TopicCatalog
from omconnect.runtime.brokers.nats._connection import NatsConnection
from omconnect.runtime.brokers.nats._options import NatsOptions
from omconnect.runtime.brokers.nats.consumer import NatsConsumer
from omconnect.runtime.brokers.nats.producer import NatsProducer


class NatsBroker(OwningBroker):
    """An access point to a NATS server (or cluster) with JetStream; see the package
    docstring for how topics, partitions, groups and offsets map onto it.

    Opening does no I/O: the first producer send, poll or admin call connects, within
    ``connect_timeout`` seconds or a ``BrokerError`` that says what to check.
    """

    # A log with partitions and groups (the defaults), retention; no transactions, no compaction.
    capabilities = Capabilities(retention=True)

    def __init__(self, options: NatsOptions, url: str) -> None:
        super().__init__(url)
        self.options = options
        self._connection = NatsConnection(options)
        self._catalog = TopicCatalog(self._connection)

    async def producer(self) -> NatsProducer:
        return self._owned(NatsProducer(self._connection, self._catalog))

    async def consumer(
        self,
        group: str,
        topics: Sequence[str] = (),
        *,
        pattern: str | None = None,
        listener: RebalanceListener | None = None,
        start: ConsumerStart = "earliest",
    ) -> NatsConsumer:
        """A member of ``group`` reading ``topics`` and every topic whose whole name matches
        the regular expression ``pattern`` (topics created later included). It joins the
        group on its first poll; ``start`` says where a partition without a committed offset
        begins: its first message, or its high-water."""
        return self._owned(
            NatsConsumer(
                self._connection,
                self._catalog,
                group,
                topics,
                pattern=pattern,
                listener=listener,
                start=start,
                session_timeout=self.options.session_timeout,
            )
        )

    async def create_topic(self, name: str, settings: TopicSettings | None = None) -> None:
        """Create ``name`` with ``settings`` (default: one partition, no retention): one
        stream per partition, with ``max_age`` and ``max_bytes`` (per partition, as Kafka's
        ``retention.bytes``) from the retention settings. An existing topic keeps the
        settings it was created with.

        Raises:
            ValueError: a name NATS cannot carry, no partitions, or a retention that is not
                positive.
            BrokerError: the server refused, or cannot be reached.
        """
        await self._catalog.ensure(name, settings or TopicSettings())

    async def list_topics(self) -> list[TopicInfo]:
        """Every topic of the namespace with its partitions and the messages its streams
        hold now (after retention)."""
        return await self._catalog.topic_infos()

    async def _close_connection(self) -> None:
        await self._connection.close()

"""``RedisBroker``: the OpenMessaging access point of a Redis server's streams."""

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
from omconnect.runtime.brokers.redis._catalog import TopicCatalog
from omconnect.runtime.brokers.redis._connection import RedisConnection
from omconnect.runtime.brokers.redis._options import RedisOptions
from omconnect.runtime.brokers.redis.consumer import RedisConsumer
from omconnect.runtime.brokers.redis.producer import RedisProducer


class RedisBroker(OwningBroker):
    """An access point to a Redis server (7.0 or newer); see the package docstring for how
    topics, partitions, groups and offsets map onto streams.

    Opening does no I/O: the first send, poll or admin call connects, within
    ``connect_timeout`` seconds or a ``BrokerError`` that says what to check.
    """

    # A log with partitions and groups (the defaults), retention; no transactions, no compaction.
    capabilities = Capabilities(retention=True)

    def __init__(self, options: RedisOptions, url: str) -> None:
        super().__init__(url)
        self.options = options
        self._connection = RedisConnection(options)
        self._catalog = TopicCatalog(self._connection)

    async def producer(self) -> RedisProducer:
        return self._owned(RedisProducer(self._connection, self._catalog))

    async def consumer(
        self,
        group: str,
        topics: Sequence[str] = (),
        *,
        pattern: str | None = None,
        listener: RebalanceListener | None = None,
        start: ConsumerStart = "earliest",
    ) -> RedisConsumer:
        """A member of ``group`` reading ``topics`` and every topic whose whole name matches
        the regular expression ``pattern`` (topics created later included). It joins the
        group on its first poll; ``start`` says where a partition the group never read
        begins: its first message, or its high-water."""
        return self._owned(
            RedisConsumer(
                self._connection,
                self._catalog,
                group,
                topics,
                pattern=pattern,
                listener=listener,
                start=start,
                claim_idle=self.options.claim_idle,
            )
        )

    async def create_topic(self, name: str, settings: TopicSettings | None = None) -> None:
        """Create ``name`` with ``settings`` (default: one partition, no retention). An
        existing topic keeps the settings it was created with; ``compacted`` is stored but
        not honoured (a warning says so).

        Raises:
            ValueError: a name or settings no topic can have.
            BrokerError: the server refused, or cannot be reached.
        """
        await self._catalog.ensure(name, settings or TopicSettings())

    async def list_topics(self) -> list[TopicInfo]:
        """Every topic under the broker's prefix, with its partitions and the messages its
        streams hold now (``XLEN``, after retention)."""
        return await self._catalog.topic_infos()

    async def _close_connection(self) -> None:
        await self._connection.close()

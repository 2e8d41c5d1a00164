"""``KafkaBroker``: the access point of one Kafka(-protocol) cluster."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from confluent_kafka import Message

from omconnect.runtime.brokers.base import (
    Broker,
    Capabilities,
    ConsumerStart,
    RebalanceListener,
    TopicInfo,
    TopicSettings,
    UnsupportedOperation,
)
from omconnect.runtime.brokers.kafka import _positions
from omconnect.runtime.brokers.kafka._admin import KafkaAdmin, is_internal
from omconnect.runtime.brokers.kafka._errors import ConnectionProblems
from omconnect.runtime.brokers.kafka._librdkafka import BlockingCalls
from omconnect.runtime.brokers.kafka._log_reader import LogReader
from omconnect.runtime.brokers.kafka._options import KafkaOptions
from omconnect.runtime.brokers.kafka.consumer import KafkaConsumer
from omconnect.runtime.brokers.kafka.producer import KafkaProducer

_NO_TRANSACTIONS = (
    "this kafka:// broker has no transactions (transactions=false in its URL: the server does "
    "not hide aborted transactions from readers)"
)


class KafkaBroker(Broker):
    """An access point to the cluster at ``options.servers``; opening it does no I/O.

    Capabilities: a log with end offsets, partitions, consumer groups and transactions
    (unless the URL says ``transactions=false``: a server without complete ones).
    ``retention`` and ``compaction`` are not declared: topics are created with the
    ``retention.ms`` / ``retention.bytes`` / ``cleanup.policy=compact`` asked for, but when the
    server applies them is its business (Kafka trims and compacts closed segments only, on its
    own schedule; Tansu 0.6 stores the settings and applies neither).

    Args:
        options: the URL's options.
        url: the URL it was opened from (for display).
    """

    capabilities = Capabilities(transactions=True)  # and a log's (the defaults)

    def __init__(self, options: KafkaOptions, url: str) -> None:
        self.url = url
        self.options = options
        self.capabilities = replace(KafkaBroker.capabilities, transactions=options.transactions)
        self._problems = ConnectionProblems()
        self._calls = BlockingCalls(options.servers)
        self.admin = KafkaAdmin(options, self._problems, self._calls)
        self._committed_reader = LogReader(options, self._problems, committed_only=True)
        self._raw_reader = LogReader(options, self._problems, committed_only=False)
        self._clients: list[KafkaProducer | KafkaConsumer] = []
        self._timeout = options.request_timeout_ms / 1000
        self._closed = False

    async def producer(self) -> KafkaProducer:
        """An idempotent producer (transactional once it begins a transaction).

        Raises:
            BrokerError: no broker answers at the URL's servers.
        """
        await self.admin.check_reachable()
        producer = KafkaProducer(
            self.admin, self._calls, self._problems, transactions=self.capabilities.transactions
        )
        self._clients.append(producer)
        return producer

    async def consumer(
        self,
        group: str,
        topics: Sequence[str] = (),
        *,
        pattern: str | None = None,
        listener: RebalanceListener | None = None,
        start: ConsumerStart = "earliest",
    ) -> KafkaConsumer:
        """A member of ``group`` reading ``topics`` and every topic whose whole name matches
        ``pattern`` (topics created later included); it joins on its first poll.

        Raises:
            BrokerError: no broker answers at the URL's servers.
        """
        await self.admin.check_reachable()
        consumer = KafkaConsumer(
            self.admin,
            self._calls,
            self._problems,
            self._committed_reader,
            group,
            topics,
            pattern=pattern,
            listener=listener,
            start=start,
        )
        self._clients.append(consumer)
        return consumer

    async def create_topic(self, name: str, settings: TopicSettings | None = None) -> None:
        """Create ``name`` (default: one partition) with ``cleanup.policy`` compact or delete
        and the retention asked for; an existing topic keeps its settings.

        Raises:
            ValueError: an empty name, no partitions, or a retention that is not positive.
        """
        await self.admin.create_topic(name, settings or TopicSettings())

    async def topic_config(self, name: str) -> dict[str, str]:
        """What the broker holds for topic ``name`` (``cleanup.policy``, ``retention.ms``...)."""
        return await self.admin.topic_config(name)

    async def list_topics(self) -> list[TopicInfo]:
        """Every topic but the internal ones (``__`` names), with its partitions and the
        messages it holds: each partition's high-water minus its start."""
        counts = {t: n for t, n in (await self.admin.topics()).items() if not is_internal(t)}
        partitions = [(t, p) for t, n in counts.items() for p in range(n)]
        ranges = await self._calls.run(
            "counting messages", self._timeout + 1, self._raw_reader.high_waters, partitions
        )
        held = dict.fromkeys(counts, 0)
        for (topic, _), (low, high) in ranges.items():
            held[topic] += max(0, high - low)
        return [TopicInfo(t, counts[t], held[t]) for t in sorted(counts)]

    async def transaction_positions(self, namespace: str) -> dict[str, str]:
        """The positions committed under ``namespace`` by ``commit_transaction``: the newest
        committed record of each key of the namespace's positions topic.

        Raises:
            UnsupportedOperation: the URL says ``transactions=false``.
        """
        if not self.capabilities.transactions:
            raise UnsupportedOperation(_NO_TRANSACTIONS)
        topic = _positions.positions_topic(namespace)
        if topic not in await self.admin.topics():
            return {}
        found: dict[str, str] = {}

        def keep(message: Message) -> None:
            key, value = message.key(), message.value()
            if key is None:
                return
            if value is None:
                found.pop(key.decode(), None)
            else:
                found[key.decode()] = value.decode()

        await self._calls.run(
            f"reading the positions of {namespace!r}",
            self._timeout + 1,
            self._committed_reader.read_all,
            (topic, 0),
            keep,
        )
        return found

    async def close(self) -> None:
        """Close every producer and consumer made here, then the broker's own clients;
        idempotent. Every client is closed even when one fails; the first failure is raised
        at the end."""
        if self._closed:
            return
        self._closed = True
        failures: list[BaseException] = []
        for client in self._clients:
            try:
                await client.close()
            except Exception as error:  # the others still get closed
                failures.append(error)
        self._clients.clear()
        for reader in (self._committed_reader, self._raw_reader):
            try:
                await self._calls.run("closing", self._timeout + 1, reader.close)
            except Exception as error:
                failures.append(error)
        self._calls.close()
        if failures:
            raise failures[0]

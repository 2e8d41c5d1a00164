"""``KafkaProducer``: publishes message batches through an idempotent librdkafka producer."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from confluent_kafka import KafkaException

from omconnect.runtime.brokers.base import (
    BrokerError,
    Producer,
    SendResult,
    UnsupportedOperation,
)
from omconnect.runtime.brokers.kafka import _positions
from omconnect.runtime.brokers.kafka._admin import KafkaAdmin
from omconnect.runtime.brokers.kafka._delivery import Delivery, ProducerClient
from omconnect.runtime.brokers.kafka._errors import ConnectionProblems, broker_error
from omconnect.runtime.brokers.kafka._librdkafka import BlockingCalls, producer_config
from omconnect.runtime.brokers.key_partitioning import KeyPartitioner
from omconnect.schemas.message_batch import MessageBatch


class KafkaProducer(Producer):
    """Publishes batches; a send returns once every message of it is acknowledged by all
    in-sync replicas (``acks=all``), so its ``SendResult``s are offsets the broker holds.

    Partitioning is the embedded broker's, which is Kafka's default (the Java client's
    murmur2 of the key, ``key_partitioning``), computed for the whole batch with numpy:
    a key lands on the partition Java clients put it on. Messages without a key of one send
    share a partition, rotating per send. A send to a topic that does not exist creates it
    with one partition.

    Order: the producer is idempotent, with at most five requests in flight per connection,
    so librdkafka's retries neither reorder nor duplicate a partition's messages; the rows of
    concurrent sends are queued one send at a time (one enqueue thread), so each send's
    messages of a partition are contiguous and sends are stored in call order.

    Transactions: the first ``begin_transaction`` starts a second, transactional librdkafka
    producer (a fresh ``transactional.id``); sends between begin and commit go through it,
    other sends through the idempotent one. ``commit_transaction`` writes the positions to the
    namespace's compacted positions topic inside the same transaction, then commits.
    """

    def __init__(
        self,
        admin: KafkaAdmin,
        calls: BlockingCalls,
        problems: ConnectionProblems,
        *,
        transactions: bool = True,
    ) -> None:
        self._admin = admin
        self._transactions = transactions
        self._calls = calls
        self._problems = problems
        self._options = admin.options
        self._plain: ProducerClient | None = None
        self._transactional: ProducerClient | None = None
        self._in_transaction = False
        self._enqueue = ThreadPoolExecutor(max_workers=1, thread_name_prefix="omconnect-kafka-send")
        self._ordering = asyncio.Lock()
        self._partitioner = KeyPartitioner()
        self._known_positions_topics: set[str] = set()
        self._timeout = self._options.request_timeout_ms / 1000
        self._closed = False

    async def send(
        self, topic: str, messages: MessageBatch, partition: int | None = None
    ) -> list[SendResult]:
        """Publish ``messages`` to ``topic``; returns once all are acknowledged.

        Raises:
            ValueError: ``partition`` does not exist in ``topic``.
            BrokerError: a message was not acknowledged within ``delivery_timeout_ms``, or
                the broker refused it; nothing after it in its partition was stored.
        """
        if len(messages) == 0:
            return []
        if self._closed:
            raise BrokerError("kafka: the producer is closed")
        async with self._ordering:  # queued in call order, whatever the awaits in between
            count = await self._admin.partition_count(topic)
            if partition is not None and not 0 <= partition < count:
                count = await self._admin.refresh_partition_count(topic) or count
                if not 0 <= partition < count:
                    raise ValueError(f"partition {partition} does not exist: the topic has {count}")
            targets = self._targets(messages, count, partition)
            client = self._transactional if self._in_transaction else self._plain_client()
            assert client is not None
            report, queued = self._submit(client, topic, messages, targets)
        return await self._delivered(topic, report, queued)

    def _targets(self, messages: MessageBatch, count: int, partition: int | None) -> np.ndarray:
        if partition is not None:
            return np.full(len(messages), partition, dtype=np.int64)
        return self._partitioner.targets(messages, count)

    def _plain_client(self) -> ProducerClient:
        if self._plain is None:
            self._plain = ProducerClient(producer_config(self._options, self._problems))
        return self._plain

    def _submit(
        self, client: ProducerClient, topic: str, messages: MessageBatch, targets: np.ndarray
    ) -> tuple[Delivery, asyncio.Future[None]]:
        """Hand ``messages`` to the enqueue thread (in call order); their delivery report
        and the future of their queueing."""
        loop = asyncio.get_running_loop()
        report = Delivery(targets, loop)
        queued = loop.run_in_executor(
            self._enqueue, client.enqueue, topic, messages, targets, report
        )
        return report, queued

    async def _delivered(
        self, topic: str, report: Delivery, queued: asyncio.Future[None]
    ) -> list[SendResult]:
        """Wait for every delivery report of a send; where its messages landed."""
        await queued
        wait = (self._options.delivery_timeout_ms + self._options.request_timeout_ms) / 1000
        try:
            async with asyncio.timeout(wait):
                await report.done
        except TimeoutError:
            raise BrokerError(
                f"kafka: sending to {topic!r} got no acknowledgement within {wait:g} s; check "
                f"that the broker at {self._options.servers} is up"
            ) from None
        if report.error is not None:
            raise broker_error(f"sending to topic {topic!r}", KafkaException(report.error))
        landed = report.landed()
        return [SendResult(topic, p, *landed[p]) for p in sorted(landed)]

    async def flush(self) -> None:
        """Wait until every message sent so far is acknowledged."""
        for client in (self._plain, self._transactional):
            if client is not None:
                await self._calls.run("flushing", self._timeout + 1, client.flush, self._timeout)

    async def begin_transaction(self) -> None:
        """Start a Kafka transaction: what is sent until the commit stays invisible to
        consumers (they read committed messages only).

        Raises:
            BrokerError: a transaction is open already, or the broker refused to start one.
            UnsupportedOperation: the URL says ``transactions=false``.
        """
        if not self._transactions:
            raise UnsupportedOperation(
                "this kafka:// broker has no transactions (transactions=false in its URL)"
            )
        if self._in_transaction:
            raise BrokerError("a transaction is open already: commit or abort it first")
        if self._transactional is None:
            if self._plain is not None:  # its sends are stored before the transaction's
                await self._calls.run(
                    "flushing", self._timeout + 1, self._plain.flush, self._timeout
                )
            config = producer_config(self._options, self._problems, f"omconnect-{uuid.uuid4().hex}")
            client = ProducerClient(config)
            try:
                await self._calls.run(
                    "starting transactions",
                    self._timeout + 1,
                    client.producer.init_transactions,
                    self._timeout,
                )
            except KafkaException as error:
                client.close(0)
                raise broker_error("starting transactions", error) from None
            self._transactional = client
        try:
            self._transactional.producer.begin_transaction()
        except KafkaException as error:
            raise broker_error("beginning a transaction", error) from None
        self._in_transaction = True

    async def commit_transaction(
        self, namespace: str | None = None, positions: Mapping[str, str] | None = None
    ) -> None:
        """Make the transaction's messages visible and store ``positions`` under
        ``namespace``, in one Kafka transaction; durable when it returns.

        Raises:
            ValueError: ``positions`` without a ``namespace``.
            BrokerError: no transaction is open, or the commit failed (then the transaction
                was aborted: nothing of it is visible).
        """
        if positions and namespace is None:
            raise ValueError("commit_transaction needs a namespace to store positions under")
        client = self._transactional
        if not self._in_transaction or client is None:
            raise BrokerError("no transaction is open: call begin_transaction first")
        try:
            if namespace is not None and positions:
                await self._store_positions(client, namespace, positions)
            await self._calls.run(
                "committing a transaction",
                self._timeout + 1,
                client.producer.commit_transaction,
                self._timeout,
            )
        except (KafkaException, BrokerError) as error:
            await self._abort_after_failure()
            if isinstance(error, BrokerError):
                raise
            raise broker_error("committing a transaction", error) from None
        finally:
            self._in_transaction = False

    async def _store_positions(
        self, client: ProducerClient, namespace: str, positions: Mapping[str, str]
    ) -> None:
        topic = _positions.positions_topic(namespace)
        if topic not in self._known_positions_topics:
            await self._admin.create_topic(topic, _positions.SETTINGS)
            self._known_positions_topics.add(topic)
        batch = MessageBatch.build(
            values=[offset.encode() for offset in positions.values()],
            keys=[key.encode() for key in positions],
        )
        targets = np.zeros(len(batch), dtype=np.int64)
        async with self._ordering:
            report, queued = self._submit(client, topic, batch, targets)
        await self._delivered(topic, report, queued)

    async def abort_transaction(self) -> None:
        """Drop every send of the open transaction (none open: nothing happens)."""
        client = self._transactional
        if not self._in_transaction or client is None:
            return
        self._in_transaction = False
        try:
            await self._calls.run(
                "aborting a transaction",
                self._timeout + 1,
                client.producer.abort_transaction,
                self._timeout,
            )
        except KafkaException as error:
            self._drop_transactional()
            raise broker_error("aborting a transaction", error) from None

    async def _abort_after_failure(self) -> None:
        client = self._transactional
        if client is None:
            return
        try:
            await self._calls.run(
                "aborting a transaction",
                self._timeout + 1,
                client.producer.abort_transaction,
                self._timeout,
            )
        except (KafkaException, BrokerError):
            # A fatal state (fenced, timed out for good): the next begin starts a new client.
            self._drop_transactional()

    def _drop_transactional(self) -> None:
        client, self._transactional = self._transactional, None
        if client is not None:
            client.close(0)

    async def close(self) -> None:
        """Abort an open transaction, wait for what was sent (bounded) and release the
        clients."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._in_transaction:
                await self._abort_after_failure()
        finally:
            for client in (self._plain, self._transactional):
                if client is not None:
                    await self._calls.run(
                        "closing a producer", self._timeout + 2, client.close, self._timeout
                    )
            self._plain = self._transactional = None
            self._enqueue.shutdown(wait=False)

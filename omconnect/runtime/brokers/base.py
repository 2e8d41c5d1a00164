"""The broker driver contract (v2): an OpenMessaging access point with a producer and a consumer.

Every driver (embedded, kafka, nats, amqp, redis, mqtt) implements these classes and is chosen
by URL scheme (``embedded://path``, ``kafka://host:9092``, also ``oms:kafka://...``). All
methods are coroutines on the worker's event loop; drivers with blocking clients run them in
threads.

Brokers differ; each driver declares what it offers in ``Broker.capabilities`` and the runtime
(and the contract tests) only rely on what is declared:

* a **log** (Kafka, the embedded broker, Redis Streams, NATS JetStream) numbers messages per
  topic partition; a consumer commits "the next offset to read" per partition, can ``seek`` and
  knows the ``end_offsets`` (the high-water);
* a **queue** (RabbitMQ, MQTT) hands out messages with an opaque ``ack_token``; the consumer
  acknowledges them with ``ack`` once they are processed, and unacknowledged messages are
  redelivered after the consumer dies. Message offsets are then only a per-consumer sequence,
  good for ordering within one consumer, not for seeking;
* **transactions**: a producer can ``begin_transaction``, send, store source positions inside
  the transaction and ``commit_transaction`` (all visible, atomically) or ``abort_transaction``
  (nothing visible); consumers only ever see committed messages;
* **partitions**: a topic has several partitions, keyed messages of one key stay in one, and the
  members of a consumer group split them (range assignment), with rebalance callbacks.

Order: messages sent to one partition through one producer are stored in send order; a send
that fails must not be retried behind later sends (the runtime rewinds the source instead).

What drivers share of implementing the contract is here too: ``QUEUE_CAPABILITIES`` and
``QueueConsumer`` for the queue brokers, ``OwningBroker`` for closing what a broker made.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeVar

from omconnect.schemas.message_batch import MessageBatch
from omconnect.schemas.record import RecordBatch

TopicPartition = tuple[str, int]


class BrokerError(Exception):
    """A broker operation failed."""


class RebalanceError(BrokerError):
    """The consumer's group moved on: it lost (some of) its partitions. Offsets of partitions
    it no longer owns were not committed; the runtime rejoins and reads from the committed
    positions."""


class CommitFencedError(RebalanceError):
    """A commit came from a stale member (an older generation of the group) and was refused,
    as Kafka refuses a zombie's commit."""


class BrokerNotFoundError(BrokerError):
    """Opened with ``create=False`` (a read-only command), the broker does not exist: no
    embedded log in that directory. Nothing was created."""


class UnsupportedOperation(BrokerError):
    """The driver does not offer this (see ``Broker.capabilities``)."""


@dataclass(frozen=True)
class Capabilities:
    """What a driver offers. The runtime and the contract tests rely only on what is true.

    Attributes:
        log: messages have offsets per partition; ``commit``, ``committed`` and ``seek`` work.
        end_offsets: ``end_offsets`` tells the high-water (``--once`` waits for it); without
            it ``--once`` stops after the sink was idle once the source finished.
        acks: consumed batches carry an ``ack_token`` and ``ack`` must be called once they
            are processed (queue brokers); unacknowledged messages are redelivered.
        transactions: the producer's ``begin/commit/abort_transaction`` and
            ``Broker.transaction_positions`` work; consumers read committed messages only.
        partitions: topics may have several partitions and group members split them.
        groups: members of one group share the work (partitions or competing consumers);
            when false, every consumer reads everything.
        retention: ``TopicSettings.retention_ms`` / ``retention_bytes`` are enforced.
        compaction: ``TopicSettings.compacted`` is honoured by the broker.
    """

    log: bool = True
    end_offsets: bool = True
    acks: bool = False
    transactions: bool = False
    partitions: bool = True
    groups: bool = True
    retention: bool = False
    compaction: bool = False


QUEUE_CAPABILITIES = Capabilities(log=False, end_offsets=False, acks=True, partitions=False)
"""What a queue broker offers (RabbitMQ, MQTT): acknowledgements instead of offsets, one
partition per topic, and groups of competing consumers."""


@dataclass(frozen=True)
class TopicSettings:
    """How a topic is created. A driver stores what it can and logs a warning for what it
    cannot honour (``Capabilities.compaction`` / ``retention`` say which)."""

    partitions: int = 1
    compacted: bool = False
    retention_ms: int | None = None
    retention_bytes: int | None = None


@dataclass(frozen=True)
class SendResult:
    """The broker acknowledged ``count`` messages of ``topic`` partition ``partition``,
    numbered from ``first_offset``."""

    topic: str
    partition: int
    first_offset: int
    count: int


@dataclass(frozen=True)
class ConsumedBatch:
    """Messages read from one topic partition, with their offsets in ``messages.offsets``.

    ``ack_token`` is set by queue drivers (``Capabilities.acks``): pass it to
    ``Consumer.ack`` once every message of the batch is processed. ``records`` is set by the
    broker of a pipeline without one (``broker: none``, ``brokers/direct.py``): the rows as
    the source gave them, one per message; the message bodies are then empty.
    """

    topic: str
    partition: int
    messages: MessageBatch
    ack_token: Any = None
    records: RecordBatch | None = None

    @property
    def next_offset(self) -> int:
        """The offset to commit once every message of this batch is processed."""
        offsets = self.messages.offsets
        assert offsets is not None, "consumers always set message offsets"
        return int(offsets[len(self.messages) - 1].as_py()) + 1


@dataclass(frozen=True)
class TopicInfo:
    name: str
    partitions: int
    messages: int


class RebalanceListener(Protocol):
    """Told when the group gives this consumer partitions or takes them away.

    Both are awaited from inside ``Consumer.poll``, revocations first, before the poll returns
    messages of a new assignment. ``on_partitions_revoked`` is the last chance to flush and
    commit the revoked partitions: after it returns, another member may read them.
    """

    async def on_partitions_assigned(self, partitions: Set[TopicPartition]) -> None: ...

    async def on_partitions_revoked(self, partitions: Set[TopicPartition]) -> None: ...


class Producer(ABC):
    """Publishes message batches. ``send`` returns once the broker acknowledged the batch
    durably; callers pipeline by running several sends concurrently, and sends of one producer
    to one partition are stored in call order."""

    @abstractmethod
    async def send(
        self, topic: str, messages: MessageBatch, partition: int | None = None
    ) -> list[SendResult]:
        """Publish ``messages``; with ``partition`` None the driver partitions by key hash."""

    async def flush(self) -> None:  # noqa: B027 - drivers without client buffers need nothing
        """Wait until every send so far is acknowledged."""

    async def begin_transaction(self) -> None:
        """Start a transaction: sends until commit or abort are invisible to consumers."""
        raise UnsupportedOperation(f"{type(self).__name__} has no transactions")

    async def commit_transaction(
        self, namespace: str | None = None, positions: Mapping[str, str] | None = None
    ) -> None:
        """Make every send of the transaction visible and, in the same atomic step, store
        ``positions`` (partition id -> encoded offset, both opaque text) under ``namespace``;
        ``Broker.transaction_positions(namespace)`` reads them back."""
        raise UnsupportedOperation(f"{type(self).__name__} has no transactions")

    async def abort_transaction(self) -> None:
        """Drop every send of the transaction: consumers never see them."""
        raise UnsupportedOperation(f"{type(self).__name__} has no transactions")

    @abstractmethod
    async def close(self) -> None: ...


class Consumer(ABC):
    """Reads topics as a member of a consumer group, in batches."""

    @abstractmethod
    async def poll(self, max_messages: int, timeout: float) -> list[ConsumedBatch]:
        """Up to ``max_messages`` new messages of the assigned, unpaused partitions, waiting at
        most ``timeout`` seconds. Rebalance callbacks run inside this call."""

    @abstractmethod
    async def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Store the group's next offset for each partition, durably (log brokers).

        Raises:
            CommitFencedError: this member is stale; nothing was committed.
        """

    async def ack(self, tokens: Sequence[Any]) -> None:
        """Acknowledge consumed batches by their ``ack_token`` (queue brokers)."""
        raise UnsupportedOperation(f"{type(self).__name__} commits offsets; it has no acks")

    @abstractmethod
    async def committed(self) -> dict[TopicPartition, int]:
        """The group's committed offsets for the subscribed partitions."""

    @abstractmethod
    async def end_offsets(self) -> dict[TopicPartition, int]:
        """The offset after the last message of each subscribed partition (the high-water)."""

    @abstractmethod
    async def seek(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Read from these offsets next (used by sinks that store positions themselves)."""

    async def assignment(self) -> set[TopicPartition]:
        """The partitions this member currently owns (all of them for a lone member)."""
        return set((await self.end_offsets()).keys())

    async def pause(self, partitions: Set[TopicPartition]) -> None:  # noqa: B027
        """Stop returning messages of ``partitions`` while staying in the group (a sink that
        retries a write for minutes keeps its membership)."""

    async def resume(self, partitions: Set[TopicPartition]) -> None:  # noqa: B027
        """Return messages of paused ``partitions`` again."""

    @abstractmethod
    async def close(self) -> None:
        """Leave the group (its partitions go to the other members) and release the client."""


class QueueConsumer(Consumer):
    """A consumer of a queue broker (``QUEUE_CAPABILITIES``). A queue has no offsets to
    commit, read back, end or seek to; every member of a group reads every subscribed topic
    (one partition, 0), told to ``listener`` once (``_assign``) and never taken away; pausing
    stops returning a topic's messages (``_paused``), which wait in the consumer meanwhile.
    ``scheme`` names the driver in errors."""

    scheme: str

    def __init__(self, listener: RebalanceListener | None) -> None:
        self._listener = listener
        self._assigned: set[str] = set()
        self._paused: set[str] = set()

    async def _assign(self, topics: Set[str]) -> None:
        """Tell the listener about the topics of ``topics`` this member was not told of yet."""
        new = set(topics) - self._assigned
        if new:
            self._assigned |= new
            if self._listener is not None:
                await self._listener.on_partitions_assigned({(t, 0) for t in new})

    @abstractmethod
    async def ack(self, tokens: Sequence[Any]) -> None: ...

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        raise UnsupportedOperation(f"{self.scheme}:// is a queue: acknowledge batches with ack")

    async def committed(self) -> dict[TopicPartition, int]:
        raise UnsupportedOperation(f"{self.scheme}:// is a queue: it has no committed offsets")

    async def end_offsets(self) -> dict[TopicPartition, int]:
        raise UnsupportedOperation(f"{self.scheme}:// is a queue: it has no end offsets")

    async def seek(self, offsets: Mapping[TopicPartition, int]) -> None:
        raise UnsupportedOperation(
            f"{self.scheme}:// is a queue: it cannot seek, a message read is gone"
        )

    async def assignment(self) -> set[TopicPartition]:
        """The topics this member was told it reads (partition 0 each)."""
        return {(topic, 0) for topic in self._assigned}

    async def pause(self, partitions: Set[TopicPartition]) -> None:
        """Stop returning messages of these topics; the server may go on sending them, and
        they wait in the consumer (within its limit of unacknowledged messages)."""
        self._paused |= {topic for topic, _ in partitions}

    async def resume(self, partitions: Set[TopicPartition]) -> None:
        self._paused -= {topic for topic, _ in partitions}


ConsumerStart = Literal["earliest", "latest"]


class Broker(ABC):
    """An access point to one broker (cluster), made from a URL."""

    url: str
    capabilities: Capabilities = Capabilities()

    @abstractmethod
    async def producer(self) -> Producer: ...

    @abstractmethod
    async def consumer(
        self,
        group: str,
        topics: Sequence[str] = (),
        *,
        pattern: str | None = None,
        listener: RebalanceListener | None = None,
        start: ConsumerStart = "earliest",
    ) -> Consumer:
        """A member of ``group`` reading ``topics`` and every topic whose whole name matches
        the regular expression ``pattern`` (topics created later included)."""

    @abstractmethod
    async def create_topic(self, name: str, settings: TopicSettings | None = None) -> None:
        """Create ``name`` if it does not exist (no error when it does; its settings stay)."""

    @abstractmethod
    async def list_topics(self) -> list[TopicInfo]: ...

    async def transaction_positions(self, namespace: str) -> dict[str, str]:
        """Source positions stored by ``commit_transaction`` under ``namespace``."""
        raise UnsupportedOperation(f"{type(self).__name__} has no transactions")

    @abstractmethod
    async def close(self) -> None: ...


ClientT = TypeVar("ClientT", bound=Producer | Consumer)


class OwningBroker(Broker):
    """A broker that closes the producers and consumers it made (``_owned``) when it closes,
    then what it holds itself (``_close_connection``), even when closing a client failed."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._clients: list[Producer | Consumer] = []

    def _owned(self, client: ClientT) -> ClientT:
        """``client``, to be closed with the broker."""
        self._clients.append(client)
        return client

    async def close(self) -> None:
        """Close every producer and consumer made by this broker, then its connection."""
        try:
            for client in self._clients:
                await client.close()
        finally:
            self._clients.clear()
            await self._close_connection()

    @abstractmethod
    async def _close_connection(self) -> None:
        """Close the broker's own connection (or other resources)."""

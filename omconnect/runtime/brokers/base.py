"""The broker driver contract: an OpenMessaging access point with a producer and a consumer.

Every driver (embedded, kafka, nats, amqp, redis, mqtt) implements these three classes and is
chosen by URL scheme (``embedded://path``, ``kafka://host:9092``, also ``oms:kafka://...``).
All methods are coroutines on the worker's event loop; drivers with blocking clients run them
in threads. Offsets are per topic partition; a committed offset is the next one to read.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from omconnect.schemas.message_batch import MessageBatch

TopicPartition = tuple[str, int]


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
    """Messages read from one topic partition, with their offsets in ``messages.offsets``."""

    topic: str
    partition: int
    messages: MessageBatch

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


class Producer(ABC):
    """Publishes message batches. ``send`` returns once the broker acknowledged the batch
    durably; callers pipeline by running several sends concurrently."""

    @abstractmethod
    async def send(
        self, topic: str, messages: MessageBatch, partition: int | None = None
    ) -> list[SendResult]:
        """Publish ``messages``; with ``partition`` None the driver partitions by key hash."""

    async def flush(self) -> None:  # noqa: B027 - drivers without client buffers need nothing
        """Wait until every send so far is acknowledged."""

    @abstractmethod
    async def close(self) -> None: ...


class Consumer(ABC):
    """Reads topics as a member of a consumer group, in batches."""

    @abstractmethod
    async def poll(self, max_messages: int, timeout: float) -> list[ConsumedBatch]:
        """Up to ``max_messages`` new messages, waiting at most ``timeout`` seconds."""

    @abstractmethod
    async def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Store the group's next offset for each partition, durably."""

    @abstractmethod
    async def committed(self) -> dict[TopicPartition, int]:
        """The group's committed offsets for the subscribed partitions."""

    @abstractmethod
    async def end_offsets(self) -> dict[TopicPartition, int]:
        """The offset after the last message of each subscribed partition (the high-water)."""

    @abstractmethod
    async def seek(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Read from these offsets next (used by sinks that store positions themselves)."""

    @abstractmethod
    async def close(self) -> None: ...


class Broker(ABC):
    """An access point to one broker (cluster), made from a URL."""

    url: str

    @abstractmethod
    async def producer(self) -> Producer: ...

    @abstractmethod
    async def consumer(self, group: str, topics: Sequence[str]) -> Consumer: ...

    @abstractmethod
    async def create_topic(self, name: str, partitions: int = 1) -> None:
        """Create ``name`` if it does not exist (no error when it does)."""

    @abstractmethod
    async def list_topics(self) -> list[TopicInfo]: ...

    @abstractmethod
    async def close(self) -> None: ...

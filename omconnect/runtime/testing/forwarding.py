"""Broker and producer wrappers that hand every call of the broker contract to an inner object.

Test doubles that change one behaviour of a real broker (refuse sends, hide a capability)
subclass these and write only the methods they change; the wrapped driver does the rest.
Every method of ``omconnect.runtime.brokers.base`` is forwarded by name, so a method renamed
in the contract fails type checking here instead of silently reaching the base class default.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from omconnect.runtime.brokers.base import (
    Broker,
    Capabilities,
    Consumer,
    ConsumerStart,
    Producer,
    RebalanceListener,
    SendResult,
    TopicInfo,
    TopicSettings,
)
from omconnect.schemas.message_batch import MessageBatch


class ForwardingBroker(Broker):
    """``inner`` as it is: same URL, capabilities, producers, consumers and topics.

    ``producer`` returns ``inner``'s producer itself; a subclass that disturbs sends wraps
    it in a ``ForwardingProducer`` subclass.
    """

    def __init__(self, inner: Broker) -> None:
        self.inner = inner
        self.url = inner.url

    @property
    def capabilities(self) -> Capabilities:  # type: ignore[override]
        return self.inner.capabilities

    async def producer(self) -> Producer:
        return await self.inner.producer()

    async def consumer(
        self,
        group: str,
        topics: Sequence[str] = (),
        *,
        pattern: str | None = None,
        listener: RebalanceListener | None = None,
        start: ConsumerStart = "earliest",
    ) -> Consumer:
        return await self.inner.consumer(
            group, topics, pattern=pattern, listener=listener, start=start
        )

    async def create_topic(self, name: str, settings: TopicSettings | None = None) -> None:
        await self.inner.create_topic(name, settings)

    async def list_topics(self) -> list[TopicInfo]:
        return await self.inner.list_topics()

    async def transaction_positions(self, namespace: str) -> dict[str, str]:
        return await self.inner.transaction_positions(namespace)

    async def close(self) -> None:
        await self.inner.close()


class ForwardingProducer(Producer):
    """``inner`` as it is: sends, flushes and transactions go straight to it."""

    def __init__(self, inner: Producer) -> None:
        self.inner = inner

    async def send(
        self, topic: str, messages: MessageBatch, partition: int | None = None
    ) -> list[SendResult]:
        return await self.inner.send(topic, messages, partition)

    async def flush(self) -> None:
        await self.inner.flush()

    async def begin_transaction(self) -> None:
        await self.inner.begin_transaction()

    async def commit_transaction(
        self, namespace: str | None = None, positions: Mapping[str, str] | None = None
    ) -> None:
        await self.inner.commit_transaction(namespace, positions)

    async def abort_transaction(self) -> None:
        await self.inner.abort_transaction()

    async def close(self) -> None:
        await self.inner.close()

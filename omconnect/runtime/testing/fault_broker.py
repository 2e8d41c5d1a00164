"""A broker wrapper that injects the faults real brokers produce: refused sends, slow acks.

Wrap any driver and hand it to ``PipelineRunner(..., broker=...)`` (or to a driver test) to
check that a pipeline keeps per-key order and loses nothing when sends fail in the middle of
a stream. Only sends are disturbed; the wrapped broker does the real work (every other call
is forwarded by ``ForwardingBroker`` and ``ForwardingProducer``).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence

from omconnect.runtime.brokers.base import Broker, BrokerError, Producer, SendResult
from omconnect.runtime.testing.forwarding import ForwardingBroker, ForwardingProducer
from omconnect.schemas.message_batch import MessageBatch


class InjectedSendError(BrokerError):
    """The fault injected into a send."""


class FaultInjectingBroker(ForwardingBroker):
    """``inner`` with every ``fail_every``-th send refused (it never reaches the broker) and
    acks delayed by up to ``max_ack_delay`` seconds after the broker stored the messages, so
    later sends are acknowledged before earlier ones.

    Args:
        inner: the broker that stores the messages.
        fail_every: refuse send number ``fail_every``, ``2 * fail_every``, ... (0: never).
        max_failures: refuse no more than this many sends (None: no limit). A fixed period can
            line up with the sends a rewound source makes on every attempt (four batches left
            and every fourth send refused): a limit guarantees the run ends.
        max_ack_delay: the longest random delay before a send reaches ``inner``.
        topics: only sends to these topics are disturbed (default: all).
        seed: for the random delays.
    """

    def __init__(
        self,
        inner: Broker,
        fail_every: int = 0,
        max_ack_delay: float = 0.0,
        max_failures: int | None = None,
        topics: Sequence[str] | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(inner)
        self.fail_every = fail_every
        self.max_failures = max_failures
        self.max_ack_delay = max_ack_delay
        self.topics = set(topics) if topics is not None else None
        self.sends = 0
        self.failures = 0
        self._random = random.Random(seed)

    async def producer(self) -> Producer:
        return _FaultyProducer(self, await self.inner.producer())

    def _disturbs(self, topic: str) -> bool:
        return self.topics is None or topic in self.topics


class _FaultyProducer(ForwardingProducer):
    def __init__(self, broker: FaultInjectingBroker, inner: Producer) -> None:
        super().__init__(inner)
        self.broker = broker

    async def send(
        self, topic: str, messages: MessageBatch, partition: int | None = None
    ) -> list[SendResult]:
        broker = self.broker
        if not broker._disturbs(topic):
            return await self.inner.send(topic, messages, partition)
        broker.sends += 1
        delay = broker._random.uniform(0, broker.max_ack_delay)
        limit_reached = broker.max_failures is not None and broker.failures >= broker.max_failures
        if broker.fail_every and broker.sends % broker.fail_every == 0 and not limit_reached:
            broker.failures += 1
            await asyncio.sleep(delay)
            raise InjectedSendError(f"injected failure of send {broker.sends} to {topic}")
        # The broker stored the messages in send order; only the ack comes late.
        results = await self.inner.send(topic, messages, partition)
        await asyncio.sleep(delay)
        return results

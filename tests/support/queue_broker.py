"""A queue broker in memory (per-message acks, no offsets, no seek, no end offsets), to run the
runtime's queue paths without a server. Like RabbitMQ, a group's queue holds what was
published after the group subscribed; unacknowledged messages go back to it when their
consumer closes."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import re
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from omconnect.runtime.brokers.base import (
    QUEUE_CAPABILITIES,
    Broker,
    ConsumedBatch,
    Consumer,
    ConsumerStart,
    Producer,
    QueueConsumer,
    RebalanceListener,
    SendResult,
    TopicInfo,
    TopicSettings,
)
from omconnect.schemas.message_batch import MessageBatch


@dataclass
class _Subscription:
    group: str
    topics: tuple[str, ...]
    pattern: str | None

    def matches(self, topic: str) -> bool:
        return topic in self.topics or (
            self.pattern is not None and re.fullmatch(self.pattern, topic) is not None
        )


@dataclass
class QueueState:
    """Everything the broker holds; shared by the brokers opened on it."""

    topics: set[str] = field(default_factory=set)
    queues: dict[tuple[str, str], deque[MessageBatch]] = field(default_factory=dict)
    subscriptions: list[_Subscription] = field(default_factory=list)
    tokens: itertools.count[int] = field(default_factory=itertools.count)
    acked: int = 0


class QueueBroker(Broker):
    capabilities = QUEUE_CAPABILITIES

    def __init__(self, state: QueueState) -> None:
        self.state = state
        self.url = "queue://memory"
        self.changed = asyncio.Event()

    def wake(self) -> None:
        self.changed.set()
        self.changed = asyncio.Event()

    async def producer(self) -> Producer:
        return _QueueProducer(self)

    async def consumer(
        self,
        group: str,
        topics: Sequence[str] = (),
        *,
        pattern: str | None = None,
        listener: RebalanceListener | None = None,
        start: ConsumerStart = "earliest",
    ) -> Consumer:
        return _QueueConsumer(self, _Subscription(group, tuple(topics), pattern), listener)

    async def create_topic(self, name: str, settings: TopicSettings | None = None) -> None:
        self.state.topics.add(name)

    async def list_topics(self) -> list[TopicInfo]:
        return [TopicInfo(name, 1, 0) for name in sorted(self.state.topics)]

    async def close(self) -> None:
        pass


class _QueueProducer(Producer):
    def __init__(self, broker: QueueBroker) -> None:
        self.broker = broker

    async def send(
        self, topic: str, messages: MessageBatch, partition: int | None = None
    ) -> list[SendResult]:
        state = self.broker.state
        state.topics.add(topic)
        for group in {s.group for s in state.subscriptions if s.matches(topic)}:
            queue = state.queues.setdefault((group, topic), deque())
            queue.extend(messages.slice(i, 1) for i in range(len(messages)))
        self.broker.wake()
        return [SendResult(topic, 0, 0, len(messages))]

    async def close(self) -> None:
        pass


class _QueueConsumer(QueueConsumer):
    scheme = "queue"

    def __init__(
        self,
        broker: QueueBroker,
        subscription: _Subscription,
        listener: RebalanceListener | None,
    ) -> None:
        super().__init__(listener)
        self.broker = broker
        self.subscription = subscription
        broker.state.subscriptions.append(subscription)
        self.in_flight: dict[int, tuple[str, list[MessageBatch]]] = {}
        self.sequence = 0

    def _topics(self) -> list[str]:
        return sorted(t for t in self.broker.state.topics if self.subscription.matches(t))

    async def poll(self, max_messages: int, timeout: float) -> list[ConsumedBatch]:
        await self._assign(set(self._topics()))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            batches = []
            budget = max_messages
            for topic in self._topics():
                queue = self.broker.state.queues.get((self.subscription.group, topic))
                if topic in self._paused or not queue:
                    continue
                taken = []
                while queue and budget:
                    taken.append(queue.popleft())
                    budget -= 1
                if taken:
                    token = next(self.broker.state.tokens)
                    self.in_flight[token] = (topic, taken)
                    messages = MessageBatch.concat(taken).with_offsets(self.sequence)
                    self.sequence += len(taken)
                    batches.append(ConsumedBatch(topic, 0, messages, ack_token=token))
            remaining = deadline - loop.time()
            if batches or remaining <= 0:
                return batches
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.broker.changed.wait(), min(remaining, 0.02))

    async def ack(self, tokens: Sequence[Any]) -> None:
        for token in tokens:
            _, taken = self.in_flight.pop(token)
            self.broker.state.acked += len(taken)

    async def close(self) -> None:
        for token in sorted(self.in_flight, reverse=True):
            topic, taken = self.in_flight.pop(token)
            queue = self.broker.state.queues.setdefault((self.subscription.group, topic), deque())
            queue.extendleft(reversed(taken))
        self.broker.wake()

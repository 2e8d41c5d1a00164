"""``KafkaAdmin``: topics and groups through one librdkafka admin client."""

from __future__ import annotations

import asyncio
from typing import Any

from confluent_kafka import ConsumerGroupState, KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from omconnect.runtime.brokers.base import BrokerError, TopicSettings
from omconnect.runtime.brokers.kafka._errors import ConnectionProblems, broker_error, unreachable
from omconnect.runtime.brokers.kafka._librdkafka import BlockingCalls, common_config
from omconnect.runtime.brokers.kafka._options import KafkaOptions


def is_internal(topic: str) -> bool:
    """Kafka's internal topics (``__consumer_offsets``, ``__transaction_state``) and this
    driver's transaction positions start with two underscores; listings leave them out."""
    return topic.startswith("__")


class KafkaAdmin:
    """Creates and describes topics, tells partition counts and group states.

    The first call checks that a broker answers at all, within ``connect_timeout_ms``, and
    fails with one line saying where it looked otherwise (later calls are bounded by
    ``request_timeout_ms``). Partition counts are remembered: a producer asks for every send.
    """

    def __init__(
        self, options: KafkaOptions, problems: ConnectionProblems, calls: BlockingCalls
    ) -> None:
        self.options = options
        self._problems = problems
        self._calls = calls
        self._client: AdminClient | None = None
        self._reachable = False
        self._checking = asyncio.Lock()
        self._counts: dict[str, int] = {}
        self._timeout = options.request_timeout_ms / 1000

    @property
    def client(self) -> AdminClient:
        if self._client is None:
            self._client = AdminClient(common_config(self.options, self._problems))
        return self._client

    async def check_reachable(self) -> None:
        """Fail fast, naming the servers, when no broker answers.

        Raises:
            BrokerError: nothing answered within ``connect_timeout_ms``.
        """
        if self._reachable:
            return
        async with self._checking:
            if self._reachable:
                return
            seconds = self.options.connect_timeout_ms / 1000
            try:
                await self._calls.run(
                    "connecting", seconds + 1, self.client.list_topics, timeout=seconds
                )
            except (KafkaException, BrokerError):
                self.client.poll(0)  # serves the error callbacks that say why
                raise unreachable(self.options.servers, seconds, self._problems) from None
            self._reachable = True

    async def topics(self) -> dict[str, int]:
        """Every topic (internal ones too) and its partition count."""
        await self.check_reachable()
        metadata = await self._calls.run(
            "listing topics", self._timeout + 1, self.client.list_topics, timeout=self._timeout
        )
        found = {name: len(topic.partitions) for name, topic in metadata.topics.items()}
        self._counts.update(found)
        return found

    async def partition_count(self, topic: str) -> int:
        """How many partitions ``topic`` has; creates it with one when it does not exist (a
        producer's first send to a topic, as the embedded broker does)."""
        count = self._counts.get(topic)
        if count is None:
            count = (await self.topics()).get(topic)
            if count is None:
                await self.create_topic(topic, TopicSettings())
                count = (await self.topics()).get(topic, 1)
        return count

    async def refresh_partition_count(self, topic: str) -> int | None:
        self._counts.pop(topic, None)
        return (await self.topics()).get(topic)

    async def create_topic(self, name: str, settings: TopicSettings) -> None:
        """Create ``name``; an existing topic keeps its settings.

        Raises:
            ValueError: an empty name, no partitions, or a retention that is not positive.
            BrokerError: the broker refused it.
        """
        _check_settings(name, settings)
        await self.check_reachable()
        config: dict[str, str] = {"cleanup.policy": "compact" if settings.compacted else "delete"}
        if settings.retention_ms is not None:
            config["retention.ms"] = str(settings.retention_ms)
        if settings.retention_bytes is not None:
            config["retention.bytes"] = str(settings.retention_bytes)
        topic = NewTopic(
            name,
            num_partitions=settings.partitions,
            replication_factor=self.options.replication_factor,
            config=config,
        )
        await self._calls.run(f"creating topic {name!r}", self._timeout + 1, self._create, topic)

    def _create(self, topic: NewTopic) -> None:
        futures = self.client.create_topics([topic], request_timeout=self._timeout)
        try:
            futures[topic.topic].result(timeout=self._timeout)
        except KafkaException as error:
            if error.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise broker_error(f"creating topic {topic.topic!r}", error) from None

    async def topic_config(self, name: str) -> dict[str, str]:
        """The configuration the broker holds for topic ``name`` (``cleanup.policy``,
        ``retention.ms``, ...)."""
        await self.check_reachable()
        resource = ConfigResource("topic", name)

        def describe() -> dict[str, Any]:
            futures = self.client.describe_configs([resource], request_timeout=self._timeout)
            entries = futures[resource].result(timeout=self._timeout)
            return {key: entry.value for key, entry in entries.items()}

        try:
            return await self._calls.run(f"describing topic {name!r}", self._timeout + 1, describe)
        except KafkaException as error:
            raise broker_error(f"describing topic {name!r}", error) from None

    async def group_state(self, group: str) -> ConsumerGroupState:
        """The state of ``group`` as its coordinator tells it (``EMPTY`` for a group without
        members, or one that does not exist)."""

        def describe() -> ConsumerGroupState:
            futures = self.client.describe_consumer_groups([group], request_timeout=self._timeout)
            state = futures[group].result(timeout=self._timeout).state
            return ConsumerGroupState.UNKNOWN if state is None else ConsumerGroupState(state)

        try:
            return await self._calls.run(f"describing group {group!r}", self._timeout + 1, describe)
        except KafkaException as error:
            raise broker_error(f"describing group {group!r}", error) from None


def _check_settings(name: str, settings: TopicSettings) -> None:
    if not name:
        raise ValueError("a topic needs a name")
    if settings.partitions < 1:
        raise ValueError(f"topic {name!r}: at least one partition, got {settings.partitions}")
    for option in ("retention_ms", "retention_bytes"):
        value = getattr(settings, option)
        if value is not None and value <= 0:
            raise ValueError(f"topic {name!r}: {option} must be positive, got {value}")

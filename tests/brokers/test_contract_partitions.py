"""The broker contract for ``partitions``: keyed messages of one key stay in one partition and
keys spread over them, messages without a key of one send share a partition, and a send can
name its partition."""

from __future__ import annotations

from collections import Counter

from omconnect.runtime.brokers import Broker, ConsumedBatch
from omconnect.runtime.brokers.base import TopicSettings

from .conftest import (
    by_partition,
    joined,
    messages,
    numbered,
    numbered_messages,
    read_until,
    requires,
    run_on,
    values,
)


def test_keyed_partitioning_is_stable(broker: Broker, topic_name: str, group: str) -> None:
    requires(broker, "partitions")

    async def body() -> list[ConsumedBatch]:
        await broker.create_topic(topic_name, TopicSettings(partitions=4))
        consumer = await joined(broker, group, [topic_name])
        producer = await broker.producer()
        await producer.send(topic_name, numbered_messages(0, 400, key_space=40))
        await producer.send(topic_name, numbered_messages(400, 400, key_space=40))
        return await read_until(consumer, lambda got: len(values(got)) >= 800)

    batches = run_on(broker, body())
    assert sorted(numbered(values(batches))) == list(range(800))
    partitions_of_key: dict[bytes, set[int]] = {}
    for batch in batches:
        for key in batch.messages.keys.to_pylist():
            partitions_of_key.setdefault(key, set()).add(batch.partition)
    assert len(partitions_of_key) == 40
    assert all(len(p) == 1 for p in partitions_of_key.values())
    used = Counter(p for ps in partitions_of_key.values() for p in ps)
    assert len(used) >= 3, f"40 keys should spread over 4 partitions, got {used}"
    # Per partition, the messages (so each key's) keep their send order.
    for tp, read in by_partition(batches).items():
        assert numbered(read) == sorted(numbered(read)), tp


def test_messages_without_key_of_one_batch_share_a_partition(
    broker: Broker, topic_name: str
) -> None:
    requires(broker, "partitions")

    async def body() -> list[list[int]]:
        await broker.create_topic(topic_name, TopicSettings(partitions=3))
        producer = await broker.producer()
        sent = [await producer.send(topic_name, numbered_messages(i * 10, 10)) for i in range(6)]
        return [[r.partition for r in results] for results in sent]

    partitions = run_on(broker, body())
    assert all(len(p) == 1 for p in partitions)
    assert len({p[0] for p in partitions}) > 1, "null keys should rotate over partitions"


def test_send_to_explicit_partition(broker: Broker, topic_name: str, group: str) -> None:
    requires(broker, "partitions")

    async def body() -> list[ConsumedBatch]:
        await broker.create_topic(topic_name, TopicSettings(partitions=2))
        consumer = await joined(broker, group, [topic_name])
        producer = await broker.producer()
        results = await producer.send(topic_name, numbered_messages(0, 5, key_space=5), 1)
        assert [(r.partition, r.count) for r in results] == [(1, 5)]
        if broker.capabilities.log:
            assert results[0].first_offset == 0
        if broker.capabilities.end_offsets:
            assert await consumer.end_offsets() == {(topic_name, 0): 0, (topic_name, 1): 5}
        return await read_until(consumer, lambda got: len(values(got)) >= 5)

    batches = run_on(broker, body())
    assert by_partition(batches) == {(topic_name, 1): messages(0, 5)}

"""The broker contract for ``acks`` (queue brokers): consumed batches carry an ack token, acked
messages are never delivered again, unacknowledged ones go to the next member once their
consumer is gone."""

from __future__ import annotations

from collections import Counter

from omconnect.runtime.brokers import Broker, ConsumedBatch

from .conftest import (
    drain,
    joined,
    messages,
    numbered_messages,
    read_until,
    requires,
    run_on,
    values,
)


def test_consumed_batches_carry_ack_tokens(broker: Broker, topic_name: str, group: str) -> None:
    requires(broker, "acks")

    async def body() -> list[ConsumedBatch]:
        await broker.create_topic(topic_name)
        consumer = await joined(broker, group, [topic_name])
        producer = await broker.producer()
        for start in range(0, 30, 10):
            await producer.send(topic_name, numbered_messages(start, 10))
        batches = await read_until(consumer, lambda got: len(values(got)) >= 30, max_messages=7)
        await consumer.ack([b.ack_token for b in batches])
        return batches

    batches = run_on(broker, body())
    assert values(batches) == messages(0, 30)
    assert all(b.ack_token is not None for b in batches), "every batch needs its ack token"


def test_acked_messages_are_not_redelivered(broker: Broker, topic_name: str, group: str) -> None:
    requires(broker, "acks")

    async def body() -> tuple[list[bytes], ...]:
        await broker.create_topic(topic_name)
        first = await joined(broker, group, [topic_name])
        producer = await broker.producer()
        await producer.send(topic_name, numbered_messages(0, 30))
        read = await read_until(first, lambda got: len(values(got)) >= 30, max_messages=5)
        acked, unacked = read[::2], read[1::2]  # some batches acked, the others not
        await first.ack([b.ack_token for b in acked])
        later = values(await drain(first))  # not redelivered to the consumer holding them
        await first.close()
        second = await broker.consumer(group, [topic_name])
        again = await read_until(second, lambda got: len(values(got)) >= len(values(unacked)))
        await second.ack([b.ack_token for b in again])
        again += await drain(second)
        await second.close()
        third = await broker.consumer(group, [topic_name])
        finally_read = values(await drain(third))
        return values(acked), values(unacked), later, values(again), finally_read

    acked, unacked, later, again, third = run_on(broker, body())
    assert sorted(acked + unacked) == sorted(messages(0, 30))
    assert unacked, "the test needs unacknowledged batches"
    assert later == [], "nothing is delivered twice to the consumer that holds it"
    assert Counter(again) == Counter(unacked), "exactly the unacknowledged ones, once each"
    assert third == [], "acked messages are never delivered again"

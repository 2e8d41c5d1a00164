"""The broker contract for a ``log``: messages are numbered per partition from 0 without gaps,
consumers commit the next offset to read and can ``seek``, a new group starts at the first
message or at the high-water; with ``end_offsets``, the high-water is known."""

from __future__ import annotations

from omconnect.runtime.brokers import Broker, ConsumedBatch, TopicPartition
from omconnect.runtime.brokers.base import TopicSettings

from .conftest import (
    by_partition,
    drain,
    joined,
    messages,
    numbered_messages,
    offsets,
    partitions_for,
    read_until,
    requires,
    run_on,
    values,
)


def test_offsets_number_each_partition_from_zero(
    broker: Broker, topic_name: str, group: str
) -> None:
    requires(broker, "log")

    async def body() -> list[ConsumedBatch]:
        producer = await broker.producer()
        results = await producer.send(topic_name, numbered_messages(0, 4))
        assert [(r.topic, r.partition, r.first_offset, r.count) for r in results] == [
            (topic_name, 0, 0, 4)
        ]
        consumer = await broker.consumer(group, [topic_name])
        return await drain(consumer)

    batches = run_on(broker, body())
    assert len(batches) == 1
    assert (batches[0].topic, batches[0].partition, batches[0].next_offset) == (topic_name, 0, 4)
    assert offsets(batches) == [0, 1, 2, 3]
    assert values(batches) == messages(0, 4)


def test_offsets_are_contiguous_across_sends(broker: Broker, topic_name: str, group: str) -> None:
    requires(broker, "log")

    async def body() -> tuple[list[tuple[int, int]], list[ConsumedBatch]]:
        producer = await broker.producer()
        acks = []
        for start, count in [(0, 3), (3, 1), (4, 50), (54, 6)]:
            (result,) = await producer.send(topic_name, numbered_messages(start, count))
            acks.append((result.first_offset, result.count))
        consumer = await broker.consumer(group, [topic_name])
        return acks, await drain(consumer)

    acks, batches = run_on(broker, body())
    assert acks == [(0, 3), (3, 1), (4, 50), (54, 6)]
    assert offsets(batches) == list(range(60))
    assert values(batches) == messages(0, 60)


def test_polls_fill_up_to_max_messages_across_send_boundaries(
    broker: Broker, topic_name: str, group: str
) -> None:
    requires(broker, "log")

    async def body() -> list[list[ConsumedBatch]]:
        producer = await broker.producer()
        for i in range(5):
            await producer.send(topic_name, numbered_messages(i * 7, 7))
        consumer = await broker.consumer(group, [topic_name])
        polls = []
        while got := await consumer.poll(10, timeout=0.2):
            polls.append(got)
        return polls

    polls = run_on(broker, body())
    assert [sum(len(b.messages) for b in got) for got in polls] == [10, 10, 10, 5]
    flat = [b for got in polls for b in got]
    assert offsets(flat) == list(range(35))
    assert values(flat) == messages(0, 35)


def test_group_commit_and_new_consumer_resumes_exactly(
    broker: Broker, topic_name: str, group: str
) -> None:
    requires(broker, "log")

    async def body() -> tuple[list[int], list[int], list[dict[TopicPartition, int]]]:
        producer = await broker.producer()
        await producer.send(topic_name, numbered_messages(0, 100))
        first = await broker.consumer(group, [topic_name])
        (batch,) = await first.poll(30, timeout=1)
        assert await first.committed() == {}
        await first.commit({(batch.topic, batch.partition): batch.next_offset})
        seen = [await first.committed()]
        await first.poll(20, timeout=1)  # read further without committing
        seen.append(await first.committed())
        await first.close()
        second = await broker.consumer(group, [topic_name])
        seen.append(await second.committed())
        other = await broker.consumer(f"{group}-other", [topic_name])
        seen.append(await other.committed())
        rest = await drain(second)
        return offsets([batch]), offsets(rest), seen

    head, rest, committed = run_on(broker, body())
    assert head == list(range(30))
    assert committed == [{(topic_name, 0): 30}] * 3 + [{}]
    assert rest == list(range(30, 100))


def test_a_new_group_starts_at_the_first_message_or_at_the_high_water(
    broker: Broker, topic_name: str, group: str
) -> None:
    requires(broker, "log")

    async def body() -> tuple[list[bytes], list[bytes]]:
        producer = await broker.producer()
        await producer.send(topic_name, numbered_messages(0, 5))
        earliest = await broker.consumer(f"{group}-e", [topic_name], start="earliest")
        latest = await joined(broker, f"{group}-l", [topic_name], start="latest")
        await producer.send(topic_name, numbered_messages(5, 3))
        from_latest = await read_until(latest, lambda got: len(values(got)) >= 3)
        from_latest += await drain(latest)
        return values(await drain(earliest)), values(from_latest)

    from_earliest, from_latest = run_on(broker, body())
    assert from_earliest == messages(0, 8)
    assert from_latest == messages(5, 8)


def test_end_offsets_are_the_high_water(broker: Broker, topic_name: str, group: str) -> None:
    requires(broker, "log", "end_offsets")

    async def body() -> None:
        count = partitions_for(broker, 2)
        parts = [(topic_name, p) for p in range(count)]
        await broker.create_topic(topic_name, TopicSettings(partitions=count))
        consumer = await broker.consumer(group, [topic_name])
        assert await consumer.end_offsets() == dict.fromkeys(parts, 0)  # before any poll
        producer = await broker.producer()
        ends = {}
        for (_, p), size in zip(parts, [8, 3], strict=False):
            (result,) = await producer.send(topic_name, numbered_messages(10 * p, size), p)
            ends[(topic_name, p)] = result.first_offset + result.count
        assert ends == dict(zip(parts, [8, 3], strict=False))
        assert await consumer.end_offsets() == ends
        read = await drain(consumer)
        last = {(b.topic, b.partition): b.next_offset for b in read}
        assert last == ends, "a reader that read everything is at the end offsets"
        await producer.send(topic_name, numbered_messages(50, 4), 0)
        assert await consumer.end_offsets() == {**ends, (topic_name, 0): 12}

    run_on(broker, body())


def test_seek(broker: Broker, topic_name: str, group: str) -> None:
    requires(broker, "log")

    async def body() -> None:
        count = partitions_for(broker, 2)
        await broker.create_topic(topic_name, TopicSettings(partitions=count))
        producer = await broker.producer()
        await producer.send(topic_name, numbered_messages(0, 8), partition=0)
        if count > 1:
            await producer.send(topic_name, numbered_messages(8, 3), partition=1)
        consumer = await broker.consumer(group, [topic_name])
        assert len(offsets(await drain(consumer))) == (11 if count > 1 else 8)
        await consumer.seek({(topic_name, 0): 5})
        batches = await drain(consumer)
        assert [(b.partition, offsets([b])) for b in batches] == [(0, [5, 6, 7])]
        assert values(batches) == [b"m5", b"m6", b"m7"]
        if count > 1:
            await consumer.seek({(topic_name, 1): 0, (topic_name, 0): 7})
            batches = sorted(await drain(consumer), key=lambda b: b.partition)
            assert [(b.partition, offsets([b])) for b in batches] == [(0, [7]), (1, [0, 1, 2])]

        # A seek does not commit; a consumer that seeks before its first poll starts there
        # (``omconnect topics tail`` seeks to the end offsets that way).
        await consumer.commit({(topic_name, 0): 2})
        await consumer.seek({(topic_name, 0): 6})
        assert await consumer.committed() == {(topic_name, 0): 2}
        assert values(await drain(consumer)) == [b"m6", b"m7"]
        await consumer.close()
        tail = await broker.consumer(group, [topic_name])
        await tail.seek({(topic_name, 0): 4})
        assert by_partition(await drain(tail))[(topic_name, 0)] == messages(4, 8)

    run_on(broker, body())


def test_list_topics_counts_the_messages_of_each_topic(broker: Broker, topic_name: str) -> None:
    requires(broker, "log")

    async def body() -> None:
        await broker.create_topic(topic_name, TopicSettings(partitions=partitions_for(broker, 3)))
        producer = await broker.producer()
        await producer.send(topic_name, numbered_messages(0, 12, key_space=12))
        await producer.send(f"{topic_name}-auto", numbered_messages(0, 2))
        topics = {t.name: t for t in await broker.list_topics()}
        assert topics[topic_name].messages == 12
        assert (topics[f"{topic_name}-auto"].partitions, topics[f"{topic_name}-auto"].messages) == (
            1,
            2,
        )

    run_on(broker, body())

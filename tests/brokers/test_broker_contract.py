"""The broker contract: one test body for every driver (see ``broker_url`` in conftest)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Set

import pytest

from omconnect.runtime.brokers import Broker, ConsumedBatch, Consumer, open_broker
from omconnect.runtime.brokers.base import TopicSettings
from omconnect.schemas.message_batch import MessageBatch

from .conftest import numbered_messages, run


async def _drain(consumer: Consumer, max_messages: int = 1000) -> list[ConsumedBatch]:
    batches: list[ConsumedBatch] = []
    while got := await consumer.poll(max_messages, timeout=0.2):
        batches.extend(got)
    return batches


def _values(batches: list[ConsumedBatch]) -> list[bytes]:
    return [v for b in batches for v in b.messages.values.to_pylist()]


def _offsets(batches: list[ConsumedBatch]) -> list[int]:
    offsets = []
    for batch in batches:
        assert batch.messages.offsets is not None
        offsets.extend(batch.messages.offsets.to_pylist())
    return offsets


def test_round_trip_preserves_keys_values_headers_and_timestamps(
    broker_url: str, topic_name: str
) -> None:
    sent = MessageBatch.build(
        values=[b"plain", b"", None, b"\x00\xff binary"],
        keys=[b"k1", None, b"", b"k4"],
        timestamps=[1, 1_700_000_000_123, 2**40, 0],
        headers=[{"a": b"1", "b": b""}, None, {}, {"trace": b"\x00\x01", "empty": b""}],
    )

    async def body() -> list[ConsumedBatch]:
        broker = open_broker(broker_url)
        producer = await broker.producer()
        results = await producer.send(topic_name, sent)
        assert [(r.topic, r.partition, r.first_offset, r.count) for r in results] == [
            (topic_name, 0, 0, 4)
        ]
        consumer = await broker.consumer("g", [topic_name])
        batches = await _drain(consumer)
        await broker.close()
        return batches

    batches = run(body())
    assert len(batches) == 1
    received = batches[0].messages
    assert (batches[0].topic, batches[0].partition, batches[0].next_offset) == (topic_name, 0, 4)
    assert received.keys.to_pylist() == sent.keys.to_pylist()
    assert received.values.to_pylist() == sent.values.to_pylist()
    assert received.timestamps.to_pylist() == sent.timestamps.to_pylist()
    assert [received.header_dict(i) for i in range(4)] == [sent.header_dict(i) for i in range(4)]
    assert received.headers.to_pylist() == sent.headers.to_pylist()  # null vs empty kept
    assert _offsets(batches) == [0, 1, 2, 3]


def test_offsets_are_contiguous_across_sends(broker_url: str, topic_name: str) -> None:
    async def body() -> tuple[list[tuple[int, int]], list[ConsumedBatch]]:
        broker = open_broker(broker_url)
        producer = await broker.producer()
        acks = []
        for start, count in [(0, 3), (3, 1), (4, 50), (54, 6)]:
            (result,) = await producer.send(topic_name, numbered_messages(start, count))
            acks.append((result.first_offset, result.count))
        consumer = await broker.consumer("g", [topic_name])
        batches = await _drain(consumer)
        await broker.close()
        return acks, batches

    acks, batches = run(body())
    assert acks == [(0, 3), (3, 1), (4, 50), (54, 6)]
    assert _offsets(batches) == list(range(60))
    assert _values(batches) == [f"m{n}".encode() for n in range(60)]


def test_keyed_partitioning_is_stable(broker_url: str, topic_name: str) -> None:
    async def body() -> list[ConsumedBatch]:
        broker = open_broker(broker_url)
        await broker.create_topic(topic_name, TopicSettings(partitions=4))
        producer = await broker.producer()
        await producer.send(topic_name, numbered_messages(0, 400, key_space=40))
        await producer.send(topic_name, numbered_messages(400, 400, key_space=40))
        consumer = await broker.consumer("g", [topic_name])
        batches = await _drain(consumer)
        await broker.close()
        return batches

    batches = run(body())
    partitions_of_key: dict[bytes, set[int]] = {}
    for batch in batches:
        for key in batch.messages.keys.to_pylist():
            partitions_of_key.setdefault(key, set()).add(batch.partition)
    assert len(partitions_of_key) == 40
    assert all(len(p) == 1 for p in partitions_of_key.values())
    used = Counter(p for ps in partitions_of_key.values() for p in ps)
    assert len(used) >= 3, f"40 keys should spread over 4 partitions, got {used}"
    # Per partition, a key's messages keep their send order.
    for batch in batches:
        numbers = [int(v[1:]) for v in batch.messages.values.to_pylist()]
        assert numbers == sorted(numbers)


def test_messages_without_key_of_one_batch_share_a_partition(
    broker_url: str, topic_name: str
) -> None:
    async def body() -> list[list[int]]:
        broker = open_broker(broker_url)
        await broker.create_topic(topic_name, TopicSettings(partitions=3))
        producer = await broker.producer()
        sent = [await producer.send(topic_name, numbered_messages(i * 10, 10)) for i in range(6)]
        await broker.close()
        return [[r.partition for r in results] for results in sent]

    partitions = run(body())
    assert all(len(p) == 1 for p in partitions)
    assert len({p[0] for p in partitions}) > 1, "null keys should rotate over partitions"


def test_send_to_explicit_partition(broker_url: str, topic_name: str) -> None:
    async def body() -> None:
        broker = open_broker(broker_url)
        await broker.create_topic(topic_name, TopicSettings(partitions=2))
        producer = await broker.producer()
        results = await producer.send(topic_name, numbered_messages(0, 5, key_space=5), 1)
        assert [(r.partition, r.first_offset, r.count) for r in results] == [(1, 0, 5)]
        consumer = await broker.consumer("g", [topic_name])
        assert await consumer.end_offsets() == {(topic_name, 0): 0, (topic_name, 1): 5}
        await broker.close()

    run(body())


def test_group_commit_and_new_consumer_resumes_exactly(broker_url: str, topic_name: str) -> None:
    async def body() -> tuple[list[int], list[int], dict[tuple[str, int], int]]:
        broker = open_broker(broker_url)
        producer = await broker.producer()
        await producer.send(topic_name, numbered_messages(0, 100))
        first = await broker.consumer("group-a", [topic_name])
        (batch,) = await first.poll(30, timeout=1)
        await first.commit({(batch.topic, batch.partition): batch.next_offset})
        await first.poll(20, timeout=1)  # read further without committing
        await first.close()
        second = await broker.consumer("group-a", [topic_name])
        committed = await second.committed()
        rest = await _drain(second)
        await broker.close()
        return _offsets([batch]), _offsets(rest), committed

    head, rest, committed = run(body())
    assert head == list(range(30))
    assert committed == {(topic_name, 0): 30}
    assert rest == list(range(30, 100))


def test_two_groups_are_independent(broker_url: str, topic_name: str) -> None:
    async def body() -> tuple[list[int], list[int]]:
        broker = open_broker(broker_url)
        producer = await broker.producer()
        await producer.send(topic_name, numbered_messages(0, 10))
        one = await broker.consumer("one", [topic_name])
        (batch,) = await one.poll(10, timeout=1)
        await one.commit({(topic_name, 0): batch.next_offset})
        two = await broker.consumer("two", [topic_name])
        two_offsets = _offsets(await _drain(two))
        again = await broker.consumer("one", [topic_name])
        one_offsets = _offsets(await _drain(again))
        await broker.close()
        return one_offsets, two_offsets

    one_offsets, two_offsets = run(body())
    assert one_offsets == []
    assert two_offsets == list(range(10))


def test_poll_times_out_with_nothing_and_wakes_for_new_data(
    broker_url: str, topic_name: str
) -> None:
    async def body() -> tuple[float, list[ConsumedBatch], float]:
        broker = open_broker(broker_url)
        await broker.create_topic(topic_name)
        consumer = await broker.consumer("g", [topic_name])
        started = time.monotonic()
        empty = await consumer.poll(10, timeout=0.2)
        waited = time.monotonic() - started
        assert empty == []
        producer = await broker.producer()
        started = time.monotonic()
        polling = asyncio.ensure_future(consumer.poll(10, timeout=5))
        await asyncio.sleep(0.1)
        await producer.send(topic_name, numbered_messages(0, 3))
        got = await polling
        woke = time.monotonic() - started
        await broker.close()
        return waited, got, woke

    waited, got, woke = run(body())
    assert 0.15 <= waited < 1.0
    assert _offsets(got) == [0, 1, 2]
    assert woke < 2.0


def test_max_messages_is_honoured_across_batch_boundaries(broker_url: str, topic_name: str) -> None:
    async def body() -> list[list[ConsumedBatch]]:
        broker = open_broker(broker_url)
        producer = await broker.producer()
        for i in range(5):
            await producer.send(topic_name, numbered_messages(i * 7, 7))
        consumer = await broker.consumer("g", [topic_name])
        polls = []
        while got := await consumer.poll(10, timeout=0.2):
            polls.append(got)
        await broker.close()
        return polls

    polls = run(body())
    assert [sum(len(b.messages) for b in got) for got in polls] == [10, 10, 10, 5]
    flat = [b for got in polls for b in got]
    assert _offsets(flat) == list(range(35))
    assert _values(flat) == [f"m{n}".encode() for n in range(35)]


def test_end_offsets_and_seek(broker_url: str, topic_name: str) -> None:
    async def body() -> None:
        broker = open_broker(broker_url)
        await broker.create_topic(topic_name, TopicSettings(partitions=2))
        producer = await broker.producer()
        await producer.send(topic_name, numbered_messages(0, 8), partition=0)
        await producer.send(topic_name, numbered_messages(8, 3), partition=1)
        consumer = await broker.consumer("g", [topic_name])
        assert await consumer.end_offsets() == {(topic_name, 0): 8, (topic_name, 1): 3}
        assert len(_offsets(await _drain(consumer))) == 11
        await consumer.seek({(topic_name, 0): 5})
        batches = await _drain(consumer)
        assert [(b.partition, _offsets([b])) for b in batches] == [(0, [5, 6, 7])]
        assert _values(batches) == [b"m5", b"m6", b"m7"]
        await consumer.seek({(topic_name, 1): 0, (topic_name, 0): 7})
        batches = sorted(await _drain(consumer), key=lambda b: b.partition)
        assert [(b.partition, _offsets([b])) for b in batches] == [(0, [7]), (1, [0, 1, 2])]
        await broker.close()

    run(body())


def test_create_topic_is_idempotent_and_topics_are_listed(broker_url: str, topic_name: str) -> None:
    async def body() -> None:
        broker: Broker = open_broker(broker_url)
        await broker.create_topic(topic_name, TopicSettings(partitions=3))
        await broker.create_topic(topic_name, TopicSettings(partitions=5))
        producer = await broker.producer()
        await producer.send(topic_name, numbered_messages(0, 12, key_space=12))
        await producer.send(f"{topic_name}-auto", numbered_messages(0, 2))
        topics = {t.name: t for t in await broker.list_topics()}
        assert (topics[topic_name].partitions, topics[topic_name].messages) == (3, 12)
        assert (topics[f"{topic_name}-auto"].partitions, topics[f"{topic_name}-auto"].messages) == (
            1,
            2,
        )
        await broker.close()

    run(body())


class _CommitOnRevoke:
    """A listener that, as the runtime does, commits what was read of partitions it loses."""

    def __init__(self) -> None:
        self.consumer: Consumer | None = None
        self.read: dict[tuple[str, int], int] = {}
        self.values: list[bytes] = []

    async def on_partitions_revoked(self, partitions: Set[tuple[str, int]]) -> None:
        assert self.consumer is not None
        done = {tp: self.read.pop(tp) for tp in partitions if tp in self.read}
        if done:
            await self.consumer.commit(done)

    async def on_partitions_assigned(self, partitions: Set[tuple[str, int]]) -> None:
        pass

    async def poll(self) -> int:
        assert self.consumer is not None
        batches = await self.consumer.poll(25, timeout=0.05)
        for batch in batches:
            self.read[(batch.topic, batch.partition)] = batch.next_offset
            self.values.extend(_values([batch]))
        return len(batches)


def test_members_of_one_group_share_the_partitions(broker_url: str, topic_name: str) -> None:
    async def body() -> tuple[list[set[tuple[str, int]]], Counter[bytes]]:
        broker = open_broker(broker_url)
        if not (broker.capabilities.groups and broker.capabilities.partitions):
            await broker.close()
            pytest.skip("the broker has no partitioned consumer groups")
        await broker.create_topic(topic_name, TopicSettings(partitions=4))
        producer = await broker.producer()
        await producer.send(topic_name, numbered_messages(0, 200, key_space=50))
        members = [_CommitOnRevoke(), _CommitOnRevoke()]
        for member in members:
            member.consumer = await broker.consumer("g", [topic_name], listener=member)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            polled = [await m.poll() for m in members]
            owned = [await m.consumer.assignment() for m in members if m.consumer]
            if not any(polled) and all(len(o) == 2 for o in owned):
                break
        await broker.close()
        return owned, Counter(members[0].values + members[1].values)

    owned, read = run(body())
    assert owned[0] | owned[1] == {(topic_name, p) for p in range(4)}
    assert read == Counter({f"m{n}".encode(): 1 for n in range(200)})

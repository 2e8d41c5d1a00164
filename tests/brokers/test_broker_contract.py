"""The broker contract, part every backend must pass whatever it declares (see conftest).

What depends on a capability lives in ``test_contract_<capability>.py``: offsets, seek and
commits (``log``), ``end_offsets``, ack tokens (``acks``), ``transactions``, ``partitions``,
consumer ``groups``, ``retention``.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from types import SimpleNamespace
from typing import cast

import pyarrow as pa
import pytest

from omconnect.runtime.brokers import Broker, ConsumedBatch
from omconnect.runtime.brokers.base import QUEUE_CAPABILITIES, TopicSettings
from omconnect.runtime.converters.base import merged_headers
from omconnect.runtime.converters.json import JsonConverter
from omconnect.schemas.arrow import from_arrow_schema
from omconnect.schemas.message_batch import HEADERS_TYPE, MessageBatch
from omconnect.schemas.record import RecordBatch

from .conftest import (
    by_partition,
    drain,
    joined,
    messages,
    numbered,
    numbered_messages,
    partitions_for,
    read_until,
    requires,
    run_on,
    settle,
    values,
)


def test_requires_skips_naming_the_capability_the_driver_does_not_declare() -> None:
    queue = cast(
        Broker,
        SimpleNamespace(
            url="oms:mqtt://user:secret@host:1883",
            capabilities=QUEUE_CAPABILITIES,
        ),
    )
    requires(queue, "acks", "groups")  # declared: no skip
    with pytest.raises(pytest.skip.Exception, match=r"^mqtt does not declare log$"):
        requires(queue, "acks", "log")
    with pytest.raises(pytest.skip.Exception, match=r"^mqtt does not declare transactions$"):
        requires(queue, "transactions")
    with pytest.raises(ValueError, match="unknown broker capability"):
        requires(queue, "seek")  # type: ignore[arg-type]


def test_round_trip_preserves_keys_values_headers_and_timestamps(
    broker: Broker, topic_name: str, group: str
) -> None:
    sent = MessageBatch.build(
        values=[b"plain", b"", None, b"\x00\xff binary"],
        keys=[b"k1", None, b"", b"k4"],
        timestamps=[1, 1_700_000_000_123, 2**40, 0],
        headers=[{"a": b"1", "b": b""}, None, {}, {"trace": b"\x00\x01", "empty": b""}],
        message_ids=["id-1", None, "id-3", "id-4"],
    )

    async def body() -> list[ConsumedBatch]:
        await broker.create_topic(topic_name)
        consumer = await joined(broker, group, [topic_name])
        producer = await broker.producer()
        results = await producer.send(topic_name, sent)
        assert [(r.topic, r.partition, r.count) for r in results] == [(topic_name, 0, 4)]
        return await read_until(consumer, lambda got: len(values(got)) >= 4)

    batches = run_on(broker, body())
    assert {(b.topic, b.partition) for b in batches} == {(topic_name, 0)}
    received = MessageBatch.concat([b.messages for b in batches])
    assert received.keys.to_pylist() == sent.keys.to_pylist()
    assert received.values.to_pylist() == sent.values.to_pylist()
    assert received.timestamps.to_pylist() == sent.timestamps.to_pylist()
    assert [received.header_dict(i) for i in range(4)] == [sent.header_dict(i) for i in range(4)]
    assert received.headers.to_pylist() == sent.headers.to_pylist()  # null vs empty kept
    assert received.message_ids.to_pylist() == ["id-1", None, "id-3", "id-4"]
    assert received.header_dict(0)["oms.message_id"] == b"id-1"


def test_json_bodies_arrive_labelled_application_json(
    broker: Broker, topic_name: str, group: str
) -> None:
    """``format: json`` messages as the runtime builds them (the converter's ``content-type``
    first, then the record's headers) come back with the same headers in the same order:
    every driver carries the label, as its broker's content type where it has one (AMQP,
    MQTT 5; see the drivers' own tests) and gives it back as the first header."""
    rows = pa.record_batch({"id": pa.array([1, 2, 3], pa.int64())})
    record_headers = pa.array(
        [[("trace", b"t1")], None, [("content-type", b"text/plain"), ("x", b"")]], HEADERS_TYPE
    )
    part = RecordBatch(rows, from_arrow_schema(rows.schema, name="t"))
    encoded = JsonConverter().encode(topic_name, part)
    sent = MessageBatch.build(
        values=encoded.values, headers=merged_headers(encoded.headers, record_headers)
    )

    async def body() -> list[ConsumedBatch]:
        await broker.create_topic(topic_name)
        consumer = await joined(broker, group, [topic_name])
        producer = await broker.producer()
        await producer.send(topic_name, sent)
        return await read_until(consumer, lambda got: len(values(got)) >= 3)

    received = MessageBatch.concat([b.messages for b in run_on(broker, body())])
    assert received.values.to_pylist() == [b'{"id":1}', b'{"id":2}', b'{"id":3}']
    assert received.headers.to_pylist() == [
        [("content-type", b"application/json"), ("trace", b"t1")],
        [("content-type", b"application/json")],
        [("content-type", b"application/json"), ("x", b"")],  # the record's own gave way
    ]


def test_headers_keep_null_apart_from_empty(broker: Broker, topic_name: str, group: str) -> None:
    mixed: list[dict[str, bytes] | None] = [
        None,
        {},
        {"e": b""},
        {"a": b"1", "b": b"\x00", "c": b""},
        None,
        {},
    ]
    batches = [
        MessageBatch.build(messages(0, 6), headers=mixed),
        MessageBatch.build(messages(6, 9), headers=[None, None, None]),  # no headers at all
        MessageBatch.build(messages(9, 12), headers=[{}, {}, {}]),  # all empty
    ]

    async def body() -> list[ConsumedBatch]:
        await broker.create_topic(topic_name)
        consumer = await joined(broker, group, [topic_name])
        producer = await broker.producer()
        for batch in batches:
            await producer.send(topic_name, batch)
        return await read_until(consumer, lambda got: len(values(got)) >= 12)

    got = run_on(broker, body())
    received = MessageBatch.concat([b.messages for b in got])
    assert received.values.to_pylist() == messages(0, 12)
    expected = [h for b in batches for h in b.headers.to_pylist()]
    assert expected[:3] == [None, [], [("e", b"")]]
    assert received.headers.to_pylist() == expected


def test_keys_round_trip_and_each_keys_messages_keep_their_order(
    broker: Broker, topic_name: str, group: str
) -> None:
    async def body() -> list[ConsumedBatch]:
        await broker.create_topic(topic_name, TopicSettings(partitions=partitions_for(broker, 3)))
        consumer = await joined(broker, group, [topic_name])
        producer = await broker.producer()
        for start in range(0, 200, 50):
            await producer.send(topic_name, numbered_messages(start, 50, key_space=7))
        return await read_until(consumer, lambda got: len(values(got)) >= 200)

    batches = run_on(broker, body())
    read: dict[bytes, list[int]] = {}
    partitions_of_key: dict[bytes, set[int]] = {}
    for batch in batches:
        keys = batch.messages.keys.to_pylist()
        for key, number in zip(keys, numbered(values([batch])), strict=True):
            assert key == f"k{number % 7}".encode(), f"m{number} came back with key {key!r}"
            read.setdefault(key, []).append(number)
            partitions_of_key.setdefault(key, set()).add(batch.partition)
    assert sorted(n for ns in read.values() for n in ns) == list(range(200))
    for key, numbers in read.items():
        assert numbers == sorted(numbers), f"messages of key {key!r} out of order: {numbers}"
    assert all(len(p) == 1 for p in partitions_of_key.values()), partitions_of_key
    # One producer's messages of one partition are stored in send order.
    for tp, read_values in by_partition(batches).items():
        assert numbered(read_values) == sorted(numbered(read_values)), tp


def test_a_created_topic_keeps_its_partition_count_in_list_topics(
    broker: Broker, topic_name: str
) -> None:
    async def body() -> None:
        count = partitions_for(broker, 3)
        await broker.create_topic(topic_name, TopicSettings(partitions=count))
        await broker.create_topic(topic_name, TopicSettings(partitions=5))  # exists: unchanged
        await broker.create_topic(f"{topic_name}-two", TopicSettings(partitions=1))
        producer = await broker.producer()
        await producer.send(topic_name, numbered_messages(0, 12, key_space=12))
        await producer.send(f"{topic_name}-auto", numbered_messages(0, 2))
        topics = {t.name: t.partitions for t in await broker.list_topics()}
        assert topics[topic_name] == count
        assert topics[f"{topic_name}-two"] == 1
        assert topics[f"{topic_name}-auto"] == 1  # created by the first send, with one

    run_on(broker, body())


def test_a_pattern_subscription_picks_up_a_topic_created_later(
    broker: Broker, topic_name: str, group: str
) -> None:
    early, late = f"{topic_name}.early", f"{topic_name}.late"
    unmatched = [f"{topic_name}.late2", f"x{topic_name}.late", f"{topic_name}.late.x"]

    async def body() -> tuple[list[ConsumedBatch], list[int]]:
        await broker.create_topic(early)
        consumer = await joined(broker, group, pattern=re.escape(topic_name) + r"\.[a-z]+")
        producer = await broker.producer()
        await producer.send(early, numbered_messages(0, 2))
        batches = await read_until(consumer, lambda got: len(values(got)) >= 2)
        await broker.create_topic(late)
        for name in unmatched:  # the whole name must match, not a part of it
            await broker.create_topic(name)
            await producer.send(name, numbered_messages(900, 1))
        # Publish until the subscription has found the new topic (a queue broker only keeps
        # what arrives after that), then read on until the newest message arrives.
        sent: list[int] = []
        deadline = time.monotonic() + 15
        while not any(b.topic == late for b in batches):
            assert time.monotonic() < deadline, "the new topic was never picked up"
            await producer.send(late, numbered_messages(100 + len(sent), 1))
            sent.append(100 + len(sent))
            batches += await consumer.poll(100, 0.2)
        last = f"m{sent[-1]}".encode()
        if last not in values(batches):
            batches += await read_until(consumer, lambda got: last in values(got), timeout=5)
        batches += await drain(consumer)
        return batches, sent

    batches, sent = run_on(broker, body())
    read = by_partition(batches)
    assert {t for t, _ in read} == {early, late}, "only topics whose whole name matches"
    assert read[(early, 0)] == messages(0, 2)
    late_numbers = numbered(read[(late, 0)])
    assert late_numbers == sent[len(sent) - len(late_numbers) :], "a gap or a repeat"
    if broker.capabilities.log:  # start="earliest": from the topic's first message
        assert late_numbers == sent


def test_poll_times_out_with_nothing_and_wakes_for_new_data(
    broker: Broker, topic_name: str, group: str
) -> None:
    async def body() -> tuple[float, list[ConsumedBatch], float | None]:
        await broker.create_topic(topic_name)
        consumer = await broker.consumer(group, [topic_name])
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
        first = len(values(got))
        while len(values(got)) < 3 and time.monotonic() - started < 5:
            # The woken poll returns what has come: messages may arrive one by one (MQTT).
            got += await consumer.poll(10, timeout=0.5)
        return waited, got, woke if first else None

    waited, got, woke = run_on(broker, body())
    assert 0.15 <= waited < 1.0
    assert values(got) == messages(0, 3)
    assert woke is not None and woke < 2.0, "the poll woke with nothing"


def test_polls_never_return_more_than_max_messages(
    broker: Broker, topic_name: str, group: str
) -> None:
    async def body() -> list[list[ConsumedBatch]]:
        await broker.create_topic(topic_name)
        consumer = await joined(broker, group, [topic_name])
        producer = await broker.producer()
        for i in range(5):
            await producer.send(topic_name, numbered_messages(i * 7, 7))
        polls: list[list[ConsumedBatch]] = []
        deadline = time.monotonic() + 15
        while sum(len(values(got)) for got in polls) < 35 and time.monotonic() < deadline:
            if got := await consumer.poll(10, timeout=0.2):
                polls.append(got)
        polls.append(await drain(consumer, max_messages=10))
        return polls

    polls = run_on(broker, body())
    assert all(len(values(got)) <= 10 for got in polls), [len(values(got)) for got in polls]
    assert [v for got in polls for v in values(got)] == messages(0, 35)


def test_two_groups_are_independent(broker: Broker, topic_name: str, group: str) -> None:
    async def body() -> tuple[list[bytes], list[bytes], list[bytes]]:
        await broker.create_topic(topic_name)
        one = await joined(broker, f"{group}-one", [topic_name])
        two = await joined(broker, f"{group}-two", [topic_name])
        producer = await broker.producer()
        await producer.send(topic_name, numbered_messages(0, 10))
        read_one = await read_until(one, lambda got: len(values(got)) >= 10)
        await settle(broker, one, read_one)
        await one.close()
        two_values = values(await read_until(two, lambda got: len(values(got)) >= 10))
        again = await broker.consumer(f"{group}-one", [topic_name])
        again_values = values(await drain(again))  # group one processed everything already
        await producer.send(topic_name, numbered_messages(10, 3))
        again_values += values(await read_until(again, lambda got: len(values(got)) >= 3))
        again_values += values(await drain(again))
        return values(read_one), two_values, again_values

    one_values, two_values, again_values = run_on(broker, body())
    assert one_values == messages(0, 10)
    assert two_values == messages(0, 10)
    assert again_values == messages(10, 13)


def test_unsettled_messages_are_redelivered_to_the_next_member(
    broker: Broker, topic_name: str, group: str
) -> None:
    """A consumer closed without committing (log) or acknowledging (queue) what it read: a new
    member of the group gets exactly those messages again, and not the settled ones."""

    async def body() -> tuple[list[bytes], list[bytes], list[bytes]]:
        await broker.create_topic(topic_name)
        first = await joined(broker, group, [topic_name])
        producer = await broker.producer()
        await producer.send(topic_name, numbered_messages(0, 20))
        head = await read_until(first, bool, max_messages=8)
        await settle(broker, first, head)
        rest = await read_until(
            first, lambda got: len(values(head)) + len(values(got)) >= 20, max_messages=8
        )
        await first.close()  # without settling ``rest``
        second = await broker.consumer(group, [topic_name])
        again = values(await read_until(second, lambda got: len(values(got)) >= len(rest)))
        again += values(await drain(second))
        return values(head), values(rest), again

    head, rest, again = run_on(broker, body())
    assert 0 < len(head) <= 8
    assert head + rest == messages(0, 20)
    assert Counter(again) == Counter(rest), "exactly the unsettled messages, once each"


def test_paused_partitions_return_nothing_until_resumed(
    broker: Broker, topic_name: str, group: str
) -> None:
    """Pausing keeps the member and its positions: what it read before is not read again."""

    async def body() -> None:
        count = partitions_for(broker, 2)
        await broker.create_topic(topic_name, TopicSettings(partitions=count))
        everything = {(topic_name, p) for p in range(count)}
        consumer = await joined(broker, group, [topic_name])
        producer = await broker.producer()

        async def send_to_each(start: int) -> None:
            for p in range(count):
                await producer.send(topic_name, numbered_messages(start + 10 * p, 5), p)

        await send_to_each(0)
        first = await read_until(consumer, lambda got: len(values(got)) >= 5 * count)
        assert sorted(numbered(values(first))) == [
            n + 10 * p for p in range(count) for n in range(5)
        ]
        assert await consumer.assignment() == everything

        paused = (topic_name, 0)
        await consumer.pause({paused})
        await send_to_each(100)
        while_paused = []
        for _ in range(4):
            while_paused += await consumer.poll(100, timeout=0.15)
        assert paused not in by_partition(while_paused), "a paused partition returned messages"
        if count > 1:
            assert by_partition(while_paused) == {(topic_name, 1): messages(110, 115)}
        assert paused in await consumer.assignment(), "pausing must not give partitions up"

        await consumer.resume({paused})
        resumed = await read_until(consumer, lambda got: len(values(got)) >= 5)
        resumed += await drain(consumer)
        assert by_partition(resumed) == {paused: messages(100, 105)}, "no repeats, no gaps"

        # Everything paused: a poll waits its timeout and returns nothing.
        await consumer.pause(everything)
        await send_to_each(200)
        started = time.monotonic()
        assert await consumer.poll(100, timeout=0.2) == []
        assert 0.15 <= time.monotonic() - started < 1.0
        await consumer.resume(everything)
        last = await read_until(consumer, lambda got: len(values(got)) >= 5 * count)
        assert sorted(numbered(values(last))) == [
            200 + n + 10 * p for p in range(count) for n in range(5)
        ]

    run_on(broker, body())

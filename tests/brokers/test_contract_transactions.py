"""The broker contract for ``transactions``: a commit makes a transaction's messages and its
source positions visible together, an abort makes nothing visible, consumers only ever read
committed messages, and ``end_offsets`` is where a reader of everything committed ends up (a
``--once`` run that polls until it reaches them terminates)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

from omconnect.runtime.brokers import Broker, ConsumedBatch, Consumer, TopicPartition
from omconnect.runtime.brokers.base import TopicSettings

from .conftest import (
    by_partition,
    drain,
    joined,
    messages,
    numbered_messages,
    partitions_for,
    read_until,
    requires,
    run_on,
    values,
)


def _reached(batches: list[ConsumedBatch], start: dict[TopicPartition, int]) -> dict:
    """Where a reader that started at ``start`` (0 where missing) is after ``batches``, as
    the runtime counts it: the ``next_offset`` of the last batch of each partition."""
    positions = dict(start)
    for batch in batches:
        positions[(batch.topic, batch.partition)] = batch.next_offset
    return positions


async def _read_to_end_offsets(consumer: Consumer, timeout: float = 5.0) -> list[ConsumedBatch]:
    """What ``--once`` does: take the end offsets, poll until every partition reached them."""
    targets = await consumer.end_offsets()
    positions = dict.fromkeys(targets, 0)
    batches: list[ConsumedBatch] = []
    deadline = time.monotonic() + timeout
    while any(positions[tp] < end for tp, end in targets.items()):
        assert time.monotonic() < deadline, (
            f"a reader of everything never reaches the end offsets {targets}: it is at "
            f"{positions} (an aborted or open transaction's messages counted?)"
        )
        got = await consumer.poll(1000, 0.1)
        batches += got
        positions = _reached(got, positions)
    return batches


def test_commit_makes_messages_and_positions_visible_together(
    broker: Broker, topic_name: str, group: str
) -> None:
    requires(broker, "transactions")
    namespace = f"{topic_name}-positions"

    async def body() -> None:
        count = partitions_for(broker, 2)
        await broker.create_topic(topic_name, TopicSettings(partitions=count))
        consumer = await joined(broker, group, [topic_name])
        producer = await broker.producer()
        await producer.begin_transaction()
        for p in range(count):
            await producer.send(topic_name, numbered_messages(10 * p, 5), p)
        assert await drain(consumer, timeout=0.3) == [], "an open transaction's messages"
        assert await broker.transaction_positions(namespace) == {}
        declares_ends = broker.capabilities.end_offsets
        if declares_ends:
            assert await consumer.end_offsets() == {(topic_name, p): 0 for p in range(count)}

        async def observe() -> tuple[list[ConsumedBatch], dict[str, str], dict | None]:
            """The first poll that sees the commit, then what else is visible right then."""
            while not (got := await consumer.poll(1000, 0.01)):
                pass
            positions = await broker.transaction_positions(namespace)
            ends = await consumer.end_offsets() if declares_ends else None
            return got, positions, ends

        observer = asyncio.ensure_future(observe())
        await asyncio.sleep(0.05)
        await producer.commit_transaction(namespace, {"file-a": "17", "file-b": "3"})
        first, positions, ends_then = await observer
        assert positions == {"file-a": "17", "file-b": "3"}, "messages visible before positions"
        rest = await read_until(consumer, lambda got: len(values(first + got)) >= 5 * count)
        read = first + rest + await drain(consumer)
        assert sorted(values(read)) == sorted(
            m for p in range(count) for m in messages(10 * p, 10 * p + 5)
        )
        if ends_then is not None:
            assert ends_then == _reached(read, {}), "a part of the transaction became visible"

        # Later commits update the namespace's positions; other namespaces stay apart.
        await producer.begin_transaction()
        await producer.send(topic_name, numbered_messages(100, 1), 0)
        await producer.commit_transaction(namespace, {"file-a": "20", "file-c": "1"})
        await producer.begin_transaction()
        await producer.commit_transaction(f"{namespace}-other", {"file-a": "x"})
        assert await broker.transaction_positions(namespace) == {
            "file-a": "20",
            "file-b": "3",
            "file-c": "1",
        }
        assert await broker.transaction_positions(f"{namespace}-other") == {"file-a": "x"}
        assert values(await read_until(consumer, bool)) == [b"m100"]

    run_on(broker, body())


def test_abort_makes_nothing_visible(broker: Broker, topic_name: str, group: str) -> None:
    requires(broker, "transactions")
    namespace = f"{topic_name}-positions"

    async def body() -> tuple[list[ConsumedBatch], dict[str, str]]:
        count = partitions_for(broker, 2)
        await broker.create_topic(topic_name, TopicSettings(partitions=count))
        consumer = await joined(broker, group, [topic_name])
        producer = await broker.producer()
        await producer.begin_transaction()
        await producer.send(topic_name, numbered_messages(0, 3), 0)
        await producer.commit_transaction(namespace, {"file-a": "1"})
        await producer.begin_transaction()
        for p in range(count):
            await producer.send(topic_name, numbered_messages(100 + 10 * p, 5), p)
        await producer.abort_transaction()
        await producer.send(topic_name, numbered_messages(200, 3), 0)  # no transaction
        await producer.begin_transaction()  # a new transaction after an abort works
        await producer.send(topic_name, numbered_messages(300, 2), count - 1)
        await producer.commit_transaction()
        read = await read_until(consumer, lambda got: len(values(got)) >= 8)
        read += await drain(consumer, timeout=0.3)
        return read, await broker.transaction_positions(namespace)

    read, positions = run_on(broker, body())
    aborted = {m for p in range(2) for m in messages(100 + 10 * p, 106 + 10 * p)}
    assert not aborted & set(values(read)), "aborted messages were read"
    assert Counter(values(read)) == Counter(
        messages(0, 3) + messages(200, 203) + messages(300, 302)
    )
    assert by_partition(read)[(topic_name, 0)][:6] == messages(0, 3) + messages(200, 203)
    assert positions == {"file-a": "1"}, "an abort stores no positions"


def test_consumers_read_committed_only(broker: Broker, topic_name: str, group: str) -> None:
    """While a transaction is open, its messages are read by nobody (others' messages may
    wait behind them), and the end offsets are where a reader can get to."""
    requires(broker, "transactions")

    async def body() -> tuple[list[ConsumedBatch], list[ConsumedBatch]]:
        count = partitions_for(broker, 2)
        await broker.create_topic(topic_name, TopicSettings(partitions=count))
        consumer = await joined(broker, group, [topic_name])
        transactional, plain = await broker.producer(), await broker.producer()
        await transactional.begin_transaction()
        await transactional.send(topic_name, numbered_messages(0, 5), 0)
        await plain.send(topic_name, numbered_messages(100, 3), 0)
        if count > 1:
            await plain.send(topic_name, numbered_messages(200, 3), 1)
            while_open = await read_until(consumer, lambda got: len(values(got)) >= 3)
        else:
            while_open = []
        while_open += await drain(consumer, timeout=0.3)
        if broker.capabilities.end_offsets:
            reachable = _reached(while_open, dict.fromkeys(await consumer.end_offsets(), 0))
            assert await consumer.end_offsets() == reachable
        await transactional.commit_transaction()
        after = await read_until(
            consumer, lambda got: len(values(while_open + got)) >= 8 + 3 * (count > 1)
        )
        return while_open, after + await drain(consumer)

    while_open, after = run_on(broker, body())
    assert not set(values(while_open)) & set(messages(0, 5)), "read an open transaction"
    expected = messages(0, 5) + messages(100, 103)
    if partitions_for(broker, 2) > 1:
        expected += messages(200, 203)
        assert by_partition(while_open)[(topic_name, 1)] == messages(200, 203)
    assert Counter(values(while_open + after)) == Counter(expected)


def test_end_offsets_leave_out_an_aborted_tail(broker: Broker, topic_name: str, group: str) -> None:
    """A partition ending in aborted messages (or holding nothing else): a ``--once`` reader
    polling until it reaches the end offsets terminates, having read the committed ones."""
    requires(broker, "transactions", "end_offsets")

    async def body() -> list[ConsumedBatch]:
        count = partitions_for(broker, 2)
        await broker.create_topic(topic_name, TopicSettings(partitions=count))
        producer = await broker.producer()
        await producer.begin_transaction()
        await producer.send(topic_name, numbered_messages(0, 4), 0)
        await producer.commit_transaction()
        await producer.begin_transaction()
        for p in range(count):
            await producer.send(topic_name, numbered_messages(100 + 10 * p, 6), p)
        await producer.abort_transaction()
        consumer = await broker.consumer(group, [topic_name])
        return await _read_to_end_offsets(consumer)

    read = run_on(broker, body())
    assert values(read) == messages(0, 4)

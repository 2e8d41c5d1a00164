"""Producer transactions of the embedded broker: commit and abort, what consumers see while a
transaction is open, and a producer killed with SIGKILL inside one."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from omconnect.runtime.brokers import Consumer, open_broker
from omconnect.runtime.brokers.base import BrokerError, TopicSettings
from omconnect.runtime.brokers.embedded import EmbeddedBroker

from .conftest import numbered_messages, run

Seen = tuple[str, int, int, bytes]

_SEND_IN_A_TRANSACTION_THEN_HANG = """
import asyncio, sys
from omconnect.runtime.brokers import open_broker
from omconnect.schemas.message_batch import MessageBatch

async def main(url, then):
    broker = open_broker(url)
    producer = await broker.producer()
    await producer.begin_transaction()
    for i in range(3):
        values = [f"doomed-{i}-{j}".encode() for j in range(40)]
        await producer.send("t", MessageBatch.build(values))
    if then == "commit":
        await producer.commit_transaction()
    print("sent", flush=True)
    await asyncio.sleep(600)

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


async def _drain(consumer: Consumer, timeout: float = 0.3) -> list[Seen]:
    """Every message the consumer returns until a poll comes back empty (the first poll
    waits up to ``timeout`` seconds, the others briefly)."""
    seen: list[Seen] = []
    while batches := await consumer.poll(1000, timeout):
        timeout = 0.1
        for batch in batches:
            offsets = batch.messages.offsets
            assert offsets is not None
            values = batch.messages.values.to_pylist()
            seen += [
                (batch.topic, batch.partition, o, v)
                for o, v in zip(offsets.to_pylist(), values, strict=True)
            ]
    return seen


def _values(seen: list[Seen]) -> list[bytes]:
    return [value for _, _, _, value in seen]


def _count(log: Path, table: str) -> int:
    connection = sqlite3.connect(log)
    try:
        return int(connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
    finally:
        connection.close()


def test_the_embedded_broker_declares_transactions_and_retention() -> None:
    capabilities = EmbeddedBroker.capabilities
    assert capabilities.transactions and capabilities.retention
    assert not capabilities.compaction


def test_commit_shows_the_messages_and_stores_the_positions_together(tmp_path: Path) -> None:
    async def body() -> None:
        broker = EmbeddedBroker(tmp_path)
        await broker.create_topic("t", TopicSettings(partitions=2))
        producer = await broker.producer()
        consumer = await broker.consumer("g", ["t"])
        await producer.begin_transaction()
        await producer.send("t", numbered_messages(0, 5), partition=0)
        await producer.send("t", numbered_messages(5, 5), partition=1)
        assert await _drain(consumer) == []
        assert await broker.transaction_positions("orders") == {}
        await producer.commit_transaction("orders", {"file-a": "17", "file-b": "3"})
        seen = await _drain(consumer, timeout=1)
        assert sorted(_values(seen)) == sorted(f"m{n}".encode() for n in range(10))
        assert await broker.transaction_positions("orders") == {"file-a": "17", "file-b": "3"}

        # Another commit upserts the positions of the same namespace, others stay apart.
        await producer.begin_transaction()
        await producer.send("t", numbered_messages(10, 1), partition=0)
        await producer.commit_transaction("orders", {"file-a": "20", "file-c": "1"})
        await producer.begin_transaction()
        await producer.commit_transaction("users", {"file-a": "x"})
        assert await broker.transaction_positions("orders") == {
            "file-a": "20",
            "file-b": "3",
            "file-c": "1",
        }
        assert await broker.transaction_positions("users") == {"file-a": "x"}
        assert _values(await _drain(consumer, timeout=1)) == [b"m10"]
        await broker.close()

    run(body())
    log = tmp_path / "broker.sqlite"
    assert _count(log, "transactions") == 0
    assert _count(log, "transaction_ranges") == 0


def test_abort_shows_nothing_and_later_messages_are_read_after_the_gap(tmp_path: Path) -> None:
    async def body() -> list[Seen]:
        broker = EmbeddedBroker(tmp_path)
        producer = await broker.producer()
        await producer.send("t", numbered_messages(0, 2))
        await producer.begin_transaction()
        await producer.send("t", numbered_messages(2, 5))
        await producer.send("t", numbered_messages(7, 3))
        await producer.abort_transaction()
        await producer.send("t", numbered_messages(10, 2))
        await producer.begin_transaction()
        await producer.send("t", numbered_messages(12, 1))
        await producer.commit_transaction()
        consumer = await broker.consumer("g", ["t"])
        seen = await _drain(consumer, timeout=1)
        await consumer.commit({("t", 0): seen[-1][2] + 1})
        assert await consumer.committed() == {("t", 0): 13}
        await broker.close()
        return seen

    seen = run(body())
    assert [(offset, value) for _, _, offset, value in seen] == [
        (0, b"m0"),
        (1, b"m1"),
        (10, b"m10"),
        (11, b"m11"),
        (12, b"m12"),
    ]
    # The aborted messages are gone from the file, not only hidden.
    assert _count(tmp_path / "broker.sqlite", "segments") == 3


def test_an_open_transaction_hides_its_partition_but_not_the_others(tmp_path: Path) -> None:
    async def body() -> None:
        broker = EmbeddedBroker(tmp_path)
        await broker.create_topic("t", TopicSettings(partitions=2))
        transactional = await broker.producer()
        plain = await broker.producer()
        consumer = await broker.consumer("g", ["t", "u"])
        await transactional.begin_transaction()
        await transactional.send("t", numbered_messages(0, 3), partition=0)
        await plain.send("t", numbered_messages(100, 2), partition=1)
        await plain.send("u", numbered_messages(200, 2))
        # Sent after the transaction's first message: waits for the transaction, as in Kafka.
        await plain.send("t", numbered_messages(300, 1), partition=0)
        seen = await _drain(consumer, timeout=1)
        assert sorted((t, p, v) for t, p, _, v in seen) == [
            ("t", 1, b"m100"),
            ("t", 1, b"m101"),
            ("u", 0, b"m200"),
            ("u", 0, b"m201"),
        ]
        await transactional.commit_transaction()
        seen = await _drain(consumer, timeout=1)
        assert [(p, o, v) for _, p, o, v in seen] == [
            (0, 0, b"m0"),
            (0, 1, b"m1"),
            (0, 2, b"m2"),
            (0, 3, b"m300"),
        ]
        await broker.close()

    run(body())


def test_a_transaction_past_its_timeout_is_aborted_by_readers(tmp_path: Path) -> None:
    url = f"embedded://{tmp_path}?transaction_timeout=2"

    async def body() -> None:
        broker = open_broker(url)
        producer = await broker.producer()
        await producer.begin_transaction()
        begun = time.monotonic()
        await producer.send("t", numbered_messages(0, 3))
        await producer.send("t", numbered_messages(3, 1))
        await (await broker.producer()).send("t", numbered_messages(4, 1))
        consumer = await open_broker(url).consumer("g", ["t"])
        assert await _drain(consumer, timeout=0.2) == []
        assert time.monotonic() - begun < 2, "too slow to see the transaction open"
        time.sleep(2.2 - (time.monotonic() - begun))
        assert _values(await _drain(consumer, timeout=1)) == [b"m4"]
        with pytest.raises(BrokerError, match="transaction_timeout"):
            await producer.commit_transaction()
        # The producer is usable again: the failed transaction is over.
        await producer.begin_transaction()
        await producer.send("t", numbered_messages(5, 1))
        await producer.commit_transaction()
        assert _values(await _drain(consumer, timeout=1)) == [b"m5"]
        await consumer.close()
        await broker.close()

    run(body())


def test_transaction_misuse_is_refused(tmp_path: Path) -> None:
    async def body() -> None:
        broker = EmbeddedBroker(tmp_path)
        producer = await broker.producer()
        with pytest.raises(BrokerError, match="no transaction is open"):
            await producer.commit_transaction()
        await producer.abort_transaction()  # nothing open: nothing to do
        await producer.begin_transaction()
        with pytest.raises(BrokerError, match="open already"):
            await producer.begin_transaction()
        with pytest.raises(ValueError, match="namespace"):
            await producer.commit_transaction(None, {"p": "1"})
        await broker.close()

    run(body())
    with pytest.raises(ValueError, match="transaction_timeout"):
        open_broker(f"embedded://{tmp_path}?transaction_timeout=soon")


def _start_doomed_producer(url: str, then: str = "hang") -> subprocess.Popen[str]:
    child = subprocess.Popen(
        [sys.executable, "-c", _SEND_IN_A_TRANSACTION_THEN_HANG, url, then],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    line = child.stdout.readline()
    if line != "sent\n":
        child.kill()
        child.wait()
        raise AssertionError(f"the transactional producer failed before it was killed: {line!r}")
    return child


def _kill(child: subprocess.Popen[str]) -> None:
    os.kill(child.pid, signal.SIGKILL)
    assert child.wait(timeout=10) == -signal.SIGKILL
    assert child.stdout is not None
    child.stdout.close()


def test_sigkill_inside_a_transaction_leaves_nothing_and_does_not_block_readers(
    tmp_path: Path,
) -> None:
    url = f"embedded://{tmp_path}"  # the default 60 s timeout: the dead owner is detected
    child = _start_doomed_producer(url)
    try:

        async def while_alive() -> list[Seen]:
            broker = open_broker(url)
            await (await broker.producer()).send("t", numbered_messages(0, 2))
            seen = await _drain(await broker.consumer("g", ["t"]))
            await broker.close()
            return seen

        assert run(while_alive()) == []  # held back by the live producer's transaction
    finally:
        _kill(child)

    async def after_the_kill() -> list[Seen]:
        broker = open_broker(url)
        consumer = await broker.consumer("g", ["t"])
        seen = await _drain(consumer, timeout=1)
        await (await broker.producer()).send("t", numbered_messages(2, 1))
        seen += await _drain(consumer, timeout=1)
        await broker.close()
        return seen

    started = time.monotonic()
    seen = run(after_the_kill())
    assert time.monotonic() - started < 10
    assert [(o, v) for _, _, o, v in seen] == [(120, b"m0"), (121, b"m1"), (122, b"m2")]
    log = tmp_path / "broker.sqlite"
    assert _count(log, "transactions") == 0
    assert _count(log, "segments") == 2
    assert not list((tmp_path / "broker.sqlite-producers").iterdir())


def test_a_new_transaction_aborts_the_one_of_a_killed_producer(tmp_path: Path) -> None:
    url = f"embedded://{tmp_path}"
    _kill(_start_doomed_producer(url))
    log = tmp_path / "broker.sqlite"
    assert _count(log, "transactions") == 1

    async def body() -> list[Seen]:
        broker = open_broker(url)
        producer = await broker.producer()
        await producer.begin_transaction()
        assert _count(log, "transactions") == 0
        await producer.send("t", numbered_messages(0, 3))
        await producer.commit_transaction("pipeline", {"0": "3"})
        seen = await _drain(await broker.consumer("g", ["t"]), timeout=1)
        assert await broker.transaction_positions("pipeline") == {"0": "3"}
        await broker.close()
        return seen

    assert [(o, v) for _, _, o, v in run(body())] == [(120, b"m0"), (121, b"m1"), (122, b"m2")]


def test_the_lock_files_of_dead_producers_are_cleaned_up(tmp_path: Path) -> None:
    url = f"embedded://{tmp_path}"
    locks = tmp_path / "broker.sqlite-producers"
    _kill(_start_doomed_producer(url, then="commit"))  # dies with no transaction open
    assert len(list(locks.iterdir())) == 1

    async def body() -> list[str]:
        broker = EmbeddedBroker(tmp_path)
        producer = await broker.producer()
        await producer.begin_transaction()
        assert [path.name for path in locks.iterdir()] == [f"{producer.producer_id}.lock"]
        await producer.commit_transaction()
        await broker.close()
        return [path.name for path in locks.iterdir()]

    assert run(body()) == []

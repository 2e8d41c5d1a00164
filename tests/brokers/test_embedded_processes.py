"""The embedded broker shared by processes: a producer in one process while another reads,
and a producer killed with SIGKILL in the middle of sending."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa

from omconnect.runtime.brokers import ConsumedBatch, open_broker

from .conftest import run

_PRODUCE_SLOWLY = """
import asyncio, sys, time
from omconnect.runtime.brokers import open_broker
from omconnect.runtime.brokers.base import TopicSettings
from omconnect.schemas.message_batch import MessageBatch

async def main(url, topic):
    broker = open_broker(url)
    producer = await broker.producer()
    for i in range(20):
        values = [f"{i * 100 + j}".encode() for j in range(100)]
        await producer.send(topic, MessageBatch.build(values))
        time.sleep(0.02)
    await broker.close()

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""

_PRODUCE_UNTIL_KILLED = """
import asyncio, random, sys
from omconnect.runtime.brokers import open_broker
from omconnect.runtime.brokers.base import TopicSettings
from omconnect.schemas.message_batch import MessageBatch

async def main(url, topic):
    broker = open_broker(url)
    await broker.create_topic(topic, TopicSettings(partitions=2))
    producer = await broker.producer()
    rng = random.Random(7)
    batch = 0
    while True:
        size = rng.randint(1, 400)
        values = [f"{batch}:{j}".encode() for j in range(size)]
        keys = [f"{rng.random()}".encode() for _ in range(size)]
        for ack in await producer.send(topic, MessageBatch.build(values, keys=keys)):
            print(batch, ack.partition, ack.first_offset, ack.count, flush=True)
        batch += 1

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


def test_a_consumer_reads_while_another_process_produces(tmp_path: Path) -> None:
    url = f"embedded://{tmp_path / 'broker'}"
    producer = subprocess.Popen([sys.executable, "-c", _PRODUCE_SLOWLY, url, "events"])

    async def consume() -> tuple[list[ConsumedBatch], int]:
        broker = open_broker(url)
        consumer = await broker.consumer("tail", ["events"])
        batches: list[ConsumedBatch] = []
        polls_with_data = 0
        deadline = time.monotonic() + 20
        while sum(len(b.messages) for b in batches) < 2000 and time.monotonic() < deadline:
            got = await consumer.poll(150, timeout=0.5)
            polls_with_data += bool(got)
            batches.extend(got)
        await broker.close()
        return batches, polls_with_data

    try:
        batches, polls_with_data = run(consume())
    finally:
        assert producer.wait(timeout=20) == 0
    offsets = [o for b in batches for o in b.messages.offsets.to_pylist()]  # type: ignore[union-attr]
    values = [v for b in batches for v in b.messages.values.to_pylist()]
    assert offsets == list(range(2000))
    assert values == [str(n).encode() for n in range(2000)]
    assert polls_with_data > 1


def test_every_acknowledged_message_survives_sigkill(tmp_path: Path) -> None:
    url = f"embedded://{tmp_path / 'broker'}"
    process = subprocess.Popen(
        [sys.executable, "-c", _PRODUCE_UNTIL_KILLED, url, "crash"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    acks: list[tuple[int, int, int, int]] = []
    try:
        while len(acks) < 60:
            line = process.stdout.readline()
            assert line, "the producer exited before it was killed"
            batch, partition, first, count = map(int, line.split())
            acks.append((batch, partition, first, count))
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    # Acks printed before the kill but not yet read are acknowledged too.
    for line in process.stdout.read().splitlines():
        if len(line.split()) == 4:
            batch, partition, first, count = map(int, line.split())
            acks.append((batch, partition, first, count))
    process.stdout.close()

    _assert_log_consistent(tmp_path / "broker" / "broker.sqlite")

    async def read_all() -> dict[int, dict[int, bytes]]:
        broker = open_broker(url)
        consumer = await broker.consumer("check", ["crash"])
        by_partition: dict[int, dict[int, bytes]] = {0: {}, 1: {}}
        while got := await consumer.poll(10_000, timeout=0.1):
            for batch in got:
                offsets = batch.messages.offsets
                assert offsets is not None
                values = batch.messages.values.to_pylist()
                by_partition[batch.partition].update(zip(offsets.to_pylist(), values, strict=True))
        await broker.close()
        return by_partition

    stored = run(read_all())
    for partition, messages in stored.items():
        assert sorted(messages) == list(range(len(messages))), f"gap in partition {partition}"
    for batch, partition, first, count in acks:
        rows = [stored[partition].get(offset) for offset in range(first, first + count)]
        assert all(r is not None and r.startswith(f"{batch}:".encode()) for r in rows)
        indices = [int(r.split(b":")[1]) for r in rows if r is not None]
        assert indices == sorted(indices)


def _assert_log_consistent(log_path: Path) -> None:
    """Segments chain without gaps or overlaps up to each partition's high-water, and every
    body decodes to exactly its count of messages."""
    connection = sqlite3.connect(log_path)
    try:
        highs = dict(
            ((t, p), (start, end))
            for t, p, start, end in connection.execute(
                "SELECT topic, partition, start_offset, next_offset FROM partitions"
            )
        )
        for (topic, partition), (start, end) in highs.items():
            expected = start
            for base, count, body in connection.execute(
                "SELECT base_offset, count, body FROM segments "
                "WHERE topic = ? AND partition = ? ORDER BY base_offset",
                (topic, partition),
            ):
                assert base == expected, f"{topic}/{partition}: segment at {base}, not {expected}"
                rows = pa.ipc.open_stream(pa.py_buffer(body)).read_all().num_rows
                assert rows == count
                expected = base + count
            assert expected == end, f"{topic}/{partition}: segments end at {expected}, not {end}"
    finally:
        connection.close()


def test_two_processes_commit_one_group_without_locking_errors(tmp_path: Path) -> None:
    url = f"embedded://{tmp_path / 'broker'}"
    committer = """
import asyncio, sys
from omconnect.runtime.brokers import open_broker
from omconnect.runtime.brokers.base import TopicSettings

async def main(url, partition):
    broker = open_broker(url)
    await broker.create_topic("shared", TopicSettings(partitions=2))
    consumer = await broker.consumer("g", ["shared"])
    for n in range(1, 201):
        await consumer.commit({("shared", partition): n})
    await broker.close()

asyncio.run(main(sys.argv[1], int(sys.argv[2])))
"""
    processes = [subprocess.Popen([sys.executable, "-c", committer, url, str(p)]) for p in (0, 1)]
    assert [p.wait(timeout=30) for p in processes] == [0, 0]

    async def committed() -> dict[tuple[str, int], int]:
        broker = open_broker(url)
        consumer = await broker.consumer("g", ["shared"])
        result = await consumer.committed()
        await broker.close()
        return result

    assert run(committed()) == {("shared", 0): 200, ("shared", 1): 200}

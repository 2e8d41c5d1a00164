"""How a waiting poll of the embedded broker wakes: at once for an append of this process,
whichever broker of the process on the file made it; within about a second for another
process's, found by the process's one watcher of the file rather than by every consumer, and
within tens of milliseconds while another process keeps appending."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

from omconnect.runtime.brokers.embedded import EmbeddedBroker
from omconnect.runtime.brokers.embedded.consumer import WATCHED_LOOK_INTERVAL

from .conftest import numbered_messages


def test_an_append_by_another_broker_of_the_process_wakes_a_waiting_poll(
    tmp_path: Path,
) -> None:
    async def body() -> tuple[float, list[int]]:
        reader, writer = EmbeddedBroker(tmp_path), EmbeddedBroker(tmp_path)
        await writer.create_topic("t")
        consumer = await reader.consumer("g", ["t"])
        assert await consumer.poll(10, timeout=0.05) == []
        await asyncio.sleep(0)
        producer = await writer.producer()

        async def send_later() -> float:
            await asyncio.sleep(0.3)
            await producer.send("t", numbered_messages(0, 3))
            return time.monotonic()

        sending = asyncio.create_task(send_later())
        got = await consumer.poll(10, timeout=30)
        received = time.monotonic()
        sent = await sending
        for broker in (reader, writer):
            await broker.close()
        return received - sent, [len(batch.messages) for batch in got]

    latency, counts = asyncio.run(body())
    assert counts == [3]
    assert latency < 0.1, "woken by the append, not by a look at the file"


CHILD = """
import asyncio, sys, time
from omconnect.runtime.brokers.embedded import EmbeddedBroker
from omconnect.schemas.message_batch import MessageBatch

async def main():
    broker = EmbeddedBroker(sys.argv[1])
    producer = await broker.producer()
    await producer.send("t", MessageBatch.build([b"a", b"b"]))
    print(time.time(), flush=True)
    await broker.close()

asyncio.run(main())
"""


def test_an_idle_poll_looks_at_the_file_only_when_another_process_changed_it(
    tmp_path: Path,
) -> None:
    async def body() -> tuple[int, int, float, list[int]]:
        broker = EmbeddedBroker(tmp_path)
        await broker.create_topic("t")
        consumer = await broker.consumer("g", ["t"])
        assert await consumer.poll(10, timeout=3) == []  # its looks back off to the longest
        looks = 0
        read = consumer._read_on_thread

        def counted(*args: object) -> object:
            nonlocal looks
            looks += 1
            return read(*args)  # type: ignore[arg-type]

        consumer._read_on_thread = counted  # type: ignore[method-assign]
        for _ in range(3):
            assert await consumer.poll(10, timeout=1) == []
        quiet = looks
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-c", CHILD, str(tmp_path), stdout=asyncio.subprocess.PIPE
        )
        assert child.stdout is not None
        sent = float((await child.stdout.readline()).decode())
        got = await consumer.poll(10, timeout=WATCHED_LOOK_INTERVAL)
        latency = time.time() - sent
        await child.wait()
        await broker.close()
        return quiet, looks - quiet, latency, [len(batch.messages) for batch in got]

    quiet, woken, latency, counts = asyncio.run(body())
    # Alone in its group, it leaves watching the file to the process's watcher...
    assert quiet == 0
    # ...which wakes it within about a second of another process's append.
    assert counts == [2]
    assert latency < 1.6
    assert woken <= 2


STREAMING_CHILD = """
import asyncio, sys, time
from omconnect.runtime.brokers.embedded import EmbeddedBroker
from omconnect.schemas.message_batch import MessageBatch

async def main():
    broker = EmbeddedBroker(sys.argv[1])
    producer = await broker.producer()
    for _ in range(40):
        await producer.send("t", MessageBatch.build([str(time.time()).encode()]))
        await asyncio.sleep(0.05)
    await broker.close()

asyncio.run(main())
"""


def test_a_stream_from_another_process_is_seen_within_tens_of_milliseconds(
    tmp_path: Path,
) -> None:
    """Once the watcher saw a change it looks again soon: each message of a steady stream
    (one every 50 ms) reaches the waiting poll well before the once-a-second look."""

    async def body() -> list[float]:
        broker = EmbeddedBroker(tmp_path)
        await broker.create_topic("t")
        consumer = await broker.consumer("g", ["t"])
        assert await consumer.poll(10, timeout=0.5) == []
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-c", STREAMING_CHILD, str(tmp_path)
        )
        delays: list[float] = []
        while len(delays) < 40:
            got = await consumer.poll(100, timeout=5)
            received = time.time()
            assert got, "the stream stopped reaching the consumer"
            delays += [received - float(v) for b in got for v in b.messages.values.to_pylist()]
        await child.wait()
        await broker.close()
        return delays

    delays = sorted(asyncio.run(body()))
    assert delays[len(delays) // 2] < 0.2, f"median {delays[len(delays) // 2]:.3f} s"

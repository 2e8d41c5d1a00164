"""A quick throughput reading of the embedded broker; it prints and asserts only counts.

Run with ``pytest -s tests/brokers/test_embedded_throughput.py`` to see the rates: 10,000
messages of ~120-byte values per batch, sent to and polled from one and four partitions.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from omconnect.runtime.brokers.base import TopicSettings
from omconnect.runtime.brokers.embedded import EmbeddedBroker
from omconnect.schemas.message_batch import MessageBatch

from .conftest import run

BATCH = 10_000
BATCHES = 30


def _batch(rng: np.random.Generator) -> MessageBatch:
    # Half random bytes, half repeated text: roughly what an encoded record looks like.
    body = np.concatenate(
        [rng.integers(0, 256, (BATCH, 60), dtype=np.uint8), np.full((BATCH, 60), 97, np.uint8)],
        axis=1,
    )
    offsets = np.arange(0, (BATCH + 1) * 120, 120, dtype=np.int32)
    values = pa.Array.from_buffers(
        pa.binary(), BATCH, [None, pa.py_buffer(offsets), pa.py_buffer(body.tobytes())]
    )
    keys = pa.array(rng.integers(0, 1 << 40, BATCH).astype(str)).cast(pa.binary())
    return MessageBatch.build(values, keys=keys, timestamps=1_700_000_000_000)


@pytest.mark.parametrize("partitions", [1, 4])
def test_send_and_poll_rates(tmp_path: Path, partitions: int) -> None:
    rng = np.random.default_rng(3)
    batches = [_batch(rng) for _ in range(BATCHES)]
    total = BATCH * BATCHES

    async def body() -> tuple[float, float, int]:
        broker = EmbeddedBroker(tmp_path)
        await broker.create_topic("bench", TopicSettings(partitions=partitions))
        producer = await broker.producer()
        started = time.perf_counter()
        for batch in batches:
            await producer.send("bench", batch)
        send_seconds = time.perf_counter() - started
        consumer = await broker.consumer("bench", ["bench"])
        received = 0
        started = time.perf_counter()
        while got := await consumer.poll(BATCH, timeout=0):
            received += sum(len(b.messages) for b in got)
        poll_seconds = time.perf_counter() - started
        await broker.close()
        return send_seconds, poll_seconds, received

    send_seconds, poll_seconds, received = run(body(), timeout=120)
    assert received == total
    print(
        f"\nembedded broker, {partitions} partition(s), {BATCH}-message batches of 120 B: "
        f"send {total / send_seconds:,.0f} msg/s, poll {total / poll_seconds:,.0f} msg/s"
    )

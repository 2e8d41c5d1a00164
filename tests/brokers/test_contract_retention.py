"""The broker contract for ``retention``: a topic created with ``retention_bytes`` loses its
oldest messages once it holds more, and consumers behind the new start read on from there."""

from __future__ import annotations

import asyncio
import random
import time

from omconnect.runtime.brokers import Broker, ConsumedBatch
from omconnect.runtime.brokers.base import TopicInfo, TopicSettings
from omconnect.schemas.message_batch import MessageBatch

from .conftest import (
    drain,
    joined,
    numbered,
    offsets,
    read_until,
    requires,
    run_on,
    settle,
    values,
)

_RETENTION_BYTES = 16_000


def _incompressible(start: int, count: int, rng: random.Random) -> MessageBatch:
    """Messages ``b"m<number>:"`` followed by 1000 random bytes, which no codec shrinks."""
    return MessageBatch.build(
        [f"m{n}:".encode() + rng.randbytes(1000) for n in range(start, start + count)]
    )


def test_retention_bytes_trims_old_messages_and_consumers_move_on(
    broker: Broker, topic_name: str, group: str
) -> None:
    requires(broker, "retention")
    rng = random.Random(20240601)

    async def body() -> tuple[list[ConsumedBatch], list[ConsumedBatch], int, TopicInfo, list]:
        await broker.create_topic(topic_name, TopicSettings(retention_bytes=_RETENTION_BYTES))
        reader = await joined(broker, group, [topic_name])
        producer = await broker.producer()
        await producer.send(topic_name, _incompressible(0, 8, rng))
        sent = 8
        head = await read_until(reader, lambda got: len(values(got)) >= 2, max_messages=2)
        await settle(broker, reader, head)
        # Keep publishing (a driver may enforce retention every so often) until it trims.
        deadline = time.monotonic() + 20
        while True:
            (info,) = [t for t in await broker.list_topics() if t.name == topic_name]
            if sent - info.messages > 2:  # trimmed past the reader's position
                break
            assert time.monotonic() < deadline, f"{sent} messages of 1 KB, nothing trimmed"
            await asyncio.sleep(0.2)
            await producer.send(topic_name, _incompressible(sent, 8, rng))
            sent += 8
        rest = await read_until(reader, lambda got: numbered(values(got))[-1:] == [sent - 1])
        rest += await drain(reader)
        fresh: list[ConsumedBatch] = []
        if broker.capabilities.log:  # a new group starts at the new first message
            fresh = await drain(await broker.consumer(f"{group}-fresh", [topic_name]))
        return head, rest, sent, info, fresh

    head, rest, sent, info, fresh = run_on(broker, body())
    assert numbered(values(head)) == [0, 1]
    assert info.messages < sent
    moved_on = numbered(values(rest))
    assert moved_on == list(range(moved_on[0], sent)), "read on without gaps up to the newest"
    assert moved_on[0] > 2, "the old messages are gone, the reader skipped to the new start"
    if broker.capabilities.log:
        kept = numbered(values(fresh))
        assert kept == list(range(kept[0], sent)) and kept[0] > 0
        assert offsets(fresh) == kept, "trimming keeps the offsets of the messages left"

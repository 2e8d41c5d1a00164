"""Checks the broker drivers' own tests (``tests/brokers/test_<driver>_driver.py``) share:
messages with every OpenMessaging field set and what a consumer gets back of them, URLs a
driver refuses, a driver opened where its client library is missing, and the error of a
server that is not there."""

from __future__ import annotations

import asyncio
import dataclasses
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence

import pytest

from omconnect.runtime.brokers import Broker, ConsumedBatch, open_broker
from omconnect.runtime.brokers.base import BrokerError
from omconnect.schemas.message import ExtensionHeader, Header, Message, messages_to_batch
from omconnect.schemas.message_batch import MessageBatch

# TEST-NET-1: nothing routes there, so a connection hangs (or fails at once).
NOWHERE = "192.0.2.1"


def messages_with_every_field(
    topic: str, properties: dict[str, bytes], count: int = 6
) -> list[Message]:
    """``count`` messages of ``topic`` with every header and extension header field set, a
    key that is binary for even numbers, ``properties``, and no body for every third one."""
    return [_with_every_field(number, topic, properties) for number in range(count)]


def _with_every_field(number: int, topic: str, properties: dict[str, bytes]) -> Message:
    return Message(
        header=Header(
            message_id=f"msg-{number}",
            destination=topic,
            born_timestamp=1_700_000_000_000 + number,
            born_host="host-1.example",
            qos=2,
            compression="zstd",
        ),
        extension_header=ExtensionHeader(
            store_timestamp=1_700_000_000_500,
            store_host="store-1",
            message_key=f"key-{number}".encode() if number % 2 else b"\x00\xff binary key",
            correlation_id="corr-7",
            delay_time=250,
            transaction_id="tx-42",
            expire_time=1_800_000_000_000,
            trace_id="00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            delivery_count=3,
            priority=9,
        ),
        properties=properties,
        data=f"payload {number}".encode() if number % 3 else None,
    )


def as_the_runtime_sends(messages: Sequence[Message]) -> MessageBatch:
    """``messages`` as the runtime publishes them: each id in the headers map (as
    ``oms.message_id``) and in the id column."""
    rows = messages_to_batch(list(messages))
    ids = [m.header.message_id for m in messages]
    return MessageBatch.build(
        rows.values, rows.keys, rows.timestamps, rows.headers, message_ids=ids
    )


def check_round_trip(
    sent: Sequence[Message], batches: Sequence[ConsumedBatch], topic: str, partition: int | None = 0
) -> None:
    """Check that ``batches`` hold ``sent``, read from ``partition`` of ``topic``: every
    field, the id column included."""
    received = MessageBatch.concat([b.messages for b in batches])
    got = [Message.from_batch_row(received, row, topic, partition) for row in range(len(received))]
    assert got == [
        dataclasses.replace(
            m, extension_header=dataclasses.replace(m.extension_header, partition=partition)
        )
        for m in sent
    ]
    assert received.message_ids.to_pylist() == [m.header.message_id for m in sent]


def refused_urls(problems: Sequence[tuple[str, str]], error: type[ValueError]) -> None:
    """``open_broker`` refuses each URL of ``problems`` with an ``error`` whose message matches
    the problem's pattern and never holds the password (``s3cret``) of a URL."""
    for url, problem in problems:
        with pytest.raises(error, match=problem) as caught:
            open_broker(url)
        assert "s3cret" not in str(caught.value), url


def open_without(library: str, url: str, error: str) -> str:
    """What ``open_broker(url)`` raises (the builtin exception ``error`` or a subclass) in a
    fresh Python where ``library`` cannot be imported; the core itself must import there."""
    code = (
        f"import sys; sys.modules[{library!r}] = None\n"
        "import omconnect.runtime.brokers as brokers\n"
        "try:\n"
        f"    brokers.open_broker({url!r})\n"
        f"except {error} as exc:\n"
        "    print(exc)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    return result.stdout


def unreachable_error(
    broker: Broker,
    operation: Callable[[], Awaitable[object]],
    secret: str = "s3cret",
    within: float = 5,
) -> str:
    """The ``BrokerError`` that ``operation`` on ``broker`` (whose server is not there) fails
    with: within ``within`` seconds, one line, without the URL's ``secret``. The broker is
    closed after."""

    async def attempt() -> None:
        try:
            async with asyncio.timeout(30):
                await operation()
        finally:
            await broker.close()

    started = time.monotonic()
    with pytest.raises(BrokerError) as caught:
        asyncio.run(attempt())
    took = time.monotonic() - started
    message = str(caught.value)
    assert took < within, f"gave up after {took:.1f} s"
    assert "\n" not in message
    assert secret not in message
    return message


def unreachable_errors(url: str, *operations: str) -> dict[str, str]:
    """What each of ``operations`` fails with (see ``unreachable_error``) on a broker of its
    own opened at ``url``, whose server is not there: ``list_topics``, ``send`` (a new
    producer's first), ``consumer`` (making one) or ``poll`` (a new consumer's first)."""
    said = {}
    for operation in operations:
        broker = open_broker(url)

        async def attempt(broker: Broker = broker, operation: str = operation) -> object:
            if operation == "list_topics":
                return await broker.list_topics()
            if operation == "send":
                return await (await broker.producer()).send("t", MessageBatch.build([b"m0"]))
            consumer = await broker.consumer("g", ["t"])
            return consumer if operation == "consumer" else await consumer.poll(10, 1)

        said[operation] = unreachable_error(broker, attempt)
    return said

"""Checks the broker drivers' own tests (``tests/brokers/test_<driver>_driver.py``) share: a
message with every OpenMessaging field set, a driver opened where its client library is
missing, and the error of a server that is not there."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable

import pytest

from omconnect.runtime.brokers import Broker
from omconnect.runtime.brokers.base import BrokerError
from omconnect.schemas.message import ExtensionHeader, Header, Message


def message_with_every_field(number: int, topic: str, properties: dict[str, bytes]) -> Message:
    """Message ``number`` of ``topic`` with every header and extension header field set, a
    key that is binary for even numbers, ``properties``, and no body for every third one."""
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
    broker: Broker, operation: Callable[[], Awaitable[object]], secret: str = "s3cret"
) -> str:
    """The ``BrokerError`` that ``operation`` on ``broker`` (whose server is not there) fails
    with: within 5 seconds, one line, without the URL's ``secret``. The broker is closed
    after."""

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
    assert took < 5, f"gave up after {took:.1f} s"
    assert "\n" not in message
    assert secret not in message
    return message

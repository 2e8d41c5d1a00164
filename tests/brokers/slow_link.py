"""``SlowLink``: a TCP proxy to a real server that carries a set number of bytes a second each
way, in small steps, and can stop carrying anything.

A send through it to a working server takes at least its bytes over the rate however fast the
machine is, while the server's acknowledgements keep coming every few milliseconds: the case
of a large send to a slow but working server. ``stall()`` is a server (or network path) that
hangs: the connection stays open and nothing comes back.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from omconnect.runtime.brokers import Broker
from omconnect.runtime.brokers.base import BrokerError
from tests.support.tcp_proxy import TcpProxy

from .conftest import numbered_messages, run_on

# Seconds between two steps of a paced connection.
_STEP = 0.01


class SlowLink(TcpProxy):
    """Forwards ``127.0.0.1:<port>`` to ``127.0.0.1:<target_port>`` at ``rate`` bytes a second
    each way (per connection); ``stall()`` holds whatever comes in, each way, until
    ``resume()``. A context manager, like ``TcpProxy``."""

    def __init__(self, target_port: int, rate: float) -> None:
        super().__init__(target_port)
        self.rate = rate
        self.stalled = False

    def stall(self) -> None:
        """Stop forwarding (the connections stay open)."""
        self.stalled = True

    def resume(self) -> None:
        """Forward again."""
        self.stalled = False

    async def _pump(self, source: asyncio.StreamReader, target: asyncio.StreamWriter) -> None:
        step = max(1, int(self.rate * _STEP))
        due = time.monotonic()
        while data := await source.read(step):
            while self.stalled:
                await asyncio.sleep(_STEP)
            target.write(data)
            await target.drain()
            due = max(due, time.monotonic()) + len(data) / self.rate
            await asyncio.sleep(max(0.0, due - time.monotonic()))
        if target.can_write_eof():
            target.write_eof()


def send_through_a_stall(
    broker: Broker, link: SlowLink, topic: str, count: int
) -> tuple[str, float]:
    """Send 10 messages to ``topic`` through ``link``, then ``count`` more with the link
    stalled 0.5 s into that send, which must fail: its error, and how many seconds after the
    stall it came."""

    async def send() -> tuple[str, float]:
        producer = await broker.producer()
        await producer.send(topic, numbered_messages(0, 10))
        asyncio.get_running_loop().call_later(0.5, link.stall)
        stalled_at = time.monotonic() + 0.5
        with pytest.raises(BrokerError) as caught:
            await producer.send(topic, numbered_messages(10, count))
        return str(caught.value), time.monotonic() - stalled_at

    return run_on(broker, send(), timeout=60)

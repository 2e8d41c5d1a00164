"""What a consumer's connection received, handed from paho's network thread to the event loop.

The network thread appends each message as it arrives; the event loop takes them all at the
start of a poll. A poll with nothing to return waits on an ``asyncio.Event`` that the network
thread sets through ``loop.call_soon_threadsafe``, and only when a poll is waiting: one
wake-up per wait rather than a cross-thread call per message.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import paho.mqtt.client as paho
from paho.mqtt.properties import Properties


@dataclass(frozen=True)
class Received:
    """A message as it came: the packet id to acknowledge it by, and the number of the
    connection it came on (a packet id means nothing on another one)."""

    topic: str
    payload: bytes
    properties: Properties | None
    mid: int
    qos: int
    retain: bool
    received_ms: int
    connection: int


class Inbox:
    """Messages of the current connection, in arrival order."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._items: deque[Received] = deque()
        self._lock = threading.Lock()
        self._waiting = False
        self._event = asyncio.Event()

    def receiver(self, connection: int) -> Callable[[paho.MQTTMessage], None]:
        """The ``on_message`` of connection number ``connection`` (network thread)."""

        def receive(message: paho.MQTTMessage) -> None:
            self._items.append(
                Received(
                    message.topic,
                    bytes(message.payload),
                    getattr(message, "properties", None),
                    message.mid,
                    message.qos,
                    bool(message.retain),
                    time.time_ns() // 1_000_000,
                    connection,
                )
            )
            self.wake()

        return receive

    def wake(self) -> None:
        """End the current wait (from any thread)."""
        with self._lock:
            if not self._waiting:
                return
            self._waiting = False
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits
            self._loop.call_soon_threadsafe(self._event.set)

    def take(self, limit: int | None = None) -> list[Received]:
        """Everything received so far (at most ``limit`` messages), oldest first."""
        taken: list[Received] = []
        while self._items and (limit is None or len(taken) < limit):
            taken.append(self._items.popleft())
        return taken

    async def gather(self, enough: int, quiet: float = 0.002, longest: float = 0.02) -> None:
        """Let a burst that started arriving finish: wait until nothing came for ``quiet``
        seconds, ``enough`` messages are here, or ``longest`` seconds passed (the server
        sends a batch one message after another; a poll woken by the first should not
        return it alone)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + longest
        seen = -1
        while seen != len(self._items) and len(self._items) < enough and loop.time() < deadline:
            seen = len(self._items)
            await asyncio.sleep(quiet)

    async def wait(self, timeout: float) -> None:
        """Until something arrives, ``wake`` is called or ``timeout`` seconds pass."""
        with self._lock:
            if self._items:
                return
            self._waiting = True
            self._event.clear()
        try:
            async with asyncio.timeout(max(0.0, timeout)):
                await self._event.wait()
        except TimeoutError:
            pass
        finally:
            with self._lock:
                self._waiting = False

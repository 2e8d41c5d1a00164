"""Wakes consumers of this process as soon as a producer of the same broker appended.

Consumers still poll the file on a short interval to see other processes' appends; the signal
only removes that interval's latency for a pipeline that produces and consumes in one worker.
"""

from __future__ import annotations

import asyncio
import contextlib


class AppendSignal:
    """An edge-triggered "something was appended" notification on the running event loop."""

    def __init__(self) -> None:
        self._event: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _current(self) -> asyncio.Event:
        loop = asyncio.get_running_loop()
        if self._event is None or self._loop is not loop:
            self._event, self._loop = asyncio.Event(), loop
        return self._event

    def notify(self) -> None:
        """Wake every current waiter; later waiters wait for the next append."""
        event = self._current()
        self._event = asyncio.Event()
        event.set()

    async def wait(self, timeout: float) -> None:
        """Return after the next ``notify`` or after ``timeout`` seconds, whichever is first."""
        event = self._current()
        # Not asyncio.wait_for: on Python 3.11 it drops a cancel that arrives with an append.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await event.wait()

"""Waiting on an asyncio event with a timeout, the way every loop of the worker idles."""

from __future__ import annotations

import asyncio
import contextlib


async def wait_for_event(event: asyncio.Event, seconds: float) -> bool:
    """Wait until ``event`` is set or ``seconds`` pass; True if it was set.

    Cancelling the caller always cancels the wait: ``asyncio.wait_for`` on Python 3.11 drops
    a cancel that arrives as the event is set (the caller would run on after being torn down).
    """
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await event.wait()
    return event.is_set()

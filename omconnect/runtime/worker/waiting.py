"""How the worker's loops wait: for an event with a timeout (the way every loop idles), and
for a call that raised ``RetriableError``, with exponential backoff as Kafka Connect does
(KIP-298)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from omconnect.connectors.api.errors import RetriableError

T = TypeVar("T")

log = logging.getLogger("omconnect.retry")

FIRST_DELAY = 0.3


async def wait_for_event(event: asyncio.Event, seconds: float) -> bool:
    """Wait until ``event`` is set or ``seconds`` pass; True if it was set.

    Cancelling the caller always cancels the wait: ``asyncio.wait_for`` on Python 3.11 drops
    a cancel that arrives as the event is set (the caller would run on after being torn down).
    """
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await event.wait()
    return event.is_set()


async def retrying(
    call: Callable[[], Awaitable[T]], what: str, timeout: float, max_delay: float
) -> T:
    """Await ``call()``; on ``RetriableError`` wait 0.3 s, 0.6 s, 1.2 s ... (capped at
    ``max_delay``, with jitter) and call again until ``timeout`` seconds have passed, then
    re-raise the last error. Other exceptions propagate at once."""
    deadline = time.monotonic() + timeout
    delay = FIRST_DELAY
    attempt = 1
    while True:
        try:
            return await call()
        except RetriableError as exc:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise
            wait = min(delay, max_delay, remaining) * random.uniform(0.8, 1.0)
            log.warning("%s failed (attempt %d), retrying in %.1fs: %s", what, attempt, wait, exc)
            await asyncio.sleep(wait)
            delay *= 2
            attempt += 1

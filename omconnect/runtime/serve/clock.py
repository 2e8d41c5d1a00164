"""The time a ``schedule:`` is evaluated against.

``SystemClock`` is the real UTC clock ``serve`` uses. ``ScaledClock`` runs the same calendar
faster than real time (one real second is ``speed`` seconds of schedule time): the cron
expression, ``next_after`` and the wait are exactly the production ones, only the clock is
quicker, so a ``"* * * * *"`` pipeline can be tested in seconds.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol

from omconnect.runtime.worker.waiting import wait_for_event


class Clock(Protocol):
    """Tells the schedule time and waits for a moment of it."""

    def now(self) -> datetime:
        """The current schedule time, timezone-aware UTC."""
        ...

    async def sleep_until(self, moment: datetime, wake: asyncio.Event) -> bool:
        """Wait until ``moment`` or until ``wake`` is set; True if ``moment`` was reached."""
        ...


class ScaledClock:
    """UTC time running ``speed`` times faster than real time, from the moment it is made."""

    def __init__(self, speed: float = 1.0, start: datetime | None = None) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.speed = speed
        self._start = start if start is not None else datetime.now(UTC)
        self._started = time.monotonic()

    def now(self) -> datetime:
        elapsed = (time.monotonic() - self._started) * self.speed
        return self._start + timedelta(seconds=elapsed)

    async def sleep_until(self, moment: datetime, wake: asyncio.Event) -> bool:
        # Re-checked in a loop: a real wait may end a hair early, and cron ticks are exact.
        while True:
            remaining = (moment - self.now()).total_seconds()
            if remaining <= 0:
                return True
            if await wait_for_event(wake, remaining / self.speed):
                return False


class SystemClock(ScaledClock):
    """The real clock (UTC), for production."""

    def __init__(self) -> None:
        super().__init__(speed=1.0)

    def now(self) -> datetime:
        # The wall clock, not a monotonic offset: a long-running worker follows clock changes.
        return datetime.now(UTC)

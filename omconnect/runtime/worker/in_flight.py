"""Back-pressure: a budget of bytes in flight between a source's poll and the broker's ack."""

from __future__ import annotations

import asyncio


class InFlightBudget:
    """Waits while more than ``max_bytes`` are in flight, so memory stays bounded whatever the
    size of the input. A single item larger than the budget is let through alone."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.used = 0
        self._changed = asyncio.Condition()

    async def acquire(self, nbytes: int) -> None:
        async with self._changed:
            await self._changed.wait_for(
                lambda: self.used == 0 or self.used + nbytes <= self.max_bytes
            )
            self.used += nbytes

    async def release(self, nbytes: int) -> None:
        async with self._changed:
            self.used -= nbytes
            self._changed.notify_all()

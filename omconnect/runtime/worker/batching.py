"""Shaping what a source sends: batching by count, bytes and linger time, and the budget of
bytes in flight between a source's poll and the broker's ack (back-pressure).

Sources poll batches of whatever size suits them; the runtime reshapes them into batches of at
most ``max_rows`` rows and ``max_bytes`` bytes, and holds small ones back for up to ``linger``
seconds so a trickle of single records still travels in batches.
"""

from __future__ import annotations

import asyncio
import time

from omconnect.schemas.record import RecordBatch


def split(batch: RecordBatch, max_rows: int, max_bytes: int) -> list[RecordBatch]:
    """Cut ``batch`` into pieces of at most ``max_rows`` rows and about ``max_bytes`` bytes."""
    if batch.num_rows == 0:
        return [batch]
    row_bytes = max(1, batch.nbytes // batch.num_rows)
    rows = max(1, min(max_rows, max_bytes // row_bytes))
    if batch.num_rows <= rows:
        return [batch]
    return [batch.slice(start, rows) for start in range(0, batch.num_rows, rows)]


class BatchAccumulator:
    """Collects polled batches and hands out full ones.

    ``add`` returns the batches that are ready; ``due`` tells whether the linger time of the
    oldest held batch is over; ``take`` returns what is held (at the end, or when due).
    """

    def __init__(self, max_rows: int, max_bytes: int, linger: float) -> None:
        self.max_rows = max_rows
        self.max_bytes = max_bytes
        self.linger = linger
        self._held: list[RecordBatch] = []
        self._rows = 0
        self._bytes = 0
        self._since = 0.0

    def add(self, batch: RecordBatch) -> list[RecordBatch]:
        ready: list[RecordBatch] = []
        if self._held and not _compatible(self._held[0], batch):
            ready.extend(self.take())
        for piece in split(batch, self.max_rows, self.max_bytes):
            if piece.num_rows >= self.max_rows or piece.nbytes >= self.max_bytes:
                ready.extend(self.take())
                ready.append(piece)
                continue
            if not self._held:
                self._since = time.monotonic()
            self._held.append(piece)
            self._rows += piece.num_rows
            self._bytes += piece.nbytes
            if self._rows >= self.max_rows or self._bytes >= self.max_bytes:
                ready.extend(self.take())
        return ready

    def due(self) -> bool:
        return bool(self._held) and time.monotonic() - self._since >= self.linger

    def take(self) -> list[RecordBatch]:
        if not self._held:
            return []
        joined = RecordBatch.concat(self._held)
        self._held, self._rows, self._bytes = [], 0, 0
        return [joined]


def _compatible(a: RecordBatch, b: RecordBatch) -> bool:
    return (
        a.schema == b.schema
        and a.stream == b.stream
        and a.topic == b.topic
        and (a.carried_message_ids is None) == (b.carried_message_ids is None)
        and a.key_schema == b.key_schema
        and (a.keys is None) == (b.keys is None)
        and (a.timestamps is None) == (b.timestamps is None)
        and a.headers == b.headers
    )


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

"""Wakes the waiting consumers of this process when the log file changed: at once after an
append of this process, within ``WATCH_INTERVAL`` after another process's (within
``WATCH_INTERVAL_WHILE_CHANGING`` while the file keeps changing).

Every broker of one process on one file shares its ``AppendSignal`` (``append_signal``), so a
send of one pipeline wakes the consumers of another one reading its topic in the same
``serve``. Other processes' changes are found by one watcher per event loop, running while
consumers of the loop are open: every ``WATCH_INTERVAL`` it reads a fingerprint of what a
waiting consumer could find changed (partition offsets, topics, producer transactions,
consumer group generations and partition owners), and wakes them when it moved. An idle
``serve`` of 25 continuous pipelines thus looks at the file once a second, not 25 times. After
a change the watcher looks again within ``WATCH_INTERVAL_WHILE_CHANGING``, backing off to
``WATCH_INTERVAL`` (doubling) as the file stays the same: a stream from another process is seen
within tens of milliseconds (BP's latency at 5,000 msgs/s had a p50 of 480 ms with a look a
second), and an idle file costs what it did.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

WATCH_INTERVAL = 1.0
WATCH_INTERVAL_WHILE_CHANGING = 0.05
_UNSEEN = object()

_shared: weakref.WeakValueDictionary[Path, AppendSignal] = weakref.WeakValueDictionary()
_shared_lock = threading.Lock()

_FINGERPRINT = (
    "SELECT (SELECT count(*) || ':' || coalesce(sum(next_offset), 0) || ':' "
    "|| coalesce(sum(start_offset), 0) FROM partitions), "
    "(SELECT count(*) || ':' || coalesce(max(id), 0) FROM transactions), "
    "(SELECT count(*) || ':' || coalesce(sum(generation), 0) FROM consumer_groups), "
    "(SELECT count(*) FROM group_partitions)"
)


class _Connection(Protocol):
    """What the watcher needs of a ``SqliteThread``."""

    async def run(self, function: Callable[[sqlite3.Connection], object]) -> object: ...

    async def close(self) -> None: ...


def append_signal(log: Path, connect: Callable[[], _Connection]) -> AppendSignal:
    """The signal of every broker of this process on the log file ``log``; ``connect`` opens
    the watcher's own connection to it."""
    key = log.resolve()
    with _shared_lock:
        signal = _shared.get(key)
        if signal is None:
            signal = _shared[key] = AppendSignal(connect)
        return signal


def _fingerprint(connection: sqlite3.Connection) -> object:
    return tuple(connection.execute(_FINGERPRINT).fetchone())


@dataclass
class _LoopState:
    """The signal on one event loop: its waiters' event, how many wakes there were, the open
    consumers and the watcher of other processes' changes."""

    event: asyncio.Event = field(default_factory=asyncio.Event)
    wakes: int = 0
    consumers: int = 0
    watcher: asyncio.Task[None] | None = None


class AppendSignal:
    """An edge-triggered "the file changed" notification, one per event loop: a send wakes
    the consumers waiting on its own loop; the watcher of each loop wakes them for other
    processes' (and other loops') changes."""

    def __init__(self, connect: Callable[[], _Connection]) -> None:
        self._connect = connect
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopState] = (
            weakref.WeakKeyDictionary()
        )
        self._lock = threading.Lock()

    def _state(self) -> _LoopState:
        loop = asyncio.get_running_loop()
        with self._lock:
            state = self._loops.get(loop)
            if state is None:
                state = self._loops[loop] = _LoopState()
            return state

    def notify(self) -> None:
        """Wake every current waiter on the running loop; later waiters wait for the next
        change."""
        state = self._state()
        event, state.event = state.event, asyncio.Event()
        state.wakes += 1
        event.set()

    def wakes(self) -> int:
        """How many times waiters on the running loop were woken so far: a consumer that saw
        the same count at its last look has nothing new to look for."""
        return self._state().wakes

    async def wait(self, timeout: float) -> bool:
        """Return after the next ``notify`` (True) or after ``timeout`` seconds (False),
        whichever is first."""
        event = self._state().event
        # Not asyncio.wait_for: on Python 3.11 it drops a cancel that arrives with an append.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await event.wait()
        return event.is_set()

    def open_consumer(self) -> None:
        """A consumer of the running loop opened: watch for other processes' changes."""
        state = self._state()
        state.consumers += 1
        if state.watcher is None:
            state.watcher = asyncio.create_task(self._watch(), name="omconnect-embedded-watch")

    async def close_consumer(self) -> None:
        """A consumer of the running loop closed; the watcher stops with the last one."""
        state = self._state()
        state.consumers -= 1
        if state.consumers > 0 or state.watcher is None:
            return
        watcher, state.watcher = state.watcher, None
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher

    async def _watch(self) -> None:
        connection = self._connect()
        try:
            # The first fingerprint wakes the waiters too: a change between a consumer's last
            # look and it would otherwise go unnoticed.
            seen: object = _UNSEEN
            interval = WATCH_INTERVAL
            while True:
                try:
                    now = await connection.run(_fingerprint)
                except sqlite3.Error:
                    now = seen  # busy: the next look will tell
                if now != seen:
                    seen = now
                    self.notify()
                    interval = WATCH_INTERVAL_WHILE_CHANGING
                else:
                    interval = min(interval * 2, WATCH_INTERVAL)
                await asyncio.sleep(interval)
        finally:
            await connection.close()

"""One SQLite connection owned by one dedicated thread, driven from the event loop.

sqlite3 connections must not be shared between threads, and SQLite calls block; so every
producer, consumer and the broker's admin side get their own connection living on their own
single-thread executor. The event loop only awaits futures.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Concatenate, ParamSpec, TypeVar

from omconnect.runtime.brokers.embedded._log_schema import create_log_schema
from omconnect.runtime.sqlite_wal import connect_wal

P = ParamSpec("P")
T = TypeVar("T")

# A page size large enough that a segment body of a few MiB spans few overflow pages; it only
# takes effect when the file is created.
_PAGE_SIZE = 32768


class SqliteThread:
    """A lazily opened connection to the broker file, used only from its own thread.

    Args:
        path: the SQLite file (its directory is created on first use).
        synchronous: ``NORMAL`` (survives a process crash; a power loss may lose the last
            transactions) or ``FULL`` (fsync on every commit).
        busy_timeout: seconds to wait for another process's write lock before failing.
    """

    def __init__(self, path: Path, synchronous: str, busy_timeout: float) -> None:
        self._path = path
        self._synchronous = synchronous
        self._busy_timeout = busy_timeout
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="omconnect-sqlite")
        self._connection: sqlite3.Connection | None = None
        self._closed = False

    async def run(
        self,
        function: Callable[Concatenate[sqlite3.Connection, P], T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """Run ``function(connection, *args, **kwargs)`` on this connection's thread."""
        if self._closed:
            raise RuntimeError(f"the embedded broker connection to {self._path} is closed")
        loop = asyncio.get_running_loop()
        call = partial(self._call, function, *args, **kwargs)
        return await loop.run_in_executor(self._executor, call)

    def _call(
        self,
        function: Callable[Concatenate[sqlite3.Connection, P], T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        if self._connection is None:
            self._connection = self._open()
        return function(self._connection, *args, **kwargs)

    def _open(self) -> sqlite3.Connection:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE for writes), so a
        # write lock is taken up front and never upgraded under contention.
        connection = connect_wal(
            self._path,
            busy_timeout=self._busy_timeout,
            synchronous=self._synchronous,
            check_same_thread=True,
            page_size=_PAGE_SIZE,
        )
        create_log_schema(connection)
        return connection

    async def close(self) -> None:
        """Close the connection on its thread and stop the thread; idempotent."""
        if self._closed:
            return
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._close_connection)
        self._closed = True
        self._executor.shutdown(wait=False)

    def _close_connection(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

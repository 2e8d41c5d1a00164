"""Opening the SQLite files of the state directory and the embedded broker.

Every file is used by several processes at once (a pipeline and ``omconnect topics tail``, or
two pipelines), so each connection runs in WAL mode with a busy timeout and explicit
transactions (``isolation_level=None``; writers use ``BEGIN IMMEDIATE``).
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

SYNCHRONOUS = ("NORMAL", "FULL")


def connect_wal(
    path: str | Path,
    *,
    busy_timeout: float = 30.0,
    synchronous: str = "NORMAL",
    check_same_thread: bool = False,
    page_size: int | None = None,
) -> sqlite3.Connection:
    """A connection to ``path`` (created with its directory) in WAL mode.

    Switching a new file to WAL takes a lock that SQLite's busy handler does not wait for, so
    two processes creating the same file at once retry here until ``busy_timeout``.
    """
    if synchronous.upper() not in SYNCHRONOUS:
        raise ValueError(f"synchronous must be one of {SYNCHRONOUS}, not {synchronous!r}")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(
        str(path), timeout=busy_timeout, isolation_level=None, check_same_thread=check_same_thread
    )
    connection.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
    if page_size is not None:
        connection.execute(f"PRAGMA page_size={page_size}")
    deadline = time.monotonic() + busy_timeout
    while True:
        try:
            if connection.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                connection.execute("PRAGMA journal_mode=WAL")
            break
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                connection.close()
                raise
            time.sleep(0.01)
    connection.execute(f"PRAGMA synchronous={synchronous.upper()}")
    return connection

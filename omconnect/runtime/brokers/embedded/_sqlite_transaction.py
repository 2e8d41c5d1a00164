"""Explicit SQLite transactions on the broker's connections (opened with
``isolation_level=None``, so nothing is begun implicitly)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def write_transaction(connection: sqlite3.Connection) -> Iterator[None]:
    """``BEGIN IMMEDIATE``: the write lock is taken up front (waiting up to the busy timeout),
    so it is never upgraded under contention; rolled back if the body raises."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")


@contextmanager
def read_snapshot(connection: sqlite3.Connection) -> Iterator[None]:
    """One snapshot for several SELECTs, so a concurrent write cannot tear what is read."""
    connection.execute("BEGIN")
    try:
        yield
    finally:
        connection.execute("COMMIT")

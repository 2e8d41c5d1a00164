"""Producer transactions of the embedded log: open ranges, commit, abort, dangling owners.

A transaction's sends are appended like any other send (numbered after the high-water, so
offsets stay monotonic), and each append records the offsets it took in ``transaction_ranges``
in the same SQLite transaction; the ``transactions`` row is written with the first send. A
partition's *last stable offset* is the first offset of its oldest open range, or its
high-water when it has none: consumers read below it only, so they never see an open
transaction's messages, and everything below it is final. Commit deletes the transaction's
ranges and row (its messages become readable where they are) and upserts its positions, in
one SQLite transaction. Abort deletes its segments and moves its ranges to ``aborted_ranges``,
so readers know the gap is not lost data.

Dangling transactions: a transaction is aborted by whoever meets it (a producer beginning a
transaction, a consumer held back by it, a producer's periodic upkeep) once its producer's
process is gone (see ``_owner_lock``) or it has been open longer than its
``transaction_timeout``.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from omconnect.runtime.brokers.base import BrokerError, TopicPartition
from omconnect.runtime.brokers.embedded._owner_lock import owner_is_alive
from omconnect.runtime.brokers.embedded._sqlite_transaction import write_transaction


class TransactionAbortedError(BrokerError):
    """The producer's transaction was aborted by someone else (it outlived its timeout, or
    its producer was taken for dead); nothing of it is visible."""


@dataclass
class OpenTransaction:
    """A producer's current transaction; ``id`` is set once its first send is stored."""

    producer: str
    started_ms: int
    deadline_ms: int
    id: int | None = None


def now_ms() -> int:
    return int(time.time() * 1000)


def log_path(connection: sqlite3.Connection) -> Path:
    """The file of ``connection``'s main database."""
    return Path(connection.execute("PRAGMA database_list").fetchone()[2])


def join(connection: sqlite3.Connection, transaction: OpenTransaction) -> int:
    """Inside a write transaction: the id of ``transaction``, writing its row on its first
    send.

    Raises:
        TransactionAbortedError: someone aborted it, or it is past its deadline.
    """
    if transaction.id is None:
        if now_ms() > transaction.deadline_ms:
            raise _timed_out(transaction)
        cursor = connection.execute(
            "INSERT INTO transactions (producer, started_ms, deadline_ms) VALUES (?, ?, ?)",
            (transaction.producer, transaction.started_ms, transaction.deadline_ms),
        )
        assert cursor.lastrowid is not None
        return cursor.lastrowid
    row = connection.execute(
        "SELECT deadline_ms FROM transactions WHERE id = ?", (transaction.id,)
    ).fetchone()
    if row is None:
        raise TransactionAbortedError(
            f"transaction {transaction.id} was aborted by another process: it outlived its "
            "transaction_timeout or its producer was taken for dead; abort it and start again"
        )
    if now_ms() > int(row[0]):
        raise _timed_out(transaction)
    return transaction.id


def _timed_out(transaction: OpenTransaction) -> TransactionAbortedError:
    seconds = (transaction.deadline_ms - transaction.started_ms) / 1000
    return TransactionAbortedError(
        f"the transaction has been open longer than its transaction_timeout ({seconds:g} s); "
        "abort it and start again"
    )


def record_ranges(
    connection: sqlite3.Connection,
    transaction_id: int,
    topic: str,
    appended: Sequence[tuple[int, int, int]],
) -> None:
    """Inside the append's write transaction: the offsets ``(partition, first, count)`` it
    took belong to ``transaction_id`` (extending its range when they follow on directly)."""
    for partition, first, count in appended:
        extended = connection.execute(
            "UPDATE transaction_ranges SET end_offset = ? WHERE transaction_id = ? "
            "AND topic = ? AND partition = ? AND end_offset = ?",
            (first + count, transaction_id, topic, partition, first),
        ).rowcount
        if not extended:
            connection.execute(
                "INSERT INTO transaction_ranges "
                "(transaction_id, topic, partition, first_offset, end_offset) "
                "VALUES (?, ?, ?, ?, ?)",
                (transaction_id, topic, partition, first, first + count),
            )


def commit(
    connection: sqlite3.Connection,
    transaction: OpenTransaction,
    namespace: str | None,
    positions: Mapping[str, str],
) -> None:
    """Make ``transaction``'s messages readable and store ``positions`` under ``namespace``,
    in one SQLite transaction.

    Raises:
        TransactionAbortedError: it was aborted meanwhile; nothing was stored.
    """
    if transaction.id is None and (namespace is None or not positions):
        return
    with write_transaction(connection):
        if transaction.id is not None:
            join(connection, transaction)
            connection.execute(
                "DELETE FROM transaction_ranges WHERE transaction_id = ?", (transaction.id,)
            )
            connection.execute("DELETE FROM transactions WHERE id = ?", (transaction.id,))
        if namespace is not None and positions:
            connection.executemany(
                "INSERT INTO transaction_positions (namespace, partition_id, position) "
                "VALUES (?, ?, ?) ON CONFLICT (namespace, partition_id) "
                "DO UPDATE SET position = excluded.position",
                [(namespace, str(key), str(value)) for key, value in positions.items()],
            )


def abort(connection: sqlite3.Connection, transaction_id: int) -> None:
    """Drop ``transaction_id``'s messages for good (nothing happens if it is gone already)."""
    with write_transaction(connection):
        _abort(connection, transaction_id)


def _abort(connection: sqlite3.Connection, transaction_id: int) -> None:
    ranges = connection.execute(
        "SELECT topic, partition, first_offset, end_offset FROM transaction_ranges "
        "WHERE transaction_id = ?",
        (transaction_id,),
    ).fetchall()
    for topic, partition, first, end in ranges:
        # Whole segments: a segment holds one append, and an append is in one transaction.
        connection.execute(
            "DELETE FROM segments WHERE topic = ? AND partition = ? "
            "AND base_offset >= ? AND base_offset < ?",
            (topic, partition, first, end),
        )
    connection.executemany(
        "INSERT OR REPLACE INTO aborted_ranges (topic, partition, end_offset, first_offset) "
        "VALUES (?, ?, ?, ?)",
        [(topic, partition, end, first) for topic, partition, first, end in ranges],
    )
    connection.execute("DELETE FROM transaction_ranges WHERE transaction_id = ?", (transaction_id,))
    connection.execute("DELETE FROM transactions WHERE id = ?", (transaction_id,))


def _dangling(connection: sqlite3.Connection) -> list[int]:
    rows = connection.execute("SELECT id, producer, deadline_ms FROM transactions").fetchall()
    if not rows:
        return []
    now, log = now_ms(), log_path(connection)
    return [
        int(id_)
        for id_, producer, deadline in rows
        if now > int(deadline) or not owner_is_alive(log, producer)
    ]


def abort_dangling(connection: sqlite3.Connection) -> int:
    """Abort every transaction whose producer is gone or whose deadline passed; returns how
    many. Takes the write lock only when there is one."""
    if not _dangling(connection):
        return 0
    with write_transaction(connection):
        dangling = _dangling(connection)
        for transaction_id in dangling:
            _abort(connection, transaction_id)
    return len(dangling)


def open_range_starts(
    connection: sqlite3.Connection, topics: Sequence[str]
) -> dict[TopicPartition, int]:
    """The first offset of the oldest open transaction in each partition of ``topics`` that
    has one (the table holds open transactions only, so it stays small)."""
    marks = ",".join("?" * len(topics))
    rows = connection.execute(
        "SELECT topic, partition, min(first_offset) FROM transaction_ranges "
        f"WHERE topic IN ({marks}) GROUP BY topic, partition",
        tuple(topics),
    ).fetchall()
    return {(t, int(p)): int(first) for t, p, first in rows}


def aborted_ranges(
    connection: sqlite3.Connection,
    topic: str,
    partition: int,
    from_offset: int,
    before_offset: int,
    limit: int = 64,
) -> tuple[tuple[int, int], ...]:
    """Up to ``limit`` aborted ``[first, end)`` ranges overlapping ``[from_offset,
    before_offset)``, ascending."""
    rows = connection.execute(
        "SELECT first_offset, end_offset FROM aborted_ranges WHERE topic = ? AND partition = ? "
        "AND end_offset > ? AND first_offset < ? ORDER BY end_offset LIMIT ?",
        (topic, partition, from_offset, before_offset, limit),
    ).fetchall()
    return tuple((int(first), int(end)) for first, end in rows)


def forget_aborted_before(
    connection: sqlite3.Connection, topic: str, partition: int, start_offset: int
) -> None:
    """Inside a trim's write transaction: aborted ranges below the new start are moot."""
    connection.execute(
        "DELETE FROM aborted_ranges WHERE topic = ? AND partition = ? AND end_offset <= ?",
        (topic, partition, start_offset),
    )


def load_positions(connection: sqlite3.Connection, namespace: str) -> dict[str, str]:
    """The positions committed under ``namespace``."""
    rows = connection.execute(
        "SELECT partition_id, position FROM transaction_positions WHERE namespace = ?",
        (namespace,),
    ).fetchall()
    return {str(key): str(value) for key, value in rows}

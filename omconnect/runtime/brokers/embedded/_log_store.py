"""The embedded broker's SQL: appending segments, reading them back, group offsets, topics.

Every function takes the connection as its first argument and runs on that connection's thread
(see ``_sqlite_thread``). Writes are one ``BEGIN IMMEDIATE`` transaction each, so a send or a
commit is all there or not there after any crash.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from omconnect.runtime.brokers.base import TopicInfo, TopicPartition


@dataclass(frozen=True)
class PendingSegment:
    """An encoded batch about to be appended to ``partition``."""

    partition: int
    count: int
    max_timestamp: int
    body: bytes | memoryview


@dataclass(frozen=True)
class StoredSegment:
    """A segment as read back; ``body`` is None when the caller said it has it cached."""

    base_offset: int
    count: int
    body: bytes | None


@contextmanager
def _write_transaction(connection: sqlite3.Connection) -> Iterator[None]:
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")


@contextmanager
def _read_transaction(connection: sqlite3.Connection) -> Iterator[None]:
    # One snapshot for several SELECTs, so a concurrent trim cannot tear what we read.
    connection.execute("BEGIN")
    try:
        yield
    finally:
        connection.execute("COMMIT")


def topic_partitions(connection: sqlite3.Connection, topic: str) -> int | None:
    """How many partitions ``topic`` has, or None if it does not exist."""
    row = connection.execute("SELECT partitions FROM topics WHERE name = ?", (topic,)).fetchone()
    return None if row is None else int(row[0])


def ensure_topic(connection: sqlite3.Connection, topic: str, partitions: int) -> int:
    """Create ``topic`` with ``partitions`` partitions unless it exists; returns its count."""
    if not topic:
        raise ValueError("a topic name cannot be empty")
    if partitions < 1:
        raise ValueError(f"topic {topic!r} needs at least one partition, got {partitions}")
    existing = topic_partitions(connection, topic)
    if existing is not None:
        return existing
    with _write_transaction(connection):
        cursor = connection.execute(
            "INSERT OR IGNORE INTO topics (name, partitions, created_ms) VALUES (?, ?, ?)",
            (topic, partitions, int(time.time() * 1000)),
        )
        if cursor.rowcount:
            connection.executemany(
                "INSERT INTO partitions (topic, partition, start_offset, next_offset) "
                "VALUES (?, ?, 0, 0)",
                [(topic, p) for p in range(partitions)],
            )
    count = topic_partitions(connection, topic)
    assert count is not None
    return count


def append(
    connection: sqlite3.Connection, topic: str, segments: Sequence[PendingSegment]
) -> list[tuple[int, int, int]]:
    """Append ``segments`` in one transaction, numbering them after each partition's
    high-water.

    Returns:
        ``(partition, first_offset, count)`` for each partition touched, in partition order.
    """
    assigned: dict[int, tuple[int, int]] = {}
    with _write_transaction(connection):
        for segment in segments:
            if segment.partition in assigned:
                first, count = assigned[segment.partition]
                base = first + count
            else:
                row = connection.execute(
                    "SELECT next_offset FROM partitions WHERE topic = ? AND partition = ?",
                    (topic, segment.partition),
                ).fetchone()
                if row is None:
                    raise ValueError(f"topic {topic!r} has no partition {segment.partition}")
                first, count, base = int(row[0]), 0, int(row[0])
            connection.execute(
                "INSERT INTO segments (topic, partition, base_offset, count, max_timestamp, body) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (
                    topic,
                    segment.partition,
                    base,
                    segment.count,
                    segment.max_timestamp,
                    segment.body,
                ),
            )
            assigned[segment.partition] = (first, count + segment.count)
        for partition, (first, count) in assigned.items():
            connection.execute(
                "UPDATE partitions SET next_offset = ? WHERE topic = ? AND partition = ?",
                (first + count, topic, partition),
            )
    return [(p, first, count) for p, (first, count) in sorted(assigned.items())]


def partition_ranges(
    connection: sqlite3.Connection, topics: Sequence[str]
) -> dict[TopicPartition, tuple[int, int]]:
    """``(start_offset, next_offset)`` of every partition of ``topics`` that exist."""
    marks = ",".join("?" * len(topics))
    rows = connection.execute(
        "SELECT topic, partition, start_offset, next_offset FROM partitions "
        f"WHERE topic IN ({marks})",
        tuple(topics),
    ).fetchall()
    return {(t, int(p)): (int(start), int(end)) for t, p, start, end in rows}


def read_segments(
    connection: sqlite3.Connection,
    topic: str,
    partition: int,
    from_offset: int,
    max_messages: int,
    cached_base: int | None = None,
) -> list[StoredSegment]:
    """The segments holding offsets ``from_offset`` onwards, enough for ``max_messages``.

    The first segment may start before ``from_offset``; the caller slices it. The body of the
    segment based at ``cached_base`` is not fetched.
    """
    found: list[StoredSegment] = []
    with _read_transaction(connection):
        row = connection.execute(
            "SELECT max(base_offset) FROM segments "
            "WHERE topic = ? AND partition = ? AND base_offset <= ?",
            (topic, partition, from_offset),
        ).fetchone()
        first_base = from_offset if row[0] is None else int(row[0])
        cursor = connection.execute(
            "SELECT rowid, base_offset, count FROM segments "
            "WHERE topic = ? AND partition = ? AND base_offset >= ? ORDER BY base_offset",
            (topic, partition, first_base),
        )
        wanted: list[tuple[int, int, int]] = []
        available = 0
        for rowid, base, count in cursor:
            if base + count <= from_offset:
                continue
            wanted.append((int(rowid), int(base), int(count)))
            available += base + count - max(base, from_offset)
            if available >= max_messages:
                break
        cursor.close()
        for rowid, base, count in wanted:
            body = None
            if base != cached_base:
                body = connection.execute(
                    "SELECT body FROM segments WHERE rowid = ?", (rowid,)
                ).fetchone()[0]
            found.append(StoredSegment(base, count, body))
    return found


def load_group_offsets(
    connection: sqlite3.Connection, group: str, topics: Sequence[str]
) -> dict[TopicPartition, int]:
    """The committed next offsets of ``group`` for ``topics``."""
    marks = ",".join("?" * len(topics))
    rows = connection.execute(
        "SELECT topic, partition, next_offset FROM group_offsets "
        f"WHERE group_id = ? AND topic IN ({marks})",
        (group, *topics),
    ).fetchall()
    return {(t, int(p)): int(offset) for t, p, offset in rows}


def store_group_offsets(
    connection: sqlite3.Connection, group: str, offsets: Mapping[TopicPartition, int]
) -> None:
    """Commit ``offsets`` for ``group`` in one transaction."""
    with _write_transaction(connection):
        connection.executemany(
            "INSERT INTO group_offsets (group_id, topic, partition, next_offset) "
            "VALUES (?, ?, ?, ?) ON CONFLICT (group_id, topic, partition) "
            "DO UPDATE SET next_offset = excluded.next_offset",
            [(group, t, int(p), int(offset)) for (t, p), offset in offsets.items()],
        )


def delete_before(connection: sqlite3.Connection, topic: str, partition: int, offset: int) -> int:
    """Make ``offset`` the first readable offset of a partition, dropping whole segments
    before it; returns the new start offset (never beyond the high-water)."""
    with _write_transaction(connection):
        row = connection.execute(
            "SELECT start_offset, next_offset FROM partitions WHERE topic = ? AND partition = ?",
            (topic, partition),
        ).fetchone()
        if row is None:
            raise ValueError(f"topic {topic!r} has no partition {partition}")
        start = max(int(row[0]), min(offset, int(row[1])))
        connection.execute(
            "DELETE FROM segments WHERE topic = ? AND partition = ? AND base_offset + count <= ?",
            (topic, partition, start),
        )
        connection.execute(
            "UPDATE partitions SET start_offset = ? WHERE topic = ? AND partition = ?",
            (start, topic, partition),
        )
    return start


def topic_infos(connection: sqlite3.Connection) -> list[TopicInfo]:
    """Every topic with its partition count and the messages it currently holds."""
    rows = connection.execute(
        "SELECT t.name, t.partitions, coalesce(sum(p.next_offset - p.start_offset), 0) "
        "FROM topics t LEFT JOIN partitions p ON p.topic = t.name "
        "GROUP BY t.name ORDER BY t.name"
    ).fetchall()
    return [TopicInfo(name, int(partitions), int(messages)) for name, partitions, messages in rows]

"""The embedded broker's SQL: appending segments, reading them back, group offsets, topics.

Every function takes the connection as its first argument and runs on that connection's thread
(see ``_sqlite_thread``). Writes are one ``BEGIN IMMEDIATE`` transaction each, so a send or a
commit is all there or not there after any crash.

Consumers read through ``readable_ranges``: it bounds every partition at its last stable
offset and names the aborted transactions' ranges to skip (see ``_transactions``).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from omconnect.runtime.brokers.base import TopicInfo, TopicPartition, TopicSettings
from omconnect.runtime.brokers.embedded import _transactions
from omconnect.runtime.brokers.embedded._sqlite_transaction import (
    read_snapshot,
    write_transaction,
)
from omconnect.runtime.brokers.embedded._transactions import OpenTransaction

# No segment is based this high: "no upper bound" for ``read_segments``.
_NO_OFFSET_BOUND = 2**63 - 1


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


@dataclass(frozen=True)
class ReadableRange:
    """What a consumer may read of one partition, from one snapshot of the log.

    Attributes:
        start_offset: the first offset still stored (trimming and retention move it up).
        stable_offset: the last stable offset: below it every offset is final (committed,
            or aborted and gone); read below it only. At or after it an open transaction's
            messages may lie, and any message after those waits for it to end.
        high_water: the offset the next send will take (``stable_offset`` or more).
        aborted: the ``[first, end)`` ranges of aborted transactions, ascending, that overlap
            ``[from_offset, stable_offset)`` (at most 64: skip them and ask again). Their
            segments are deleted, so reading never returns their messages either way; skip
            them to move a position past a gap.
    """

    start_offset: int
    stable_offset: int
    high_water: int
    aborted: tuple[tuple[int, int], ...] = ()

    def next_readable(self, offset: int) -> int:
        """``offset``, or the end of the aborted ranges it falls in (they may follow on)."""
        for first, end in self.aborted:
            if first <= offset < end:
                offset = end
        return offset


def readable_end(
    connection: sqlite3.Connection, tp: TopicPartition, readable: ReadableRange
) -> int:
    """``readable.stable_offset`` moved back over every aborted range that ends right there,
    however many: the ``next_offset`` of a reader that consumed every readable message."""
    end = readable.stable_offset
    while end > readable.start_offset:
        row = connection.execute(
            "SELECT first_offset FROM aborted_ranges "
            "WHERE topic = ? AND partition = ? AND end_offset = ?",
            (tp[0], tp[1], end),
        ).fetchone()
        if row is None:
            break
        end = int(row[0])
    return max(end, readable.start_offset)


def readable_ranges(
    connection: sqlite3.Connection,
    topics: Sequence[str],
    positions: Mapping[TopicPartition, int] | None = None,
) -> dict[TopicPartition, ReadableRange]:
    """How far each existing partition of ``topics`` may be read, and what to skip.

    Aborted ranges are looked up for the partitions in ``positions`` that have something left
    to read, from that position on; the others get none. Aborts dangling transactions (their
    producer is gone, or they outlived their timeout) that hold any of these partitions back,
    so a crashed producer never blocks readers; that is the only write it does, and a failure
    to write is left to the next call.
    """
    bounds = _stable_bounds(connection, topics)
    if any(stable < end for _, stable, end in bounds.values()):
        try:
            if _transactions.abort_dangling(connection):
                bounds = _stable_bounds(connection, topics)
        except sqlite3.OperationalError:
            pass  # busy or read-only: another reader or the timeout will do it
    found: dict[TopicPartition, ReadableRange] = {}
    for tp, (start, stable, end) in bounds.items():
        position = max(start, (positions or {}).get(tp, stable))
        aborted: tuple[tuple[int, int], ...] = ()
        if position < stable:
            aborted = _transactions.aborted_ranges(connection, tp[0], tp[1], position, stable)
        found[tp] = ReadableRange(start, stable, end, aborted)
    return found


def _stable_bounds(
    connection: sqlite3.Connection, topics: Sequence[str]
) -> dict[TopicPartition, tuple[int, int, int]]:
    with read_snapshot(connection):
        ranges = partition_ranges(connection, topics)
        open_starts = _transactions.open_range_starts(connection, topics)
    return {
        tp: (start, min(end, open_starts.get(tp, end)), end) for tp, (start, end) in ranges.items()
    }


def topic_partitions(connection: sqlite3.Connection, topic: str) -> int | None:
    """How many partitions ``topic`` has, or None if it does not exist."""
    row = connection.execute("SELECT partitions FROM topics WHERE name = ?", (topic,)).fetchone()
    return None if row is None else int(row[0])


def topic_settings(connection: sqlite3.Connection, topic: str) -> TopicSettings | None:
    """The settings ``topic`` was created with, or None if it does not exist."""
    row = connection.execute(
        "SELECT partitions, compacted, retention_ms, retention_bytes FROM topics WHERE name = ?",
        (topic,),
    ).fetchone()
    if row is None:
        return None
    partitions, compacted, retention_ms, retention_bytes = row
    return TopicSettings(
        partitions=int(partitions),
        compacted=bool(compacted),
        retention_ms=None if retention_ms is None else int(retention_ms),
        retention_bytes=None if retention_bytes is None else int(retention_bytes),
    )


def ensure_topic(
    connection: sqlite3.Connection, topic: str, settings: TopicSettings
) -> TopicSettings:
    """Create ``topic`` with ``settings`` unless it exists; returns the settings it has."""
    if not topic:
        raise ValueError("a topic name cannot be empty")
    if settings.partitions < 1:
        raise ValueError(f"topic {topic!r} needs at least one partition, got {settings.partitions}")
    for name in ("retention_ms", "retention_bytes"):
        value = getattr(settings, name)
        if value is not None and value <= 0:
            raise ValueError(f"topic {topic!r}: {name} must be positive or None, got {value}")
    existing = topic_settings(connection, topic)
    if existing is not None:
        return existing
    with write_transaction(connection):
        cursor = connection.execute(
            "INSERT OR IGNORE INTO topics (name, partitions, created_ms, compacted, "
            "retention_ms, retention_bytes) VALUES (?, ?, ?, ?, ?, ?)",
            (
                topic,
                settings.partitions,
                int(time.time() * 1000),
                int(settings.compacted),
                settings.retention_ms,
                settings.retention_bytes,
            ),
        )
        if cursor.rowcount:
            connection.executemany(
                "INSERT INTO partitions (topic, partition, start_offset, next_offset) "
                "VALUES (?, ?, 0, 0)",
                [(topic, p) for p in range(settings.partitions)],
            )
    created = topic_settings(connection, topic)
    assert created is not None
    return created


def append(
    connection: sqlite3.Connection,
    topic: str,
    segments: Sequence[PendingSegment],
    transaction: OpenTransaction | None = None,
) -> list[tuple[int, int, int]]:
    """Append ``segments`` in one transaction, numbering them after each partition's
    high-water; inside ``transaction``, their offsets are recorded as its own (and its row
    written on its first send, setting ``transaction.id``).

    Returns:
        ``(partition, first_offset, count)`` for each partition touched, in partition order.

    Raises:
        TransactionAbortedError: ``transaction`` was aborted meanwhile; nothing was appended.
    """
    assigned: dict[int, tuple[int, int]] = {}
    appended_ms = int(time.time() * 1000)
    transaction_id = None
    with write_transaction(connection):
        if transaction is not None:
            transaction_id = _transactions.join(connection, transaction)
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
                "INSERT INTO segments "
                "(topic, partition, base_offset, count, max_timestamp, appended_ms, body) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    topic,
                    segment.partition,
                    base,
                    segment.count,
                    segment.max_timestamp,
                    appended_ms,
                    segment.body,
                ),
            )
            assigned[segment.partition] = (first, count + segment.count)
        for partition, (first, count) in assigned.items():
            connection.execute(
                "UPDATE partitions SET next_offset = ? WHERE topic = ? AND partition = ?",
                (first + count, topic, partition),
            )
        appended = [(p, first, count) for p, (first, count) in sorted(assigned.items())]
        if transaction_id is not None:
            _transactions.record_ranges(connection, transaction_id, topic, appended)
    if transaction is not None:
        transaction.id = transaction_id
    return appended


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
    before_offset: int | None = None,
) -> list[StoredSegment]:
    """The segments holding offsets ``from_offset`` onwards, enough for ``max_messages``,
    and none based at or after ``before_offset`` (pass ``ReadableRange.stable_offset``: it is
    always a segment boundary).

    The first segment may start before ``from_offset``; the caller slices it. The body of the
    segment based at ``cached_base`` is not fetched.
    """
    found: list[StoredSegment] = []
    before = _NO_OFFSET_BOUND if before_offset is None else before_offset
    with read_snapshot(connection):
        row = connection.execute(
            "SELECT max(base_offset) FROM segments "
            "WHERE topic = ? AND partition = ? AND base_offset <= ?",
            (topic, partition, from_offset),
        ).fetchone()
        first_base = from_offset if row[0] is None else int(row[0])
        cursor = connection.execute(
            "SELECT rowid, base_offset, count FROM segments WHERE topic = ? AND partition = ? "
            "AND base_offset >= ? AND base_offset < ? ORDER BY base_offset",
            (topic, partition, first_base, before),
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
    with write_transaction(connection):
        connection.executemany(
            "INSERT INTO group_offsets (group_id, topic, partition, next_offset) "
            "VALUES (?, ?, ?, ?) ON CONFLICT (group_id, topic, partition) "
            "DO UPDATE SET next_offset = excluded.next_offset",
            [(group, t, int(p), int(offset)) for (t, p), offset in offsets.items()],
        )


def delete_before(connection: sqlite3.Connection, topic: str, partition: int, offset: int) -> int:
    """Make ``offset`` the first readable offset of a partition, dropping whole segments
    before it; returns the new start offset (never beyond the high-water)."""
    with write_transaction(connection):
        return trim_partition(connection, topic, partition, offset)


def trim_partition(connection: sqlite3.Connection, topic: str, partition: int, offset: int) -> int:
    """Inside a write transaction: ``delete_before`` (it never moves the start back)."""
    row = connection.execute(
        "SELECT start_offset, next_offset FROM partitions WHERE topic = ? AND partition = ?",
        (topic, partition),
    ).fetchone()
    if row is None:
        raise ValueError(f"topic {topic!r} has no partition {partition}")
    start = max(int(row[0]), min(offset, int(row[1])))
    if start == int(row[0]):
        return start
    connection.execute(
        "DELETE FROM segments WHERE topic = ? AND partition = ? AND base_offset + count <= ?",
        (topic, partition, start),
    )
    connection.execute(
        "UPDATE partitions SET start_offset = ? WHERE topic = ? AND partition = ?",
        (start, topic, partition),
    )
    _transactions.forget_aborted_before(connection, topic, partition, start)
    return start


def topic_infos(connection: sqlite3.Connection) -> list[TopicInfo]:
    """Every topic with its partition count and the messages it currently holds."""
    rows = connection.execute(
        "SELECT t.name, t.partitions, coalesce(sum(p.next_offset - p.start_offset), 0) "
        "FROM topics t LEFT JOIN partitions p ON p.topic = t.name "
        "GROUP BY t.name ORDER BY t.name"
    ).fetchall()
    return [TopicInfo(name, int(partitions), int(messages)) for name, partitions, messages in rows]

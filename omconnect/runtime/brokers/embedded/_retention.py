"""Retention of the embedded log: trimming old segments of topics that set ``retention_ms`` or
``retention_bytes``.

Only whole segments go, oldest first, moving the partition's start offset as
``delete_before`` does, so a consumer behind it reads on from the new start. Age counts from
when a segment was appended, not from its messages' timestamps: those are the sources' born
timestamps, which may be years old. Size counts the stored (compressed) segment bodies, and
the newest segment always stays, as Kafka keeps its active segment. Nothing at or after the
last stable offset is trimmed, so an open transaction never loses messages. The embedded
broker does not compact: ``compacted`` topics keep every message until retention trims them.
"""

from __future__ import annotations

import sqlite3

from omconnect.runtime.brokers.base import TopicSettings
from omconnect.runtime.brokers.embedded._log_store import partition_ranges, trim_partition
from omconnect.runtime.brokers.embedded._sqlite_transaction import read_snapshot, write_transaction
from omconnect.runtime.brokers.embedded._transactions import now_ms, open_range_starts


def enforce_retention(
    connection: sqlite3.Connection, topic: str, settings: TopicSettings
) -> dict[int, int]:
    """Trim ``topic``'s partitions to its retention; returns the new start offset of each
    partition trimmed. Takes the write lock only when there is something to trim."""
    if settings.retention_ms is None and settings.retention_bytes is None:
        return {}
    cutoff_ms = None if settings.retention_ms is None else now_ms() - settings.retention_ms
    targets: dict[int, int] = {}
    with read_snapshot(connection):
        open_starts = open_range_starts(connection, [topic])
        for (_, partition), (start, end) in partition_ranges(connection, [topic]).items():
            target = start
            if settings.retention_bytes is not None:
                size_start = _start_by_size(connection, topic, partition, settings.retention_bytes)
                target = max(target, size_start)
            if cutoff_ms is not None:
                target = max(target, _start_by_age(connection, topic, partition, cutoff_ms))
            # A transaction begun after this snapshot starts at or after ``end``: no re-check.
            target = min(target, open_starts.get((topic, partition), end))
            if target > start:
                targets[partition] = target
    if not targets:
        return {}
    with write_transaction(connection):
        return {
            partition: trim_partition(connection, topic, partition, target)
            for partition, target in targets.items()
        }


def _start_by_size(connection: sqlite3.Connection, topic: str, partition: int, limit: int) -> int:
    """The start that keeps the newest segments whose bodies fit in ``limit`` bytes (at least
    the newest one); 0 when all of them fit."""
    cursor = connection.execute(
        "SELECT base_offset, count, length(body) FROM segments "
        "WHERE topic = ? AND partition = ? ORDER BY base_offset DESC",
        (topic, partition),
    )
    try:
        kept = 0
        for base, count, size in cursor:
            if kept and kept + size > limit:
                return int(base) + int(count)
            kept += size
        return 0
    finally:
        cursor.close()


def _start_by_age(
    connection: sqlite3.Connection, topic: str, partition: int, cutoff_ms: int
) -> int:
    """The end of the oldest run of segments appended before ``cutoff_ms``; 0 when none."""
    cursor = connection.execute(
        "SELECT base_offset, count, coalesce(appended_ms, max_timestamp) FROM segments "
        "WHERE topic = ? AND partition = ? ORDER BY base_offset",
        (topic, partition),
    )
    try:
        start = 0
        for base, count, appended_ms in cursor:
            if appended_ms >= cutoff_ms:
                break
            start = int(base) + int(count)
        return start
    finally:
        cursor.close()

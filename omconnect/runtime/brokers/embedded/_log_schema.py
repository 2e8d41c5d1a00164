"""The tables of the embedded broker's log file.

``partitions`` holds each partition's readable range (``start_offset`` after trimming,
``next_offset`` the high-water), so the high-water survives trimming and is read without
touching segments. ``segments`` holds message batches, one row per batch, never one per message.

``consumer_groups``, ``group_members`` and ``group_partitions`` hold consumer group membership
and who owns which partition (see ``_group_store``). They came after format 1 was released, so
they are created in files that predate them too; an older omconnect ignores them.

``transactions`` (open ones only), ``transaction_ranges`` (the offsets each open transaction
took), ``aborted_ranges`` and ``transaction_positions`` serve producer transactions (see
``_transactions``); the topic settings columns and ``segments.appended_ms`` (for retention by
age) are added to older files the same way. An older omconnect would show the messages of open
transactions: do not read a file with transactions through one.
"""

from __future__ import annotations

import sqlite3

FORMAT_VERSION = "1"

_TABLES = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS topics (
    name TEXT PRIMARY KEY,
    partitions INTEGER NOT NULL,
    created_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS partitions (
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    start_offset INTEGER NOT NULL,
    next_offset INTEGER NOT NULL,
    PRIMARY KEY (topic, partition)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS segments (
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    base_offset INTEGER NOT NULL,
    count INTEGER NOT NULL,
    max_timestamp INTEGER NOT NULL,
    body BLOB NOT NULL,
    PRIMARY KEY (topic, partition, base_offset)
);
CREATE TABLE IF NOT EXISTS group_offsets (
    group_id TEXT NOT NULL,
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    next_offset INTEGER NOT NULL,
    PRIMARY KEY (group_id, topic, partition)
) WITHOUT ROWID;
"""

# Tables added without a format change: name -> DDL, created whenever missing.
_ADDED_TABLES = {
    "consumer_groups": """
CREATE TABLE IF NOT EXISTS consumer_groups (
    group_id TEXT PRIMARY KEY,
    generation INTEGER NOT NULL,
    changed_ms INTEGER NOT NULL,
    digest TEXT NOT NULL
) WITHOUT ROWID""",
    "group_members": """
CREATE TABLE IF NOT EXISTS group_members (
    group_id TEXT NOT NULL,
    member_id TEXT NOT NULL,
    joined_ms INTEGER NOT NULL,
    heartbeat_ms INTEGER NOT NULL,
    session_ms INTEGER NOT NULL,
    topics TEXT NOT NULL,
    pattern TEXT,
    generation INTEGER NOT NULL,
    PRIMARY KEY (group_id, member_id)
) WITHOUT ROWID""",
    "group_partitions": """
CREATE TABLE IF NOT EXISTS group_partitions (
    group_id TEXT NOT NULL,
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    member_id TEXT NOT NULL,
    PRIMARY KEY (group_id, topic, partition)
) WITHOUT ROWID""",
    "transactions": """
CREATE TABLE IF NOT EXISTS transactions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    producer TEXT NOT NULL,
    started_ms INTEGER NOT NULL,
    deadline_ms INTEGER NOT NULL
)""",
    "transaction_ranges": """
CREATE TABLE IF NOT EXISTS transaction_ranges (
    transaction_id INTEGER NOT NULL,
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    first_offset INTEGER NOT NULL,
    end_offset INTEGER NOT NULL,
    PRIMARY KEY (transaction_id, topic, partition, first_offset)
) WITHOUT ROWID""",
    "aborted_ranges": """
CREATE TABLE IF NOT EXISTS aborted_ranges (
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    end_offset INTEGER NOT NULL,
    first_offset INTEGER NOT NULL,
    PRIMARY KEY (topic, partition, end_offset)
) WITHOUT ROWID""",
    "transaction_positions": """
CREATE TABLE IF NOT EXISTS transaction_positions (
    namespace TEXT NOT NULL,
    partition_id TEXT NOT NULL,
    position TEXT NOT NULL,
    PRIMARY KEY (namespace, partition_id)
) WITHOUT ROWID""",
}

# Columns added without a format change: table -> (name, declaration), added whenever missing.
_ADDED_COLUMNS = {
    "topics": (
        ("compacted", "INTEGER NOT NULL DEFAULT 0"),
        ("retention_ms", "INTEGER"),
        ("retention_bytes", "INTEGER"),
    ),
    "segments": (("appended_ms", "INTEGER"),),
}


def create_log_schema(connection: sqlite3.Connection) -> None:
    """Create the tables if missing and refuse a file written by an incompatible version."""
    exists = connection.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'"
    ).fetchone()
    if not exists:
        connection.execute("BEGIN IMMEDIATE")
        try:
            for statement in _TABLES.split(";"):
                if statement.strip():
                    connection.execute(statement)
            connection.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('format', ?)", (FORMAT_VERSION,)
            )
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
    row = connection.execute("SELECT value FROM meta WHERE key = 'format'").fetchone()
    if row is None or row[0] != FORMAT_VERSION:
        found = row[0] if row else "unknown"
        raise RuntimeError(
            f"this embedded broker file has log format {found}, this omconnect reads format "
            f"{FORMAT_VERSION}"
        )
    _create_added_tables(connection)
    _add_columns(connection)


def _create_added_tables(connection: sqlite3.Connection) -> None:
    marks = ",".join("?" * len(_ADDED_TABLES))
    present = {
        name
        for (name,) in connection.execute(
            f"SELECT name FROM sqlite_master WHERE type = 'table' AND name IN ({marks})",
            tuple(_ADDED_TABLES),
        )
    }
    if len(present) == len(_ADDED_TABLES):
        return
    connection.execute("BEGIN IMMEDIATE")
    try:
        for statement in _ADDED_TABLES.values():
            connection.execute(statement)
        connection.execute("COMMIT")
    except BaseException:
        connection.execute("ROLLBACK")
        raise


def _missing_columns(connection: sqlite3.Connection) -> list[tuple[str, str, str]]:
    missing = []
    for table, columns in _ADDED_COLUMNS.items():
        present = {row[1] for row in connection.execute(f"PRAGMA table_info({table})")}
        missing += [(table, name, kind) for name, kind in columns if name not in present]
    return missing


def _add_columns(connection: sqlite3.Connection) -> None:
    if not _missing_columns(connection):
        return
    connection.execute("BEGIN IMMEDIATE")
    try:
        # Another process may have added them while this one waited for the lock.
        for table, name, kind in _missing_columns(connection):
            connection.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")
        connection.execute("COMMIT")
    except BaseException:
        connection.execute("ROLLBACK")
        raise

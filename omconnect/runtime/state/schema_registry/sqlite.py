"""The embedded schema registry: subjects, versions and global ids in one SQLite file.

Several processes may share the file (WAL journal, writes in ``BEGIN IMMEDIATE``
transactions, so two registrations never hand out the same id or version); one instance may
be shared by threads. Schema ids are global and increase, as in Confluent's registry; a schema
is identified by its JSON with sorted keys, so the same schema under two subjects has one id.
A soft-deleted version keeps its row, marked ``deleted``; a permanent delete removes the row;
the ``schemas`` row stays, so an id is never given to another schema.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from omconnect.runtime.sqlite_wal import connect_wal
from omconnect.runtime.state.schema_registry.protocol import (
    AvroSchema,
    CompatibilityMode,
    SchemaNotFoundError,
)
from omconnect.runtime.state.schema_registry.registration import (
    DEFAULT_SUBJECT,
    checked_canonical_json,
    compatibility_mode,
    mode_in_force,
    require_compatible,
)
from omconnect.runtime.state.schema_registry.registration import (
    canonical_json as canonical_json,  # re-exported: callers import it from here
)

_TABLES = """
CREATE TABLE IF NOT EXISTS schemas (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    canonical TEXT NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS subject_versions (
    subject TEXT NOT NULL,
    version INTEGER NOT NULL,
    schema_id INTEGER NOT NULL REFERENCES schemas(id),
    deleted INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (subject, version)
);
CREATE TABLE IF NOT EXISTS compatibility (
    subject TEXT PRIMARY KEY,  -- '' holds the registry-wide default
    mode TEXT NOT NULL
);
"""
_LIVE = "v.deleted = 0"


class SqliteSchemaRegistry:
    """A ``SchemaRegistry`` stored in the SQLite file at ``path`` (created if missing)."""

    def __init__(self, path: str | Path, timeout: float = 30.0) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._by_id: dict[int, AvroSchema] = {}
        self._db = connect_wal(path, busy_timeout=timeout)
        with self._lock:
            self._db.executescript(_TABLES)
            self._add_deleted_column()

    def _add_deleted_column(self) -> None:
        """Files made before deletes existed lack ``subject_versions.deleted``."""
        with self._transaction():
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(subject_versions)")}
            if "deleted" not in columns:
                self._db.execute(
                    "ALTER TABLE subject_versions ADD COLUMN deleted INTEGER NOT NULL DEFAULT 0"
                )

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """A write transaction that other processes wait for; call it holding the lock."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def register(self, subject: str, avro_schema: AvroSchema) -> int:
        """See ``SchemaRegistry.register``; ``ValueError`` for a schema Avro rejects."""
        canonical = checked_canonical_json(subject, avro_schema)
        with self._lock, self._transaction():
            return self._register_locked(subject, avro_schema, canonical)

    def _register_locked(self, subject: str, avro_schema: AvroSchema, canonical: str) -> int:
        existing = self._db.execute(
            "SELECT s.id FROM subject_versions v JOIN schemas s ON s.id = v.schema_id "
            f"WHERE v.subject = ? AND s.canonical = ? AND {_LIVE}",
            (subject, canonical),
        ).fetchone()
        if existing:
            return int(existing[0])
        earlier = [
            (int(version), json.loads(text))
            for version, text in self._db.execute(
                "SELECT v.version, s.canonical FROM subject_versions v "
                f"JOIN schemas s ON s.id = v.schema_id WHERE v.subject = ? AND {_LIVE} "
                "ORDER BY v.version",
                (subject,),
            )
        ]
        require_compatible(subject, self.compatibility(subject), avro_schema, earlier)
        self._db.execute("INSERT OR IGNORE INTO schemas (canonical) VALUES (?)", (canonical,))
        (schema_id,) = self._db.execute(
            "SELECT id FROM schemas WHERE canonical = ?", (canonical,)
        ).fetchone()
        (highest,) = self._db.execute(  # soft-deleted versions keep their numbers
            "SELECT MAX(version) FROM subject_versions WHERE subject = ?", (subject,)
        ).fetchone()
        version = int(highest or 0) + 1
        self._db.execute(
            "INSERT INTO subject_versions (subject, version, schema_id) VALUES (?, ?, ?)",
            (subject, version, schema_id),
        )
        return int(schema_id)

    def get(self, schema_id: int) -> AvroSchema:
        cached = self._by_id.get(schema_id)
        if cached is not None:
            return cached
        with self._lock:
            row = self._db.execute(
                "SELECT canonical FROM schemas WHERE id = ?", (int(schema_id),)
            ).fetchone()
        if row is None:
            raise SchemaNotFoundError(f"no schema with id {schema_id}")
        schema = json.loads(row[0])
        self._by_id[schema_id] = schema  # ids never change meaning, so caching is safe
        return schema

    def latest(self, subject: str) -> tuple[int, int, AvroSchema] | None:
        with self._lock:
            row = self._db.execute(
                "SELECT v.schema_id, v.version, s.canonical FROM subject_versions v "
                f"JOIN schemas s ON s.id = v.schema_id WHERE v.subject = ? AND {_LIVE} "
                "ORDER BY v.version DESC LIMIT 1",
                (subject,),
            ).fetchone()
        if row is None:
            return None
        return int(row[0]), int(row[1]), json.loads(row[2])

    def version(
        self, subject: str, version: int, deleted: bool = False
    ) -> tuple[int, AvroSchema] | None:
        with self._lock:
            row = self._db.execute(
                "SELECT v.schema_id, s.canonical FROM subject_versions v "
                "JOIN schemas s ON s.id = v.schema_id WHERE v.subject = ? AND v.version = ? "
                f"AND ({_LIVE} OR ?)",
                (subject, version, deleted),
            ).fetchone()
        return (int(row[0]), json.loads(row[1])) if row else None

    def subjects(self, deleted: bool = False) -> list[str]:
        with self._lock:
            rows = self._db.execute(
                f"SELECT DISTINCT subject FROM subject_versions v WHERE {_LIVE} OR ? "
                "ORDER BY subject",
                (deleted,),
            ).fetchall()
        return [str(r[0]) for r in rows]

    def versions(self, subject: str, deleted: bool = False) -> list[int]:
        with self._lock:
            rows = self._db.execute(
                f"SELECT version FROM subject_versions v WHERE subject = ? AND ({_LIVE} OR ?) "
                "ORDER BY version",
                (subject, deleted),
            ).fetchall()
        return [int(r[0]) for r in rows]

    def delete_versions(self, subject: str, versions: list[int], permanent: bool = False) -> None:
        statement = (
            "DELETE FROM subject_versions WHERE subject = ? AND version = ?"
            if permanent
            else "UPDATE subject_versions SET deleted = 1 WHERE subject = ? AND version = ?"
        )
        with self._lock, self._transaction():
            self._db.executemany(statement, [(subject, int(v)) for v in versions])

    def set_compatibility(
        self, mode: CompatibilityMode | str | None, subject: str | None = None
    ) -> None:
        with self._lock:
            if mode is None:
                self._db.execute(
                    "DELETE FROM compatibility WHERE subject = ?", (subject or DEFAULT_SUBJECT,)
                )
                return
            checked = compatibility_mode(mode)
            self._db.execute(
                "INSERT INTO compatibility (subject, mode) VALUES (?, ?) "
                "ON CONFLICT(subject) DO UPDATE SET mode = excluded.mode",
                (subject or DEFAULT_SUBJECT, checked.value),
            )

    def subject_compatibility(self, subject: str) -> CompatibilityMode | None:
        with self._lock:
            row = self._db.execute(
                "SELECT mode FROM compatibility WHERE subject = ?", (subject,)
            ).fetchone()
        return CompatibilityMode(row[0]) if row else None

    def compatibility(self, subject: str | None = None) -> CompatibilityMode:
        with self._lock:
            rows = dict(
                self._db.execute(
                    "SELECT subject, mode FROM compatibility WHERE subject IN (?, ?)",
                    (subject or DEFAULT_SUBJECT, DEFAULT_SUBJECT),
                ).fetchall()
            )
        return mode_in_force(rows, subject)

"""The embedded schema registry: subjects, versions and global ids in one SQLite file.

Several processes may share the file (WAL journal, writes in ``BEGIN IMMEDIATE``
transactions, so two registrations never hand out the same id or version); one instance may
be shared by threads. Schema ids are global and increase, as in Confluent's registry; a schema
is identified by its JSON with sorted keys, so the same schema under two subjects has one id.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import fastavro

from omconnect.runtime.sqlite_wal import connect_wal
from omconnect.runtime.state.schema_registry.compatibility import incompatibilities
from omconnect.runtime.state.schema_registry.protocol import (
    DEFAULT_COMPATIBILITY,
    AvroSchema,
    CompatibilityMode,
    IncompatibleSchemaError,
    SchemaNotFoundError,
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
    PRIMARY KEY (subject, version)
);
CREATE TABLE IF NOT EXISTS compatibility (
    subject TEXT PRIMARY KEY,  -- '' holds the registry-wide default
    mode TEXT NOT NULL
);
"""
_DEFAULT_SUBJECT = ""


def canonical_json(avro_schema: AvroSchema) -> str:
    """The identity of a schema: its JSON with sorted keys and no spaces.

    Unlike Avro's Parsing Canonical Form, this keeps logical types and custom attributes,
    which change how omconnect reads the data.
    """
    return json.dumps(avro_schema, sort_keys=True, separators=(",", ":"))


class SqliteSchemaRegistry:
    """A ``SchemaRegistry`` stored in the SQLite file at ``path`` (created if missing)."""

    def __init__(self, path: str | Path, timeout: float = 30.0) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._by_id: dict[int, AvroSchema] = {}
        self._db = connect_wal(path, busy_timeout=timeout)
        with self._lock:
            self._db.executescript(_TABLES)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def register(self, subject: str, avro_schema: AvroSchema) -> int:
        """See ``SchemaRegistry.register``; ``ValueError`` for a schema Avro rejects."""
        try:
            fastavro.parse_schema(avro_schema)
        except Exception as error:  # fastavro raises several types for a malformed schema
            raise ValueError(f"subject {subject!r}: not a valid Avro schema: {error}") from error
        canonical = canonical_json(avro_schema)
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                schema_id = self._register_locked(subject, avro_schema, canonical)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
            return schema_id

    def _register_locked(self, subject: str, avro_schema: AvroSchema, canonical: str) -> int:
        existing = self._db.execute(
            "SELECT s.id FROM subject_versions v JOIN schemas s ON s.id = v.schema_id "
            "WHERE v.subject = ? AND s.canonical = ?",
            (subject, canonical),
        ).fetchone()
        if existing:
            return int(existing[0])
        earlier = [
            (int(version), json.loads(text))
            for version, text in self._db.execute(
                "SELECT v.version, s.canonical FROM subject_versions v "
                "JOIN schemas s ON s.id = v.schema_id WHERE v.subject = ? ORDER BY v.version",
                (subject,),
            )
        ]
        mode = self.compatibility(subject)
        problems = incompatibilities(mode, avro_schema, earlier)
        if problems:
            raise IncompatibleSchemaError(subject, mode, problems)
        self._db.execute("INSERT OR IGNORE INTO schemas (canonical) VALUES (?)", (canonical,))
        (schema_id,) = self._db.execute(
            "SELECT id FROM schemas WHERE canonical = ?", (canonical,)
        ).fetchone()
        version = earlier[-1][0] + 1 if earlier else 1
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
                "JOIN schemas s ON s.id = v.schema_id WHERE v.subject = ? "
                "ORDER BY v.version DESC LIMIT 1",
                (subject,),
            ).fetchone()
        if row is None:
            return None
        return int(row[0]), int(row[1]), json.loads(row[2])

    def version(self, subject: str, version: int) -> tuple[int, AvroSchema] | None:
        with self._lock:
            row = self._db.execute(
                "SELECT v.schema_id, s.canonical FROM subject_versions v "
                "JOIN schemas s ON s.id = v.schema_id WHERE v.subject = ? AND v.version = ?",
                (subject, version),
            ).fetchone()
        return (int(row[0]), json.loads(row[1])) if row else None

    def subjects(self) -> list[str]:
        with self._lock:
            rows = self._db.execute(
                "SELECT DISTINCT subject FROM subject_versions ORDER BY subject"
            ).fetchall()
        return [str(r[0]) for r in rows]

    def versions(self, subject: str) -> list[int]:
        with self._lock:
            rows = self._db.execute(
                "SELECT version FROM subject_versions WHERE subject = ? ORDER BY version",
                (subject,),
            ).fetchall()
        return [int(r[0]) for r in rows]

    def set_compatibility(self, mode: CompatibilityMode | str, subject: str | None = None) -> None:
        checked = CompatibilityMode(str(mode).upper())
        with self._lock:
            self._db.execute(
                "INSERT INTO compatibility (subject, mode) VALUES (?, ?) "
                "ON CONFLICT(subject) DO UPDATE SET mode = excluded.mode",
                (subject or _DEFAULT_SUBJECT, checked.value),
            )

    def compatibility(self, subject: str | None = None) -> CompatibilityMode:
        with self._lock:
            rows = dict(
                self._db.execute(
                    "SELECT subject, mode FROM compatibility WHERE subject IN (?, ?)",
                    (subject or _DEFAULT_SUBJECT, _DEFAULT_SUBJECT),
                ).fetchall()
            )
        mode = rows.get(subject or _DEFAULT_SUBJECT) or rows.get(_DEFAULT_SUBJECT)
        return CompatibilityMode(mode) if mode else DEFAULT_COMPATIBILITY

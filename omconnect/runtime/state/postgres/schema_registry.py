"""``PostgresSchemaRegistry``: the embedded schema registry in a Postgres state.

The same contract and rules as the SQLite registry (``schema_registry.registration``): global
ids shared across subjects, ordered versions, soft and permanent deletes, compatibility modes.
Registrations (and deletes) run one at a time across every worker of the state: each holds a
transaction-level advisory lock, so two processes registering one schema get one id, and two
new versions of a subject never get one number. Reads take no lock. A schema's row stays
when its versions are deleted, so an id never changes meaning and ``get`` caches.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import psycopg
from psycopg import sql

from omconnect.runtime.state.postgres.advisory_keys import REGISTRY, advisory_key
from omconnect.runtime.state.postgres.connection import StateConnection
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

_VERSIONS = "{versions} v JOIN {schemas} s ON s.id = v.schema_id"
_STATEMENTS = {
    "lock": "SELECT pg_advisory_xact_lock(%s)",
    "registered": (
        f"SELECT s.id FROM {_VERSIONS} "
        "WHERE v.subject = %s AND s.fingerprint = %s AND NOT v.deleted"
    ),
    "earlier": (
        f"SELECT v.version, s.canonical FROM {_VERSIONS} "
        "WHERE v.subject = %s AND NOT v.deleted ORDER BY v.version"
    ),
    "add_schema": (
        "INSERT INTO {schemas} (fingerprint, canonical) VALUES (%s, %s) "
        "ON CONFLICT (fingerprint) DO NOTHING"
    ),
    "schema_id": "SELECT id FROM {schemas} WHERE fingerprint = %s",
    "highest": "SELECT max(version) FROM {versions} WHERE subject = %s",
    "add_version": "INSERT INTO {versions} (subject, version, schema_id) VALUES (%s, %s, %s)",
    "get": "SELECT canonical FROM {schemas} WHERE id = %s",
    "latest": (
        f"SELECT v.schema_id, v.version, s.canonical FROM {_VERSIONS} "
        "WHERE v.subject = %s AND NOT v.deleted ORDER BY v.version DESC LIMIT 1"
    ),
    "version": (
        f"SELECT v.schema_id, s.canonical FROM {_VERSIONS} "
        "WHERE v.subject = %s AND v.version = %s AND (NOT v.deleted OR %s)"
    ),
    "subjects": (
        "SELECT subject FROM {versions} WHERE NOT deleted OR %s "
        'GROUP BY subject ORDER BY subject COLLATE "C"'
    ),
    "versions": (
        "SELECT version FROM {versions} WHERE subject = %s AND (NOT deleted OR %s) ORDER BY version"
    ),
    "soft_delete": "UPDATE {versions} SET deleted = true WHERE subject = %s AND version = %s",
    "delete": "DELETE FROM {versions} WHERE subject = %s AND version = %s",
    "set_mode": (
        "INSERT INTO {modes} (subject, mode) VALUES (%s, %s) "
        "ON CONFLICT (subject) DO UPDATE SET mode = EXCLUDED.mode"
    ),
    "unset_mode": "DELETE FROM {modes} WHERE subject = %s",
    "modes": "SELECT subject, mode FROM {modes} WHERE subject IN (%s, %s)",
}


class PostgresSchemaRegistry:
    """A ``SchemaRegistry`` in the tables of a Postgres state (see ``PostgresState``); safe
    across threads, processes and machines."""

    def __init__(self, connection: StateConnection) -> None:
        self._connection = connection
        schema = connection.location.schema
        tables = {
            "schemas": sql.Identifier(schema, "schemas"),
            "versions": sql.Identifier(schema, "subject_versions"),
            "modes": sql.Identifier(schema, "compatibility"),
        }
        self._sql = {name: sql.SQL(text).format(**tables) for name, text in _STATEMENTS.items()}
        self._lock_key = advisory_key(REGISTRY, schema)
        self._by_id: dict[int, AvroSchema] = {}

    def close(self) -> None:
        self._connection.close()

    def register(self, subject: str, avro_schema: AvroSchema) -> int:
        """See ``SchemaRegistry.register``; ``ValueError`` for a schema Avro rejects."""
        canonical = checked_canonical_json(subject, avro_schema)
        fingerprint = hashlib.sha256(canonical.encode()).digest()

        def register(connection: psycopg.Connection) -> int:
            connection.execute(self._sql["lock"], [self._lock_key])
            existing = connection.execute(
                self._sql["registered"], [subject, fingerprint]
            ).fetchone()
            if existing is not None:
                return int(existing[0])
            earlier = [
                (int(version), json.loads(text))
                for version, text in connection.execute(self._sql["earlier"], [subject])
            ]
            require_compatible(subject, self._mode(connection, subject), avro_schema, earlier)
            connection.execute(self._sql["add_schema"], [fingerprint, canonical])
            schema_id = _one(connection.execute(self._sql["schema_id"], [fingerprint]))
            # Soft-deleted versions keep their numbers: count past them.
            version = _one(connection.execute(self._sql["highest"], [subject])) + 1
            connection.execute(self._sql["add_version"], [subject, version, schema_id])
            return schema_id

        return self._connection.run(register)

    def get(self, schema_id: int) -> AvroSchema:
        cached = self._by_id.get(schema_id)
        if cached is not None:
            return cached
        row = self._connection.run(
            lambda c: c.execute(self._sql["get"], [int(schema_id)]).fetchone()
        )
        if row is None:
            raise SchemaNotFoundError(f"no schema with id {schema_id}")
        schema = json.loads(row[0])
        self._by_id[schema_id] = schema  # ids never change meaning, so caching is safe
        return schema

    def latest(self, subject: str) -> tuple[int, int, AvroSchema] | None:
        row = self._connection.run(lambda c: c.execute(self._sql["latest"], [subject]).fetchone())
        return None if row is None else (int(row[0]), int(row[1]), json.loads(row[2]))

    def version(
        self, subject: str, version: int, deleted: bool = False
    ) -> tuple[int, AvroSchema] | None:
        row = self._connection.run(
            lambda c: c.execute(self._sql["version"], [subject, version, deleted]).fetchone()
        )
        return None if row is None else (int(row[0]), json.loads(row[1]))

    def subjects(self, deleted: bool = False) -> list[str]:
        rows = self._connection.run(
            lambda c: c.execute(self._sql["subjects"], [deleted]).fetchall()
        )
        return [str(row[0]) for row in rows]

    def versions(self, subject: str, deleted: bool = False) -> list[int]:
        rows = self._connection.run(
            lambda c: c.execute(self._sql["versions"], [subject, deleted]).fetchall()
        )
        return [int(row[0]) for row in rows]

    def delete_versions(self, subject: str, versions: list[int], permanent: bool = False) -> None:
        statement = self._sql["delete" if permanent else "soft_delete"]
        rows = [(subject, int(version)) for version in versions]

        def delete(connection: psycopg.Connection) -> None:
            connection.execute(self._sql["lock"], [self._lock_key])
            with connection.cursor() as cursor:
                cursor.executemany(statement, rows)

        self._connection.run(delete)

    def set_compatibility(
        self, mode: CompatibilityMode | str | None, subject: str | None = None
    ) -> None:
        key = subject or DEFAULT_SUBJECT
        if mode is None:
            self._connection.run(lambda c: c.execute(self._sql["unset_mode"], [key]))
            return
        checked = compatibility_mode(mode)
        self._connection.run(lambda c: c.execute(self._sql["set_mode"], [key, checked.value]))

    def compatibility(self, subject: str | None = None) -> CompatibilityMode:
        return self._connection.run(lambda c: self._mode(c, subject))

    def subject_compatibility(self, subject: str) -> CompatibilityMode | None:
        stored = self._connection.run(lambda c: self._stored_modes(c, subject))
        mode = stored.get(subject)
        return CompatibilityMode(mode) if mode else None

    def _mode(self, connection: psycopg.Connection, subject: str | None) -> CompatibilityMode:
        return mode_in_force(self._stored_modes(connection, subject), subject)

    def _stored_modes(self, connection: psycopg.Connection, subject: str | None) -> dict[str, str]:
        rows = connection.execute(self._sql["modes"], [subject or DEFAULT_SUBJECT, DEFAULT_SUBJECT])
        return {str(row[0]): str(row[1]) for row in rows}


def _one(cursor: psycopg.Cursor[Any]) -> int:
    """The integer a one-row, one-column query returned (0 for NULL)."""
    row = cursor.fetchone()
    return int(row[0] or 0) if row is not None else 0

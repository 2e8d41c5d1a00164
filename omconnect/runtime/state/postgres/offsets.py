"""``PostgresOffsetStore``: source positions in a Postgres state, shared by many workers.

Rows are keyed by (namespace, ``partition_id(partition)``) and hold the partition and offset
dicts as tagged JSON (``schemas.position_codec``), exactly as the SQLite store does, so the
two stores export and import the same rows. A ``put`` is one transaction of upserts: every
position of the call is stored, or none, and a commit is durable (``synchronous_commit`` is
on for the session). Puts write their rows in partition id order, so two workers writing the
same partitions wait for each other instead of deadlocking.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import psycopg
from psycopg import sql

from omconnect.runtime.state.offsets import OffsetStore
from omconnect.runtime.state.postgres.connection import StateConnection
from omconnect.schemas.position_codec import decode_position_value, encode_position_value
from omconnect.schemas.record import Position, partition_id

_STATEMENTS = {
    "get": "SELECT offset_json FROM {table} WHERE namespace = %s AND partition_id = %s",
    "all": (
        "SELECT partition_json, offset_json FROM {table} WHERE namespace = %s "
        'ORDER BY partition_id COLLATE "C"'
    ),
    "put": (
        "INSERT INTO {table} (namespace, partition_id, partition_json, offset_json) "
        "VALUES (%s, %s, %s, %s) ON CONFLICT (namespace, partition_id) DO UPDATE SET "
        "offset_json = EXCLUDED.offset_json, updated_at = now()"
    ),
    "delete_namespace": "DELETE FROM {table} WHERE namespace = %s",
    "delete_partition": "DELETE FROM {table} WHERE namespace = %s AND partition_id = %s",
    "namespaces": (
        'SELECT namespace FROM {table} GROUP BY namespace ORDER BY namespace COLLATE "C"'
    ),
}


class PostgresOffsetStore(OffsetStore):
    """Offsets in the ``source_offsets`` table of a Postgres state (see ``PostgresState``).

    Safe to use from several threads (they share one session, one call at a time) and from
    many processes and machines. Every database failure is an ``OffsetStoreError`` naming
    the server.
    """

    def __init__(self, connection: StateConnection) -> None:
        self._connection = connection
        table = sql.Identifier(connection.location.schema, "source_offsets")
        self._sql = {name: sql.SQL(text).format(table=table) for name, text in _STATEMENTS.items()}

    def get(self, namespace: str, partition: Mapping[str, Any]) -> Mapping[str, Any] | None:
        """The stored offset of ``partition`` in ``namespace``, or None."""
        key = partition_id(partition)
        row = self._connection.run(
            lambda c: c.execute(self._sql["get"], [namespace, key]).fetchone()
        )
        return None if row is None else decode_position_value(row[0])

    def all(self, namespace: str) -> list[Position]:
        """Every position of ``namespace``, ordered by partition."""
        rows = self._connection.run(lambda c: c.execute(self._sql["all"], [namespace]).fetchall())
        return [
            Position(decode_position_value(partition), decode_position_value(offset))
            for partition, offset in rows
        ]

    def put(self, namespace: str, positions: Iterable[Position]) -> None:
        """Store ``positions`` in one transaction; the last one wins for a repeated partition.

        Raises:
            TypeError: a partition or offset holds a value positions cannot hold (see
                ``position_codec``); nothing is stored.
        """
        latest = {
            partition_id(position.partition): (
                encode_position_value(position.partition),
                encode_position_value(position.offset),
            )
            for position in positions
        }
        if not latest:
            return
        rows = [(namespace, key, *encoded) for key, encoded in sorted(latest.items())]

        def upsert(connection: psycopg.Connection) -> None:
            with connection.cursor() as cursor:
                cursor.executemany(self._sql["put"], rows)

        self._connection.run(upsert)

    def delete(self, namespace: str, partition: Mapping[str, Any] | None = None) -> int:
        """Forget one partition, or every partition of ``namespace``; returns rows removed."""
        if partition is None:
            statement, params = self._sql["delete_namespace"], [namespace]
        else:
            statement, params = self._sql["delete_partition"], [namespace, partition_id(partition)]
        return self._connection.run(lambda c: c.execute(statement, params).rowcount)

    def namespaces(self) -> list[str]:
        """Every namespace with at least one stored position, sorted."""
        rows = self._connection.run(lambda c: c.execute(self._sql["namespaces"]).fetchall())
        return [str(row[0]) for row in rows]

    def close(self) -> None:
        self._connection.close()

"""``PostgresScheduleProgress``: how far each scheduled pipeline's ticks were handled, in the
``schedule_progress`` table of a Postgres state.

One row per pipeline. A write never moves a pipeline's moment back (``GREATEST``): workers
that serve the same pipeline from one state may record its ticks in any order, and the
latest tick recorded is the one every tick before was handled up to. A write is one
autocommitted upsert, durable when it returns (``synchronous_commit`` is on).
"""

from __future__ import annotations

from datetime import datetime

from psycopg import sql

from omconnect.runtime.state.postgres.connection import StateConnection

_STATEMENTS = {
    "get": "SELECT caught_up_to FROM {table} WHERE pipeline = %s",
    "put": (
        "INSERT INTO {table} AS kept (pipeline, caught_up_to) VALUES (%s, %s) "
        "ON CONFLICT (pipeline) DO UPDATE SET "
        "caught_up_to = GREATEST(kept.caught_up_to, EXCLUDED.caught_up_to), updated_at = now()"
    ),
}


class PostgresScheduleProgress:
    """The ``ScheduleProgressStore`` of a Postgres state (see ``PostgresState``); every
    database failure is an ``OffsetStoreError`` naming the server."""

    def __init__(self, connection: StateConnection) -> None:
        self._connection = connection
        table = sql.Identifier(connection.location.schema, "schedule_progress")
        self._sql = {name: sql.SQL(text).format(table=table) for name, text in _STATEMENTS.items()}

    def get(self, pipeline: str) -> datetime | None:
        """The recorded moment of ``pipeline`` (timezone-aware), None when there is none."""
        row = self._connection.run(lambda c: c.execute(self._sql["get"], [pipeline]).fetchone())
        return None if row is None else row[0]

    def put(self, pipeline: str, moment: datetime) -> None:
        """Record ``moment`` for ``pipeline``, unless a later one is recorded already.

        Raises:
            ValueError: ``moment`` has no time zone.
        """
        if moment.tzinfo is None:
            raise ValueError("a schedule's progress is a timezone-aware moment")
        self._connection.run(lambda c: c.execute(self._sql["put"], [pipeline, moment]))

    def close(self) -> None:
        self._connection.close()

"""``PostgresState``: a pipeline's state in a Postgres schema, shared by many workers.

``state: postgresql://user@host/db`` puts the offsets, the embedded schema registry and the
run lock of every pipeline that names it into one schema (``omconnect``, or ``?schema=``),
so that ``omconnect serve`` workers, Airflow and Dagster tasks on several machines resume
from the same positions, share schema ids, and never run one pipeline twice at once. Opening
the backend connects to nothing; each store opened from it has a session of its own.
"""

from __future__ import annotations

from omconnect.runtime.state.backends import RunLock
from omconnect.runtime.state.offsets import OffsetStore
from omconnect.runtime.state.postgres.connection import StateConnection
from omconnect.runtime.state.postgres.location import StateLocation
from omconnect.runtime.state.postgres.offsets import PostgresOffsetStore
from omconnect.runtime.state.postgres.run_lock import AdvisoryRunLock
from omconnect.runtime.state.postgres.schedule_progress import PostgresScheduleProgress
from omconnect.runtime.state.postgres.schema_registry import PostgresSchemaRegistry
from omconnect.runtime.state.postgres.tables import create_tables, tables_exist
from omconnect.runtime.state.schema_registry import SchemaRegistry


class PostgresState:
    """The state at the ``postgresql://`` URL ``url``; nothing is connected until a store
    or the lock is opened.

    Raises:
        StateUnavailableError: the URL is malformed or names an unusable schema.
    """

    def __init__(self, url: str) -> None:
        self.location = StateLocation.from_url(url)

    def open_offset_store(self) -> OffsetStore:
        """The offset store, its schema and tables created when missing.

        Raises:
            OffsetStoreError: the server cannot be reached, refuses the user, lacks the
                database, or the user may not create the schema (one line: what to check).
        """
        return PostgresOffsetStore(self._created())

    def open_existing_offset_store(self) -> OffsetStore | None:
        """The offset store if the state's tables exist, else None; creates nothing."""
        session = self._existing()
        return PostgresOffsetStore(session) if session is not None else None

    def open_schema_registry(self) -> SchemaRegistry:
        """The embedded schema registry, its schema and tables created when missing."""
        return PostgresSchemaRegistry(self._created())

    def open_existing_schema_registry(self) -> SchemaRegistry | None:
        """The embedded schema registry if the state's tables exist, else None; creates
        nothing."""
        session = self._existing()
        return PostgresSchemaRegistry(session) if session is not None else None

    def open_schedule_progress(self) -> PostgresScheduleProgress:
        """Where ``serve`` records how far scheduled pipelines' ticks were handled, its
        schema and tables created when missing.

        Raises:
            OffsetStoreError: as ``open_offset_store``.
        """
        return PostgresScheduleProgress(self._created())

    def pipeline_lock(self, pipeline: str) -> RunLock:
        """A session-level advisory lock on the pipeline (see ``run_lock``)."""
        return AdvisoryRunLock(self.location, pipeline)

    def _created(self) -> StateConnection:
        session = StateConnection(self.location)
        try:
            session.run(lambda c: create_tables(c, self.location))
        except BaseException:
            session.close()
            raise
        return session

    def _existing(self) -> StateConnection | None:
        session = StateConnection(self.location)
        try:
            exists = session.run(lambda c: tables_exist(c, self.location))
        except BaseException:
            session.close()
            raise
        if not exists:
            session.close()
            return None
        return session

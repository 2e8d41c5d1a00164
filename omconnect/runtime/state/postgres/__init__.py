"""The Postgres state backend: offsets, the embedded schema registry, the run locks and the
schedule progress of pipelines whose ``state:`` is a ``postgresql://`` URL, shared by every
worker that names it.

``PostgresState`` is the backend (``backends.open_state`` picks it by URL scheme); it opens a
``PostgresOffsetStore``, a ``PostgresSchemaRegistry``, an ``AdvisoryRunLock`` per pipeline
and ``serve``'s ``PostgresScheduleProgress``, each on its own session. ``location`` reads the
URL, ``connection`` turns database failures into one-line errors, ``tables`` creates and
migrates the schema. The driver is psycopg 3 (the ``sql`` extra); only this package imports
it.
"""

from omconnect.runtime.state.postgres.location import DEFAULT_SCHEMA, StateLocation
from omconnect.runtime.state.postgres.offsets import PostgresOffsetStore
from omconnect.runtime.state.postgres.run_lock import AdvisoryRunLock
from omconnect.runtime.state.postgres.schedule_progress import PostgresScheduleProgress
from omconnect.runtime.state.postgres.schema_registry import PostgresSchemaRegistry
from omconnect.runtime.state.postgres.state import PostgresState

__all__ = [
    "DEFAULT_SCHEMA",
    "AdvisoryRunLock",
    "PostgresOffsetStore",
    "PostgresScheduleProgress",
    "PostgresSchemaRegistry",
    "PostgresState",
    "StateLocation",
]

"""A pipeline's state: its offsets, its schemas and the lock that keeps one runner at a time.

``open_state(url)`` opens the backend a pipeline's ``state:`` names (a directory, or a
``postgresql://`` URL that many workers share); ``open_offset_store`` and
``open_schema_registry`` open what a run needs from it. ``offsets`` and ``schema_registry``
hold the store contracts and their SQLite implementations, ``postgres`` the Postgres backend;
``pipeline_lock`` the run lock and the sink directory claims; ``schedule_progress`` how far
``serve`` handled each scheduled pipeline's ticks.
"""

from omconnect.runtime.state.backends import (
    StateBackend,
    StateUnavailableError,
    open_offset_store,
    open_schema_registry,
    open_state,
)
from omconnect.runtime.state.directory import DirectoryState
from omconnect.runtime.state.offsets import OffsetStore, OffsetStoreError
from omconnect.runtime.state.pipeline_lock import (
    LOCK_CHECK_SECONDS,
    DirectoryClaims,
    PipelineLock,
    PipelineLockLostError,
    PipelineRunningError,
    pipeline_stopped,
)
from omconnect.runtime.state.schedule_progress import (
    DirectoryScheduleProgress,
    ScheduleProgressStore,
)
from omconnect.runtime.state.schema_registry import SchemaRegistry

__all__ = [
    "LOCK_CHECK_SECONDS",
    "DirectoryClaims",
    "DirectoryScheduleProgress",
    "DirectoryState",
    "OffsetStore",
    "OffsetStoreError",
    "PipelineLock",
    "PipelineLockLostError",
    "PipelineRunningError",
    "ScheduleProgressStore",
    "SchemaRegistry",
    "StateBackend",
    "StateUnavailableError",
    "open_offset_store",
    "open_schema_registry",
    "open_state",
    "pipeline_stopped",
]

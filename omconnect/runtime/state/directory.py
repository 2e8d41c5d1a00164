"""``DirectoryState``: a pipeline's state in a local directory, the default ``state:``.

The directory holds ``offsets.sqlite`` (source positions), ``registry.sqlite`` (the embedded
schema registry), ``locks/<pipeline>.lock`` (one runner per pipeline) and
``schedules/<pipeline>.json`` (how far ``serve`` handled a scheduled pipeline's ticks).
Several pipelines and processes share one directory: the SQLite files are in WAL mode and the
locks are ``flock`` locks.
"""

from __future__ import annotations

from pathlib import Path

from omconnect.runtime.file_lock import FileLock
from omconnect.runtime.state.offsets import OffsetStore, OffsetStoreError, SqliteOffsetStore
from omconnect.runtime.state.schedule_progress import (
    SCHEDULES_DIRECTORY,
    DirectoryScheduleProgress,
)
from omconnect.runtime.state.schema_registry import SchemaRegistry, SqliteSchemaRegistry

OFFSETS_FILE = "offsets.sqlite"
REGISTRY_FILE = "registry.sqlite"
LOCKS_DIRECTORY = "locks"


class DirectoryState:
    """The state kept in ``directory``; nothing is created until a store is opened."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    def open_offset_store(self) -> OffsetStore:
        """The SQLite offset store, created with the directory when missing.

        Raises:
            OffsetStoreError: the directory or the file cannot be created or opened (the
                message names the path and why).
        """
        self._create()
        return SqliteOffsetStore(self.directory / OFFSETS_FILE)

    def open_existing_offset_store(self) -> OffsetStore | None:
        """The offset store if one was made, else None; creates nothing.

        Raises:
            OffsetStoreError: the store exists but cannot be opened.
        """
        if self.directory.exists() and not self.directory.is_dir():
            raise OffsetStoreError(
                f"the state directory {self.directory} is a file, not a directory"
            )
        path = self.directory / OFFSETS_FILE
        return SqliteOffsetStore(path) if path.exists() else None

    def open_schema_registry(self) -> SchemaRegistry:
        """The embedded schema registry, created with the directory when missing."""
        self.directory.mkdir(parents=True, exist_ok=True)
        return SqliteSchemaRegistry(self.directory / REGISTRY_FILE)

    def open_existing_schema_registry(self) -> SchemaRegistry | None:
        """The embedded schema registry if one was made, else None; creates nothing."""
        path = self.directory / REGISTRY_FILE
        return SqliteSchemaRegistry(path) if path.is_file() else None

    def open_schedule_progress(self) -> DirectoryScheduleProgress:
        """The schedule progress files, ``STATE/schedules/<pipeline>.json`` (the folder is
        made on the first write)."""
        return DirectoryScheduleProgress(self.directory / SCHEDULES_DIRECTORY)

    def pipeline_lock_path(self, pipeline: str) -> Path:
        """``STATE/locks/<pipeline>.lock``."""
        return self.directory / LOCKS_DIRECTORY / f"{pipeline}.lock"

    def pipeline_lock(self, pipeline: str) -> FileLock:
        """An ``flock`` on ``pipeline_lock_path(pipeline)``."""
        return FileLock(self.pipeline_lock_path(pipeline))

    def _create(self) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise OffsetStoreError(
                f"cannot create the state directory {self.directory}: {_reason(error)}"
            ) from error


def _reason(error: OSError) -> str:
    if isinstance(error, FileExistsError | NotADirectoryError):
        return "a file is in the way (it must be a directory)"
    return error.strerror or str(error)

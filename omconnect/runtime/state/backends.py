"""Opening a pipeline's state from its ``state:`` setting, one backend per URL scheme.

A ``state:`` without a scheme is a directory (``DirectoryState``: SQLite files and lock
files). ``postgresql://`` (also ``postgres://`` and ``postgresql+psycopg://``) is a Postgres
schema that many workers share (``postgres.PostgresState``, imported only when named, as its
driver is the optional psycopg); any other scheme is refused. A backend is a
``StateBackend``: adding one is a class and a line in ``_SCHEMES``.

A pipeline with ``offsets: broker`` keeps its source positions in its broker instead
(``open_pipeline_offset_store``, ``offsets.broker_stores``); its ``state:`` still holds the
schema registry and the run lock.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from omconnect.runtime.file_lock import LockHolder
from omconnect.runtime.state.directory import DirectoryState
from omconnect.runtime.state.offsets import OffsetStore
from omconnect.runtime.state.schedule_progress import ScheduleProgressStore
from omconnect.runtime.state.schema_registry import SchemaRegistry


class StateUnavailableError(NotImplementedError):
    """The ``state:`` names no backend this installation can open: an unknown scheme, a
    backend whose driver is not installed, or a malformed URL."""


class RunLock(Protocol):
    """The lock one run of a pipeline holds (``pipeline_lock``): an ``flock`` file in a
    state directory, an advisory lock in Postgres."""

    def acquire(self, holder: LockHolder | None = None, *, shared: bool = False) -> bool:
        """Take the lock without waiting (``shared``: with other shared holders) and leave
        ``holder`` where a refused process reads it; whether the lock is real (False: this
        place cannot lock, nothing is excluded).

        Raises:
            LockHeldError: another holder has it in a conflicting mode (and says who).
        """
        ...

    def release(self) -> None:
        """Give the lock up (nothing when it is not held)."""
        ...

    def still_held(self) -> bool:
        """Whether the lock taken by ``acquire`` is still this process's: False once it was
        lost (an advisory lock ends with its database session); a file lock is never lost."""
        ...


class StateBackend(Protocol):
    """Where a pipeline's offsets, schemas, run lock and schedule progress live."""

    def open_offset_store(self) -> OffsetStore:
        """The offset store, created when missing."""
        ...

    def open_existing_offset_store(self) -> OffsetStore | None:
        """The offset store if one was made, else None; creates nothing."""
        ...

    def open_schema_registry(self) -> SchemaRegistry:
        """The embedded schema registry, created when missing."""
        ...

    def open_existing_schema_registry(self) -> SchemaRegistry | None:
        """The embedded schema registry if one was made, else None; creates nothing."""
        ...

    def open_schedule_progress(self) -> ScheduleProgressStore:
        """How far ``serve`` handled each scheduled pipeline's ticks (tables or folder
        created when missing)."""
        ...

    def pipeline_lock(self, pipeline: str) -> RunLock:
        """The lock that keeps one runner per pipeline (see ``pipeline_lock.PipelineLock``);
        nothing is taken or created until it is acquired."""
        ...


def _postgres(url: str) -> StateBackend:
    """The Postgres backend, shared by many workers.

    Raises:
        StateUnavailableError: psycopg is not installed, or the URL is malformed.
    """
    try:
        from omconnect.runtime.state.postgres import PostgresState
    except ModuleNotFoundError as missing:
        if not (missing.name or "").startswith("psycopg"):
            raise
        raise StateUnavailableError(
            "state: postgresql:// needs the psycopg driver; install it with "
            "pip install 'omconnect[sql]'"
        ) from None
    return PostgresState(url)


_SCHEMES = {"postgresql": _postgres, "postgres": _postgres}


def open_state(state: str | Path) -> StateBackend:
    """The backend of a pipeline's ``state:``: a directory path, or a URL such as
    ``postgresql://host/db``. Opening the backend creates nothing.

    Raises:
        StateUnavailableError: the URL's scheme names a backend that is not available, or
            none at all (the message lists the ones there are).
    """
    text = str(state)
    if "://" not in text:
        return DirectoryState(text)
    scheme = text.split("://", 1)[0].lower().split("+", 1)[0]
    opener = _SCHEMES.get(scheme)
    if opener is None:
        raise StateUnavailableError(
            f"state: {scheme}:// is not a state backend; use a directory or a postgresql:// URL"
        )
    return opener(text)


def open_offset_store(state: str | Path) -> OffsetStore:
    """The offset store of ``state``, created when missing (``STATE/offsets.sqlite``)."""
    return open_state(state).open_offset_store()


def open_pipeline_offset_store(
    state: str | Path, offsets: str = "state", broker: str | None = None
) -> OffsetStore:
    """The offset store a pipeline's ``offsets:`` names, created when missing: that of
    ``state`` (``offsets: state``), or the one in the broker of ``broker`` (``offsets:
    broker``: a compacted topic on Kafka, a key-value bucket on NATS).

    Raises:
        StateUnavailableError: ``offsets: broker`` on a broker without an offset store, or
            whose client is not installed.
    """
    if offsets != "broker":
        return open_offset_store(state)
    store = _broker_offsets(broker, create=True)
    assert store is not None
    return store


def open_existing_pipeline_offset_store(
    state: str | Path, offsets: str = "state", broker: str | None = None
) -> OffsetStore | None:
    """As ``open_pipeline_offset_store``, but None when no store was made: creates nothing."""
    if offsets != "broker":
        return open_state(state).open_existing_offset_store()
    return _broker_offsets(broker, create=False)


def _broker_offsets(broker: str | None, create: bool) -> OffsetStore | None:
    from omconnect.runtime.state.offsets import broker_stores

    if broker is None:
        raise StateUnavailableError("offsets: broker needs the pipeline's broker URL")
    try:
        if create:
            return broker_stores.open_broker_offset_store(broker)
        return broker_stores.open_existing_broker_offset_store(broker)
    except broker_stores.BrokerOffsetsUnavailableError as error:
        raise StateUnavailableError(str(error)) from None


def open_schema_registry(state: str | Path) -> SchemaRegistry:
    """The embedded schema registry of ``state``, created when missing."""
    return open_state(state).open_schema_registry()

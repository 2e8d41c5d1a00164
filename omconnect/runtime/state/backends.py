"""Opening a pipeline's state from its ``state:`` setting, one backend per URL scheme.

A ``state:`` without a scheme is a directory (``DirectoryState``: SQLite files and lock
files). ``postgresql://`` is reserved for the Postgres backend that several workers will
share; any other scheme is refused. A backend is a ``StateBackend``: adding one is a class
and a line in ``_SCHEMES``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from omconnect.runtime.state.directory import DirectoryState
from omconnect.runtime.state.offsets import OffsetStore
from omconnect.runtime.state.schema_registry import SchemaRegistry


class StateUnavailableError(NotImplementedError):
    """The ``state:`` names a backend this installation cannot open (yet)."""


class StateBackend(Protocol):
    """Where a pipeline's offsets, schemas and run lock live."""

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

    def pipeline_lock_path(self, pipeline: str) -> Path | None:
        """The file whose lock keeps one runner per pipeline (None: no file lock here)."""
        ...


def _postgres(url: str) -> StateBackend:
    """Stands in for the Postgres backend (shared by many workers) until it exists."""
    raise StateUnavailableError(
        "the Postgres state backend (offsets and schema registry) is not available yet; "
        "use a state directory such as .omconnect"
    )


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


def open_schema_registry(state: str | Path) -> SchemaRegistry:
    """The embedded schema registry of ``state``, created when missing."""
    return open_state(state).open_schema_registry()

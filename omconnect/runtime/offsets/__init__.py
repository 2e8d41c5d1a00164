"""Offset stores: where pipelines keep source positions.

``open_offset_store(state)`` maps a pipeline's ``state:`` to a store: a directory gives the
SQLite store in ``STATE/offsets.sqlite``. Read-only commands use ``open_existing_offset_store``,
which creates nothing.
"""

from __future__ import annotations

from pathlib import Path

from omconnect.runtime.offsets.base import OffsetStore, OffsetStoreError
from omconnect.runtime.offsets.sqlite import SqliteOffsetStore
from omconnect.runtime.offsets.transfer import export_offsets, import_offsets

__all__ = [
    "OFFSETS_FILE_NAME",
    "OffsetStore",
    "OffsetStoreError",
    "OffsetStoreUnavailableError",
    "SqliteOffsetStore",
    "export_offsets",
    "import_offsets",
    "open_existing_offset_store",
    "open_offset_store",
]

OFFSETS_FILE_NAME = "offsets.sqlite"
_POSTGRES_SCHEMES = ("postgresql://", "postgres://", "postgresql+")


class OffsetStoreUnavailableError(NotImplementedError):
    """The ``state:`` names an offset store this installation cannot open yet."""


def open_offset_store(state: str | Path) -> OffsetStore:
    """The offset store of a pipeline's ``state:`` setting.

    Args:
        state: a directory (created if missing; offsets go to ``STATE/offsets.sqlite``), or a
            ``postgresql://`` URL.

    Raises:
        OffsetStoreUnavailableError: ``state`` is a Postgres URL (not available yet) or
            another URL scheme.
        OffsetStoreError: the directory or the file cannot be created or opened (the
            message names the path and why: a full disk, a file where the directory should
            be, a file that is not an offset store...).
    """
    directory = _state_directory(state)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OffsetStoreError(
            f"cannot create the state directory {directory}: {_reason(error)}"
        ) from error
    return SqliteOffsetStore(directory / OFFSETS_FILE_NAME)


def open_existing_offset_store(state: str | Path) -> OffsetStore | None:
    """The offset store of ``state`` if it exists, else None; creates nothing.

    Raises:
        OffsetStoreUnavailableError: as ``open_offset_store``.
        OffsetStoreError: the store exists but cannot be opened.
    """
    directory = _state_directory(state)
    if directory.exists() and not directory.is_dir():
        raise OffsetStoreError(f"the state directory {directory} is a file, not a directory")
    path = directory / OFFSETS_FILE_NAME
    if not path.exists():
        return None
    return SqliteOffsetStore(path)


def _state_directory(state: str | Path) -> Path:
    text = str(state)
    if text.lower().startswith(_POSTGRES_SCHEMES):
        raise OffsetStoreUnavailableError(
            "the Postgres offset store is not available yet; use a state directory "
            "such as .omconnect"
        )
    if "://" in text:
        scheme = text.split("://", 1)[0]
        raise OffsetStoreUnavailableError(
            f"state: {scheme}:// is not an offset store; use a directory or a postgresql:// URL"
        )
    return Path(text)


def _reason(error: OSError) -> str:
    if isinstance(error, FileExistsError | NotADirectoryError):
        return "a file is in the way (it must be a directory)"
    return error.strerror or str(error)

"""Offset stores: where pipelines keep source positions.

``open_offset_store(state)`` maps a pipeline's ``state:`` to a store: a directory gives the
SQLite store in ``STATE/offsets.sqlite``.
"""

from __future__ import annotations

from pathlib import Path

from omconnect.runtime.offsets.base import OffsetStore
from omconnect.runtime.offsets.sqlite import SqliteOffsetStore
from omconnect.runtime.offsets.transfer import export_offsets, import_offsets

__all__ = [
    "OFFSETS_FILE_NAME",
    "OffsetStore",
    "OffsetStoreUnavailableError",
    "SqliteOffsetStore",
    "export_offsets",
    "import_offsets",
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
    """
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
    directory = Path(text)
    directory.mkdir(parents=True, exist_ok=True)
    return SqliteOffsetStore(directory / OFFSETS_FILE_NAME)

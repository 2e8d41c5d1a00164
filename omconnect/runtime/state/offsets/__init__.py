"""Offset stores: where pipelines keep source positions.

The contract is ``OffsetStore``; ``SqliteOffsetStore`` is the default, in ``STATE/offsets.sqlite``
(``omconnect.runtime.state.open_offset_store`` picks the store a ``state:`` names).
"""

from omconnect.runtime.state.offsets.base import OffsetStore, OffsetStoreError
from omconnect.runtime.state.offsets.sqlite import SqliteOffsetStore
from omconnect.runtime.state.offsets.transfer import export_offsets, import_offsets

__all__ = [
    "OffsetStore",
    "OffsetStoreError",
    "SqliteOffsetStore",
    "export_offsets",
    "import_offsets",
]

"""Segment bodies: a message batch stored as one Arrow IPC stream blob.

Offsets are not stored in the body; a segment's row ``i`` has offset ``base_offset + i``, so a
body is written before the transaction that numbers it.
"""

from __future__ import annotations

import pyarrow as pa

from omconnect.schemas.message_batch import MESSAGE_BATCH_SCHEMA, MessageBatch

COMPRESSIONS = ("none", "lz4", "zstd")
_COLUMNS = MESSAGE_BATCH_SCHEMA.names


class SegmentCodec:
    """Encodes and decodes segment bodies with one IPC compression setting."""

    def __init__(self, compression: str = "lz4") -> None:
        if compression not in COMPRESSIONS:
            raise ValueError(
                f"embedded broker compression must be one of {', '.join(COMPRESSIONS)}, "
                f"not {compression!r}"
            )
        self._options = pa.ipc.IpcWriteOptions(
            compression=None if compression == "none" else compression
        )

    def encode(self, messages: MessageBatch) -> memoryview:
        """The body of a segment holding ``messages`` (any ``offset`` column is dropped)."""
        table = messages.table
        if table.schema.names != _COLUMNS:
            table = table.select(_COLUMNS)
        if table.schema != MESSAGE_BATCH_SCHEMA:
            table = table.cast(MESSAGE_BATCH_SCHEMA)
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, MESSAGE_BATCH_SCHEMA, options=self._options) as writer:
            writer.write_batch(table)
        return memoryview(sink.getvalue())

    @staticmethod
    def decode(body: bytes) -> MessageBatch:
        """The messages of a segment body (whatever compression it was written with)."""
        reader = pa.ipc.open_stream(pa.py_buffer(body))
        return MessageBatch.from_table(reader.read_next_batch())

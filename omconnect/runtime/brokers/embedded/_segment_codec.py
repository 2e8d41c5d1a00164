"""Segment bodies: a message batch stored as one Arrow IPC stream blob.

Offsets are not stored in the body; a segment's row ``i`` has offset ``base_offset + i``, so a
body is written before the transaction that numbers it.

Message ids carried as runs (``MessageIdRuns``) are stored as runs: the body has no
``message_id`` column and the runs are in the stream schema's metadata, a few bytes per
segment. Code that predates this reads such a segment's messages with null ids (the body's
other columns are as before), and this code reads segments with a string ``message_id`` column
or none at all (written before ids existed).
"""

from __future__ import annotations

import pyarrow as pa

from omconnect.schemas.message_batch import MESSAGE_BATCH_SCHEMA, MessageBatch
from omconnect.schemas.message_ids import MessageIdRuns

COMPRESSIONS = ("none", "lz4", "zstd")
_COLUMNS = MESSAGE_BATCH_SCHEMA.names
_RUNS_SCHEMA = MESSAGE_BATCH_SCHEMA.remove(MESSAGE_BATCH_SCHEMA.get_field_index("message_id"))
_RUNS_KEY = b"omconnect.message_id_runs"


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
        runs = messages.id_runs
        schema = MESSAGE_BATCH_SCHEMA if runs is None else _RUNS_SCHEMA
        if table.schema.names != schema.names:
            table = table.select(schema.names)
        if table.schema != schema:
            table = table.cast(schema)
        if runs is not None:
            schema = schema.with_metadata({_RUNS_KEY: runs.to_bytes()})
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, schema, options=self._options) as writer:
            writer.write_batch(table)
        return memoryview(sink.getvalue())

    @staticmethod
    def decode(body: bytes) -> MessageBatch:
        """The messages of a segment body (whatever compression it was written with).

        Raises:
            ValueError: the body's id runs are unreadable.
        """
        reader = pa.ipc.open_stream(pa.py_buffer(body))
        table = reader.read_next_batch()
        stored = (reader.schema.metadata or {}).get(_RUNS_KEY)
        if stored is None:
            return MessageBatch.from_table(table)
        runs = MessageIdRuns.from_bytes(stored)
        if table.schema.names != _RUNS_SCHEMA.names or len(runs) != table.num_rows:
            raise ValueError("a segment's message id runs do not match its messages")
        return MessageBatch(table.replace_schema_metadata(None), runs)

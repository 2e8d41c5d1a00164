"""``MessageBatch``: many broker messages in columnar form, the way the runtime moves them.

One row per message: ``key`` and ``value`` bytes, the born ``timestamp`` (epoch ms) and the
``headers`` (string -> bytes). Consumers add the broker-assigned ``offset`` of each message.
The OpenMessaging 1.0 view of a single row is ``omconnect.schemas.message.Message``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

HEADERS_TYPE = pa.map_(pa.string(), pa.binary())

MESSAGE_BATCH_SCHEMA = pa.schema(
    [
        pa.field("key", pa.binary()),
        pa.field("value", pa.binary()),
        pa.field("timestamp", pa.int64(), nullable=False),
        pa.field("headers", HEADERS_TYPE),
    ]
)


@dataclass(frozen=True)
class MessageBatch:
    """A columnar batch of messages bound for, or read from, one topic partition."""

    table: pa.RecordBatch

    @classmethod
    def build(
        cls,
        values: pa.Array | Sequence[bytes | None],
        keys: pa.Array | Sequence[bytes | None] | None = None,
        timestamps: pa.Array | np.ndarray | int | None = None,
        headers: pa.Array | Sequence[Mapping[str, bytes] | None] | None = None,
        offsets: pa.Array | np.ndarray | None = None,
    ) -> MessageBatch:
        """Assemble a batch; ``timestamps`` may be one value for all rows (default: now)."""
        value_array = _binary(values)
        n = len(value_array)
        key_array = _binary(keys) if keys is not None else pa.nulls(n, pa.binary())
        if timestamps is None or isinstance(timestamps, int):
            import time

            ts = int(time.time() * 1000) if timestamps is None else timestamps
            ts_array = pa.array(np.full(n, ts, dtype=np.int64))
        else:
            ts_array = pa.array(timestamps, pa.int64())
        if headers is None:
            header_array = pa.nulls(n, HEADERS_TYPE)
        elif isinstance(headers, pa.Array):
            header_array = headers
        else:
            header_array = pa.array(
                [list(h.items()) if h is not None else None for h in headers], HEADERS_TYPE
            )
        columns = [key_array, value_array, ts_array, header_array]
        names = ["key", "value", "timestamp", "headers"]
        if offsets is not None:
            columns.append(pa.array(offsets, pa.int64()))
            names.append("offset")
        return cls(pa.RecordBatch.from_arrays(columns, names=names))

    @classmethod
    def concat(cls, batches: Sequence[MessageBatch]) -> MessageBatch:
        if len(batches) == 1:
            return batches[0]
        table = pa.Table.from_batches([b.table for b in batches]).combine_chunks()
        return cls(table.to_batches()[0] if table.num_rows else batches[0].table.slice(0, 0))

    def __len__(self) -> int:
        return self.table.num_rows

    @property
    def nbytes(self) -> int:
        return self.table.nbytes

    @property
    def keys(self) -> pa.BinaryArray:
        return self.table.column("key")

    @property
    def values(self) -> pa.BinaryArray:
        return self.table.column("value")

    @property
    def timestamps(self) -> pa.Int64Array:
        return self.table.column("timestamp")

    @property
    def headers(self) -> pa.MapArray:
        return self.table.column("headers")

    @property
    def offsets(self) -> pa.Int64Array | None:
        names = self.table.schema.names
        return self.table.column("offset") if "offset" in names else None

    def header_dict(self, row: int) -> dict[str, bytes]:
        """The headers of one message (the slow path, for tails and dead letters)."""
        item = self.headers[row].as_py()
        return dict(item) if item else {}

    def slice(self, offset: int, length: int | None = None) -> MessageBatch:
        return MessageBatch(self.table.slice(offset, length))

    def take(self, rows: Sequence[int] | np.ndarray) -> MessageBatch:
        return MessageBatch(self.table.take(pa.array(rows, pa.int64())))

    def with_offsets(self, first_offset: int) -> MessageBatch:
        """The same messages numbered ``first_offset, first_offset + 1, ...``."""
        offsets = np.arange(first_offset, first_offset + len(self), dtype=np.int64)
        table = self.table
        if "offset" in table.schema.names:
            table = table.drop_columns(["offset"])
        return MessageBatch(table.append_column("offset", pa.array(offsets)))


def _binary(values: pa.Array | Sequence[bytes | None]) -> pa.Array:
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if isinstance(values, pa.Array):
        if values.type == pa.large_binary() or values.type == pa.string():
            return values.cast(pa.binary())
        return values
    return pa.array(values, pa.binary())

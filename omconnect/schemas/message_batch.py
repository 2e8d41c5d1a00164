"""``MessageBatch``: many broker messages in columnar form, the way the runtime moves them.

One row per message: ``key`` and ``value`` bytes, the born ``timestamp`` (epoch ms), the
``headers`` (string -> bytes) and the ``message_id`` (OpenMessaging's ``header.message_id``,
null when the producer set none). Consumers add the broker-assigned ``offset`` of each
message. The OpenMessaging 1.0 view of a single row is ``omconnect.schemas.message.Message``.

The message id has a column of its own rather than an entry in every row's header map: it is
on every message, and a map entry costs its name and two offsets per row on top of the id.
Drivers carry it as their broker's native id where there is one and as the ``oms.message_id``
header otherwise; ``header_dict`` shows it under that name. Ids the runtime derived from
positions travel as ``MessageIdRuns`` (a few numbers per batch instead of a string per row)
until something reads ``message_ids``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from omconnect.schemas.message_ids import MessageIdRuns

HEADERS_TYPE = pa.map_(pa.string(), pa.binary())

MESSAGE_ID_HEADER = "oms.message_id"

MESSAGE_BATCH_SCHEMA = pa.schema(
    [
        pa.field("key", pa.binary()),
        pa.field("value", pa.binary()),
        pa.field("timestamp", pa.int64(), nullable=False),
        pa.field("headers", HEADERS_TYPE),
        pa.field("message_id", pa.string()),
    ]
)
_WITHOUT_IDS = MESSAGE_BATCH_SCHEMA.remove(MESSAGE_BATCH_SCHEMA.get_field_index("message_id"))


@dataclass(frozen=True)
class MessageBatch:
    """A columnar batch of messages bound for, or read from, one topic partition.

    Attributes:
        table: the columns of ``MESSAGE_BATCH_SCHEMA`` (plus ``offset`` on consumed batches);
            without ``message_id`` when ``id_runs`` holds the ids.
        id_runs: the message ids as runs (ids the runtime derived), or None when they are
            the ``message_id`` column. Read ids through ``message_ids``.
    """

    table: pa.RecordBatch
    id_runs: MessageIdRuns | None = None

    @classmethod
    def build(
        cls,
        values: pa.Array | Sequence[bytes | None],
        keys: pa.Array | Sequence[bytes | None] | None = None,
        timestamps: pa.Array | np.ndarray | int | None = None,
        headers: pa.Array | Sequence[Mapping[str, bytes] | None] | None = None,
        offsets: pa.Array | np.ndarray | None = None,
        message_ids: pa.Array | MessageIdRuns | Sequence[str | None] | None = None,
    ) -> MessageBatch:
        """Assemble a batch; ``timestamps`` may be one value for all rows (default: now).

        Raises:
            ValueError: ``message_ids`` are runs of another length than ``values``.
        """
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
        runs = message_ids if isinstance(message_ids, MessageIdRuns) else None
        columns = [key_array, value_array, ts_array, header_array]
        schema = MESSAGE_BATCH_SCHEMA if runs is None else _WITHOUT_IDS
        if runs is not None:
            if len(runs) != n:
                raise ValueError(f"{len(runs)} message ids for {n} messages")
        elif message_ids is None:
            columns.append(pa.nulls(n, pa.string()))
        elif isinstance(message_ids, pa.Array):
            columns.append(message_ids.cast(pa.string()))
        else:
            columns.append(pa.array(message_ids, pa.string()))
        if offsets is not None:
            columns.append(pa.array(offsets, pa.int64()))
            schema = schema.append(pa.field("offset", pa.int64()))
        # Built with the declared schema (non-null timestamps), so a broker storing batches
        # never has to cast them to it.
        columns = [
            c if c.type == f.type else c.cast(f.type) for c, f in zip(columns, schema, strict=True)
        ]
        return cls(pa.RecordBatch.from_arrays(columns, schema=schema), runs)

    @classmethod
    def from_table(cls, table: pa.RecordBatch) -> MessageBatch:
        """A batch of a record batch with the message batch columns (plus ``offset``); one
        written before message ids had their column gets a null one."""
        if "message_id" not in table.schema.names:
            at = table.schema.get_field_index("headers") + 1
            table = table.add_column(at, "message_id", pa.nulls(table.num_rows, pa.string()))
        schema = MESSAGE_BATCH_SCHEMA
        if "offset" in table.schema.names:
            schema = schema.append(pa.field("offset", pa.int64()))
        if table.schema != schema:
            table = table.select(schema.names).cast(schema)
        return cls(table)

    @classmethod
    def concat(cls, batches: Sequence[MessageBatch]) -> MessageBatch:
        """The messages of ``batches`` in order; ids stay runs when every batch has runs."""
        if len(batches) == 1:
            return batches[0]
        runs = None
        if all(b.id_runs is not None for b in batches):
            runs = MessageIdRuns.concat([b.id_runs for b in batches if b.id_runs is not None])
            tables = [b.table for b in batches]
        else:
            tables = [b._with_id_column() for b in batches]
        table = pa.Table.from_batches(tables).combine_chunks()
        return cls(table.to_batches()[0] if table.num_rows else tables[0].slice(0, 0), runs)

    def __len__(self) -> int:
        return self.table.num_rows

    @property
    def nbytes(self) -> int:
        """The bytes of the columns, with id runs at their compact size."""
        runs = self.id_runs
        return self.table.nbytes + (runs.nbytes if runs is not None else 0)

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
    def message_ids(self) -> pa.StringArray:
        """One id per message (null where none was set); runs are built into strings on the
        first read."""
        if self.id_runs is not None:
            return self.id_runs.to_array()
        return self.table.column("message_id")

    @property
    def carried_message_ids(self) -> pa.StringArray | MessageIdRuns:
        """The ids as the batch carries them: the runs if it has them, else the strings
        (what a runtime passing ids on uses, so runs are not built into strings)."""
        return self.id_runs if self.id_runs is not None else self.table.column("message_id")

    @property
    def offsets(self) -> pa.Int64Array | None:
        names = self.table.schema.names
        return self.table.column("offset") if "offset" in names else None

    def header_dict(self, row: int) -> dict[str, bytes]:
        """The headers of one message, its message id as ``oms.message_id`` among them (the
        slow path, for tails and dead letters)."""
        item = self.headers[row].as_py()
        found = dict(item) if item else {}
        message_id = self.message_ids[row].as_py()
        if message_id is not None:
            found.setdefault(MESSAGE_ID_HEADER, message_id.encode())
        return found

    def slice(self, offset: int, length: int | None = None) -> MessageBatch:
        runs = self.id_runs.slice(offset, length) if self.id_runs is not None else None
        return MessageBatch(self.table.slice(offset, length), runs)

    def take(self, rows: Sequence[int] | np.ndarray) -> MessageBatch:
        """The messages at ``rows`` (id runs become strings)."""
        return MessageBatch(self._with_id_column().take(pa.array(rows, pa.int64())))

    def with_offsets(self, first_offset: int) -> MessageBatch:
        """The same messages numbered ``first_offset, first_offset + 1, ...``."""
        offsets = np.arange(first_offset, first_offset + len(self), dtype=np.int64)
        table = self.table
        if "offset" in table.schema.names:
            table = table.drop_columns(["offset"])
        return MessageBatch(table.append_column("offset", pa.array(offsets)), self.id_runs)

    def _with_id_column(self) -> pa.RecordBatch:
        """``table`` with the ids as its ``message_id`` column."""
        if self.id_runs is None:
            return self.table
        at = self.table.schema.get_field_index("headers") + 1
        return self.table.add_column(at, "message_id", self.id_runs.to_array())


def _binary(values: pa.Array | Sequence[bytes | None]) -> pa.Array:
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if isinstance(values, pa.Array):
        if values.type == pa.large_binary() or values.type == pa.string():
            return values.cast(pa.binary())
        return values
    return pa.array(values, pa.binary())

"""Debezium-compatible change events of one table, built as Arrow batches.

The value of an event is Debezium's envelope::

    {before: Row | null, after: Row | null,
     source: {version, connector, name, ts_ms, snapshot, db, schema, table, txId, lsn},
     op: "r" | "c" | "u" | "d" | "t", ts_ms, unchanged: [column, ...] | null}

``Row`` holds the table's columns, all nullable (a delete's ``before`` holds only the replica
identity under the default identity). ``unchanged`` is omconnect's addition: the columns of
``after`` whose TOASTed value the server did not send (left null). The key is the table's key
columns. Names follow Debezium's: ``<schema>_<table>_Value`` (the row), ``..._Envelope``,
``..._Key``.

A table's changes arrive as tuples of texts (``_pgoutput``); each column of a batch of them
becomes one typed Arrow column (``_pg_text.column``), not a Python value per row.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from omconnect.connectors.sql import _pg_text
from omconnect.connectors.sql._pgoutput import UNCHANGED, Value
from omconnect.schemas import types as t
from omconnect.schemas.arrow import to_arrow_field, to_arrow_schema
from omconnect.schemas.schema import Schema
from omconnect.schemas.types import Field

VERSION = "omconnect-0.1"

_SOURCE = t.struct(
    Field("version", t.string(), False),
    Field("connector", t.string(), False),
    Field("name", t.string(), False),
    Field("ts_ms", t.int64(), False),
    Field("snapshot", t.string(), True),
    Field("db", t.string(), False),
    Field("schema", t.string(), False),
    Field("table", t.string(), False),
    Field("txId", t.int64(), True),
    Field("lsn", t.int64(), True),
    name="io.debezium.connector.postgresql.Source",
)


@dataclass
class TableEvents:
    """The event schemas of one table at one version of its columns."""

    schema_name: str
    name: str
    columns: tuple[tuple[str, int, int], ...]  # (name, type oid, type modifier)
    key: tuple[str, ...]
    version: int = 1
    row_fields: tuple[Field, ...] = field(init=False)
    value_schema: Schema = field(init=False, repr=False)
    key_schema: Schema = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.rebuild()

    @property
    def stream(self) -> str:
        return f"{self.schema_name}.{self.name}"

    def rebuild(self) -> None:
        """The schemas of the current ``columns`` and ``version``."""
        base = f"{self.schema_name}_{self.name}"
        self.row_fields = tuple(
            Field(name, _pg_text.type_of(oid, modifier), True)
            for name, oid, modifier in self.columns
        )
        missing = [k for k in self.key if k not in {f.name for f in self.row_fields}]
        if missing:
            raise ValueError(f"table {self.stream} lost its key columns {missing}")
        row = t.struct(*self.row_fields, name=f"{base}_Value")
        self.value_schema = Schema(
            name=f"{base}_Envelope",
            version=self.version,
            fields=(
                Field("before", row, True),
                Field("after", row, True),
                Field("source", _SOURCE, False),
                Field("op", t.string(), False),
                Field("ts_ms", t.int64(), False),
                Field("unchanged", t.array(t.string(), items_nullable=False), True),
            ),
        )
        self.key_schema = Schema(
            name=f"{base}_Key",
            version=self.version,
            fields=tuple(
                Field(f.name, f.type, False) for f in self.row_fields if f.name in self.key
            ),
        )

    def row_type(self) -> pa.StructType:
        return to_arrow_field(self.value_schema.fields[0]).type


@dataclass(frozen=True)
class SourceInfo:
    """What ``source`` says of a batch of events."""

    name: str
    db: str
    commit_time_ms: int
    snapshot: str | None  # "true", "last", "false"; None streaming
    xid: int | None
    lsn: int | None


def rows_from_texts(
    table: TableEvents, rows: Sequence[tuple[Value, ...] | None]
) -> tuple[pa.StructArray, list[list[str]]]:
    """A ``Row`` struct column of tuples of texts (None: no row), and per row the columns
    that were ``UNCHANGED`` (null in the struct)."""
    count = len(rows)
    unchanged: list[list[str]] = [[] for _ in range(count)]
    columns = []
    for index, f in enumerate(table.row_fields):
        texts: list[bytes | None] = []
        for row_number, row in enumerate(rows):
            value = None if row is None or index >= len(row) else row[index]
            if value is UNCHANGED:
                unchanged[row_number].append(f.name)
                value = None
            texts.append(value)  # type: ignore[arg-type]
        try:
            columns.append(_pg_text.column(texts, f.type))
        except ValueError as error:
            raise ValueError(f"table {table.stream}, column {f.name}: {error}") from None
    mask = pa.array([row is None for row in rows], pa.bool_())
    row_type = table.row_type()
    return pa.StructArray.from_arrays(columns, fields=list(row_type), mask=mask), unchanged


def rows_from_batch(table: TableEvents, batch: pa.RecordBatch) -> pa.StructArray:
    """A ``Row`` struct column of a snapshot batch (columns in ``table``'s order)."""
    row_type = table.row_type()
    columns = [batch.column(i).cast(row_type.field(i).type) for i in range(batch.num_columns)]
    return pa.StructArray.from_arrays(columns, fields=list(row_type))


def envelopes(
    table: TableEvents,
    ops: Sequence[str],
    before: pa.Array,
    after: pa.Array,
    source: SourceInfo,
    unchanged: Sequence[Sequence[str]] | None = None,
) -> pa.RecordBatch:
    """The envelope batch of ``ops`` (``before``/``after``: ``Row`` structs or nulls)."""
    count = len(ops)
    arrow_schema = to_arrow_schema(table.value_schema)
    source_type = arrow_schema.field("source").type
    source_values = {
        "version": VERSION,
        "connector": "postgresql",
        "name": source.name,
        "ts_ms": source.commit_time_ms,
        "snapshot": source.snapshot,
        "db": source.db,
        "schema": table.schema_name,
        "table": table.name,
        "txId": source.xid,
        "lsn": source.lsn,
    }
    source_column = pa.StructArray.from_arrays(
        [pa.repeat(pa.scalar(source_values[f.name], f.type), count) for f in source_type],
        fields=list(source_type),
    )
    unchanged_type = arrow_schema.field("unchanged").type
    unchanged_column = (
        pa.array([list(u) if u else None for u in unchanged], unchanged_type)
        if unchanged is not None
        else pa.nulls(count, unchanged_type)
    )
    now = int(time.time() * 1000)
    return pa.RecordBatch.from_arrays(
        [
            before,
            after,
            source_column,
            pa.array(ops, pa.string()),
            pa.repeat(pa.scalar(now, pa.int64()), count),
            unchanged_column,
        ],
        schema=arrow_schema,
    )


def null_rows(table: TableEvents, count: int) -> pa.Array:
    return pa.nulls(count, table.row_type())


def keys_of(table: TableEvents, rows: pa.StructArray) -> pa.RecordBatch:
    """The key columns of ``rows`` (a ``Row`` struct column), as the key schema types them."""
    names = [f.name for f in table.key_schema.fields]
    return pa.RecordBatch.from_arrays([rows.field(name) for name in names], names=names)


def with_tombstones(
    values: pa.RecordBatch, keys: pa.RecordBatch, deletes: np.ndarray
) -> tuple[pa.RecordBatch, pa.RecordBatch, pa.Array | None]:
    """Each delete event followed by a tombstone of its key (the same row, marked)."""
    if not deletes.any():
        return values, keys, None
    repeats = np.where(deletes, 2, 1)
    order = pa.array(np.repeat(np.arange(len(deletes)), repeats))
    tombstones = np.zeros(int(repeats.sum()), dtype=np.bool_)
    ends = np.cumsum(repeats) - 1
    tombstones[ends[deletes]] = True
    return values.take(order), keys.take(order), pa.array(tombstones)


__all__ = [
    "SourceInfo",
    "TableEvents",
    "envelopes",
    "keys_of",
    "null_rows",
    "rows_from_batch",
    "rows_from_texts",
    "with_tombstones",
]

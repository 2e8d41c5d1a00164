"""The rows every conformance test moves, and the sink batches that carry them.

Rows have an ``id`` (int64, unique, the key), a ``name`` (string) and an ``amount`` (float64,
multiples of 0.5 so text formats round-trip them exactly); the schema-change tests add a
``note`` (string). Every format can hold these, so one set of assertions serves every
connector.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from omconnect.connectors.api import Position, PositionMark, RecordBatch
from omconnect.schemas.arrow import from_arrow_schema

STANDARD_COLUMNS = ("id", "name", "amount")
EXTRA_COLUMN = "note"
SCHEMA_NAME = "conformance"


def standard_rows(first: int, count: int, *, extra_column: bool = False) -> pa.Table:
    """Rows with ids ``first .. first + count - 1``; with ``extra_column`` also ``note``."""
    ids = np.arange(first, first + count, dtype=np.int64)
    columns = {
        "id": pa.array(ids),
        "name": pa.array([f"name-{i}" for i in ids.tolist()], pa.string()),
        "amount": pa.array(ids * 0.5),
    }
    if extra_column:
        columns[EXTRA_COLUMN] = pa.array([f"note-{i}" for i in ids.tolist()], pa.string())
    return pa.table(columns)


def sink_batches(
    rows: pa.Table,
    *,
    topic: str,
    partition: int,
    first_offset: int,
    batch_rows: int,
    key_fields: Sequence[str] = ("id",),
) -> list[RecordBatch]:
    """``rows`` as sink batches of ``batch_rows`` rows from one topic partition, numbered
    from ``first_offset``; each batch ends with the mark ``{"offset": next offset}``."""
    schema = from_arrow_schema(rows.schema, SCHEMA_NAME, key_fields)
    batches = []
    offset = first_offset
    for values in rows.combine_chunks().to_batches(max_chunksize=batch_rows):
        offset += values.num_rows
        mark = PositionMark(
            values.num_rows,
            Position({"topic": topic, "partition": partition}, {"offset": offset}),
        )
        batches.append(RecordBatch(values=values, schema=schema, marks=(mark,)))
    return batches


def ids_of(table: pa.Table | Sequence[RecordBatch]) -> list[int]:
    """The ``id`` column of a table or of batches, in order."""
    if isinstance(table, pa.Table):
        return [int(v) for v in table.column("id").to_pylist()]
    return [int(v) for b in table for v in b.values.column("id").to_pylist()]


def as_standard_table(
    rows: Sequence[RecordBatch] | pa.Table, columns: Sequence[str] = STANDARD_COLUMNS
) -> pa.Table:
    """``columns`` of the rows, cast to the standard types and sorted by id (to compare what a
    connector produced with what was written, whatever integer width it chose)."""
    expected = standard_rows(0, 0, extra_column=EXTRA_COLUMN in columns).schema
    target = pa.schema([expected.field(c) for c in columns])
    if isinstance(rows, pa.Table):
        table = rows.select(list(columns)).cast(target)
    else:
        parts = [pa.Table.from_batches([b.values]).select(list(columns)).cast(target) for b in rows]
        table = pa.concat_tables(parts) if parts else target.empty_table()
    return table.sort_by("id")

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
import pyarrow.compute as pc

from omconnect.connectors.api import Position, PositionMark, RecordBatch
from omconnect.schemas.arrow import from_arrow_schema
from omconnect.schemas.record import partition_id

STANDARD_COLUMNS = ("id", "name", "amount")
EXTRA_COLUMN = "note"
SCHEMA_NAME = "conformance"


def standard_rows(first: int, count: int, *, extra_column: bool = False) -> pa.Table:
    """Rows with ids ``first .. first + count - 1``; with ``extra_column`` also ``note``."""
    return standard_rows_of(np.arange(first, first + count, dtype=np.int64), extra_column)


def standard_rows_of(ids: Sequence[int] | np.ndarray, extra_column: bool = False) -> pa.Table:
    """The standard rows of ``ids``, in that order (repeats allowed)."""
    ids = np.asarray(ids, dtype=np.int64)
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
    deletes: Sequence[bool] | None = None,
) -> list[RecordBatch]:
    """``rows`` as sink batches of ``batch_rows`` rows from one topic partition, numbered
    from ``first_offset``; each batch ends with the mark ``{"offset": next offset}`` and
    carries ``topic`` and ``partition``, as the runtime's do.

    ``deletes`` (one flag per row) makes rows deletes (tombstones), shaped as the runtime
    delivers them: every value column null, the key in explicit ``keys`` (given for every
    row of those batches), the flag in ``tombstones``.
    """
    schema = from_arrow_schema(rows.schema, SCHEMA_NAME, key_fields)
    rows = rows.combine_chunks()
    flags = None
    if deletes is not None:
        if len(deletes) != rows.num_rows:
            raise ValueError(f"{len(deletes)} delete flags for {rows.num_rows} rows")
        if not key_fields:
            raise ValueError("deletes need key fields: a delete is a key without a value")
        flags = pa.array(list(deletes), pa.bool_())
    batches = []
    offset = first_offset
    for start in range(0, rows.num_rows, batch_rows):
        values = _one_batch(rows.slice(start, batch_rows))
        offset += values.num_rows
        mark = PositionMark(
            values.num_rows,
            Position({"topic": topic, "partition": partition}, {"offset": offset}),
        )
        batch = RecordBatch(
            values=values, schema=schema, marks=(mark,), topic=topic, partition=partition
        )
        if flags is not None:
            batch = _as_deletes(batch, flags.slice(start, values.num_rows), key_fields)
        batches.append(batch)
    return batches


def _one_batch(table: pa.Table) -> pa.RecordBatch:
    if table.num_rows == 0:
        return pa.RecordBatch.from_pylist([], schema=table.schema)
    return table.combine_chunks().to_batches()[0]


def _as_deletes(
    batch: RecordBatch, flags: pa.BooleanArray, key_fields: Sequence[str]
) -> RecordBatch:
    """``batch`` with the ``flags`` rows turned into deletes of their keys."""
    keys = batch.values.select(list(key_fields))
    values = pa.RecordBatch.from_arrays(
        [pc.if_else(flags, pa.scalar(None, c.type), c) for c in batch.values.columns],
        schema=batch.values.schema,
    )
    key_schema = batch.schema.key_schema()
    return RecordBatch(
        values=values,
        schema=batch.schema,
        marks=batch.marks,
        keys=keys,
        key_schema=key_schema,
        tombstones=flags if pc.any(flags).as_py() else None,
        topic=batch.topic,
        partition=batch.partition,
    )


def row_offsets(batches: Sequence[RecordBatch]) -> dict[str, list[tuple[int, int | None]]]:
    """For each partition (by ``partition_id``), the ``(offset, id)`` of every row put, in
    order; deletes have id None. A row's offset is its mark's offset minus the rows between
    it and the mark (kit batches hold one message per row)."""
    found: dict[str, list[tuple[int, int | None]]] = {}
    for batch in batches:
        deleted = batch.delete_mask()
        ids = batch.values.column("id").to_pylist()
        start = 0
        for mark in batch.marks:
            end_offset = int(mark.position.offset["offset"])
            rows = found.setdefault(partition_id(mark.position.partition), [])
            for row in range(start, mark.end_row):
                offset = end_offset - (mark.end_row - row)
                rows.append((offset, None if deleted[row] else ids[row]))
            start = mark.end_row
    return found


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

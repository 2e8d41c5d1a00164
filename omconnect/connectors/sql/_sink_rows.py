"""A sink batch as the rows the sql sink stages: key and value columns, where each row came
from, whether it is a delete; and the column-at-a-time conversions a driver needs.

Source positions: every staged row carries ``__omconnect_topic_partition`` (``topic:partition``)
and ``__omconnect_offset`` (the message offset). A mark's offset means "every message before
it"; the rows between two marks of a partition get consecutive offsets from the earlier one
(from the mark's offset minus the rows when a batch opens with rows), so offsets grow with the
messages in a partition even where rows were dropped on the way. Upserts compare them: a row
replayed from an older offset of the same partition never overwrites a newer one.

Keys: a row's key columns come from its message key, and where that has none (a message
without a key on a keyed topic) from its value: such a row is keyed, not refused. A key
column in neither (records of a schema without it) is a ``MissingKeyColumn`` naming it.

Everything here is vectorised over Arrow columns; no Python object is made per row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from omconnect.codecs.json_text import json_texts
from omconnect.codecs.uuid_text import uuid_to_text
from omconnect.connectors.api import ConnectorError, Position, RecordBatch, TopicPartition
from omconnect.schemas.arrow import from_arrow_field
from omconnect.schemas.schema import Schema
from omconnect.schemas.types import Field

PARTITION_COLUMN = "__omconnect_topic_partition"
OFFSET_COLUMN = "__omconnect_offset"
DELETE_COLUMN = "__omconnect_delete"
ROW_COLUMN = "__omconnect_row"  # a staged row's number, in a flush that spares refused rows
POSITION_COLUMNS = (PARTITION_COLUMN, OFFSET_COLUMN)


class MissingKeyColumn(ConnectorError):
    """A key column is in neither the keys nor the values of a batch's records (``column``)."""

    def __init__(self, column: str, known: Sequence[str]) -> None:
        super().__init__(
            f"key column {column!r} is not in the records (their columns: {', '.join(known)})"
        )
        self.column = column


@dataclass(frozen=True)
class StagedRows:
    """Rows of one schema ready to write: ``rows`` holds the fields of ``schema`` (keys
    included), then the position columns and the delete flag. Row ``i`` is row
    ``origin_rows[i]`` of the record batch ``origin`` (what a dead letter of it carries),
    row ``i`` when ``origin_rows`` is None (every row of it kept)."""

    schema: Schema
    key: tuple[str, ...]
    rows: pa.Table
    origin: RecordBatch | None = None
    origin_rows: np.ndarray | None = None


def staged_rows(batch: RecordBatch, key: Sequence[str] | None) -> StagedRows:
    """Every row of ``batch`` (deletes included, flagged) as staged rows.

    The key is ``key`` if given, else the batch's key (explicit keys, else the schema's key
    fields). Key columns are taken from the explicit keys where the batch has them (a
    delete's value columns are null), and from the values where the keys have none.

    Raises:
        MissingKeyColumn: a key column is in neither the keys nor the values.
        ConnectorError: the batch has rows after its last mark.
    """
    names = list(key) if key is not None else _batch_key_names(batch)
    schema = batch.schema
    columns = dict(zip(batch.values.schema.names, batch.values.columns, strict=True))
    keys = batch.keys
    fields = list(schema.fields)
    for name in names:
        if keys is not None and name in keys.schema.names:
            column = keys.column(name)
            if name in columns and column.null_count:
                column = _key_or_value(column, columns[name])
            columns[name] = column
            if name not in schema.names:
                fields.insert(0, _key_field(batch, name))
        elif name not in columns:
            known = sorted(set(schema.names) | set(keys.schema.names if keys else ()))
            raise MissingKeyColumn(name, known)
    schema = schema.with_fields(fields)
    schema = Schema(schema.name, schema.fields, schema.version, tuple(names), schema.doc)
    labels, offsets = row_positions(batch)
    deleted = batch.delete_mask()
    table = pa.table(
        {
            **{f.name: columns[f.name] for f in schema.fields},
            PARTITION_COLUMN: labels,
            OFFSET_COLUMN: pa.array(offsets),
            DELETE_COLUMN: pa.array(deleted),
        }
    )
    return StagedRows(schema, tuple(names), table)


def _key_or_value(key: pa.Array, value: pa.Array) -> pa.Array:
    """A key column with its nulls filled from the value's column of the same name (as the
    key's type; the key column as it is when the value's does not cast to it)."""
    try:
        value = value.cast(key.type)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return key
    return pc.coalesce(key, value)


def _batch_key_names(batch: RecordBatch) -> list[str]:
    if batch.keys is not None:
        return list(batch.keys.schema.names)
    return list(batch.schema.key_fields)


def _key_field(batch: RecordBatch, name: str) -> Field:
    key_schema = batch.key_schema
    if key_schema is not None and name in key_schema.names:
        return key_schema.field(name)
    assert batch.keys is not None
    return from_arrow_field(batch.keys.schema.field(name))


def row_positions(batch: RecordBatch) -> tuple[pa.Array, np.ndarray]:
    """Each row's ``topic:partition`` label and message offset (see the module docstring).

    Raises:
        ConnectorError: rows after the last mark, or a mark that is not a broker position.
    """
    marks = batch.marks
    if batch.num_rows and (not marks or marks[-1].end_row < batch.num_rows):
        raise ConnectorError("the sql sink needs a position mark after the last row of a batch")
    offsets = np.empty(batch.num_rows, dtype=np.int64)
    labels: list[pa.Array] = []
    reached: dict[TopicPartition, int] = {}
    start = 0
    for mark in marks:
        rows = mark.end_row - start
        partition, end = topic_partition(mark.position), next_offset(mark.position)
        first = reached.get(partition, end - rows)
        offsets[start : mark.end_row] = first + np.arange(rows, dtype=np.int64)
        if rows:
            labels.append(pa.repeat(pa.scalar(label_of(partition)), rows))
        reached[partition] = end
        start = mark.end_row
    label = pa.concat_arrays(labels) if labels else pa.array([], pa.string())
    return label, offsets


def label_of(partition: TopicPartition) -> str:
    """The value of ``__omconnect_topic_partition`` for rows of ``partition``."""
    return f"{partition.topic}:{partition.partition}"


def topic_partition(position: Position) -> TopicPartition:
    """The topic partition a sink position names.

    Raises:
        ConnectorError: the position does not name ``{"topic", "partition"}``.
    """
    try:
        return TopicPartition(
            str(position.partition["topic"]), int(position.partition["partition"])
        )
    except (KeyError, TypeError, ValueError) as err:
        raise ConnectorError(
            f"a sink position must name {{'topic', 'partition'}}, got {dict(position.partition)}"
        ) from err


def next_offset(position: Position) -> int:
    """The offset a sink position reaches (every message before it).

    Raises:
        ConnectorError: the position has no integer ``offset``.
    """
    try:
        return int(position.offset["offset"])
    except (KeyError, TypeError, ValueError) as err:
        raise ConnectorError(
            f"a sink position must carry {{'offset': n}}, got {dict(position.offset)}"
        ) from err


def last_per_key(rows: pa.Table, key: Sequence[str]) -> pa.Table:
    """``rows`` with only the last row of each key, in their original order."""
    kept = last_per_key_rows(rows, key)
    return rows if kept is None else rows.take(pa.array(kept))


def last_per_key_rows(rows: pa.Table, key: Sequence[str]) -> np.ndarray | None:
    """The indexes of the last row of each key of ``rows``, ascending; None when that is
    every row."""
    if rows.num_rows < 2:
        return None
    numbered = rows.select(list(key)).append_column("__row", pa.array(np.arange(rows.num_rows)))
    last = numbered.group_by(list(key), use_threads=False).aggregate([("__row", "max")])
    kept = np.sort(last.column("__row_max").to_numpy())
    return None if len(kept) == rows.num_rows else kept


def null_key_rows(rows: pa.Table, key: Sequence[str]) -> dict[str, np.ndarray]:
    """The rows with a null in a key column, by the first such column of their key: key
    column -> row indexes (only columns that are the first null of some row)."""
    found: dict[str, np.ndarray] = {}
    seen = np.zeros(rows.num_rows, dtype=np.bool_)
    for name in key:
        column = rows.column(name)
        if not column.null_count:
            continue
        null = np.asarray(pc.is_null(column).to_numpy(zero_copy_only=False)) & ~seen
        if null.any():
            found[name] = np.flatnonzero(null)
            seen |= null
    return found


def portable_column(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    """``column`` in a type every driver writes: uuids as text, json/array/map/struct as JSON
    text, enums (dictionaries) decoded, float16 widened, the null type as text."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    kind = array.type
    if isinstance(kind, pa.UuidType):
        return uuid_to_text(array)
    if isinstance(kind, pa.JsonType):
        return array.storage
    if pa.types.is_dictionary(kind):
        return array.dictionary_decode()
    if pa.types.is_nested(kind):
        return json_texts(array)
    if pa.types.is_float16(kind):
        return array.cast(pa.float32())
    if pa.types.is_null(kind):
        return array.cast(pa.string())
    if pa.types.is_uint64(kind):
        return array.cast(pa.decimal128(20, 0))
    return array


def sql_text_column(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    """``column`` as the text SQL parses for its type: timestamps as UTC
    ``YYYY-MM-DD HH:MM:SS.ffffff``, times and dates in ISO form, booleans as 1/0, decimals
    and numbers as Arrow prints them; strings and binaries stay as they are."""
    array = portable_column(column)
    kind = array.type
    if pa.types.is_timestamp(kind):
        return array.cast(pa.timestamp(kind.unit)).cast(pa.string())
    if pa.types.is_boolean(kind):
        return array.cast(pa.int8()).cast(pa.string())
    if pa.types.is_string(kind) or pa.types.is_binary(kind) or pa.types.is_large_string(kind):
        return array
    return array.cast(pa.string())

"""What a file sink writes for deletes (tombstones): nothing (``skip``), or a row flagged in a
``__deleted`` column (``mark``, Debezium's delete rewrite).

A delete reaches a sink as a row whose value columns are null and whose key is in the batch's
key columns (``RecordBatch.key_columns``). Marking rewrites whole batches with Arrow compute:
the key columns of delete rows are filled from the key, every other column of them is null.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from omconnect.connectors.api import ConnectorError, RecordBatch
from omconnect.schemas import Field, Schema
from omconnect.schemas.types import boolean

DeleteMode = Literal["skip", "mark"]
DELETED_COLUMN = "__deleted"

Mask = npt.NDArray[np.bool_]


def marked_rows(batch: RecordBatch, deleted: Mask) -> tuple[pa.RecordBatch, Schema]:
    """The rows of ``batch`` with deletes filled from their keys and a ``__deleted`` column
    (true for deletes, false otherwise), and their schema: columns other than the key are
    nullable (a delete has no value for them), ``__deleted`` is a non-null boolean.

    A column named ``__deleted`` already in the rows (an upstream rewrite) stays true where
    it was true.

    Raises:
        ConnectorError: a key column cannot be cast to the type of the value column it fills.
    """
    values = batch.values
    keys = batch.key_columns()
    key_names = set(keys.schema.names) if keys is not None else set()
    key_names |= set(batch.schema.key_fields)
    flags = pa.array(deleted, pa.bool_())
    arrow_fields: list[pa.Field] = []
    columns: list[pa.Array] = []
    for field, column in zip(values.schema, values.columns, strict=True):
        if field.name == DELETED_COLUMN:
            continue
        if deleted.any():
            fill = pa.nulls(len(column), field.type)
            if keys is not None and field.name in keys.schema.names:
                fill = _cast_key(keys.column(field.name), field)
            column = pc.if_else(flags, fill, column)
        arrow_fields.append(field if field.name in key_names else field.with_nullable(True))
        columns.append(column)
    if DELETED_COLUMN in values.schema.names:
        upstream = pc.fill_null(values.column(DELETED_COLUMN).cast(pa.bool_()), False)
        flags = pc.or_(upstream, flags)
    arrow_fields.append(pa.field(DELETED_COLUMN, pa.bool_(), nullable=False))
    columns.append(flags)
    fields = [
        f if f.name in key_names else _nullable(f)
        for f in batch.schema.fields
        if f.name != DELETED_COLUMN
    ]
    fields.append(Field(DELETED_COLUMN, boolean(), nullable=False))
    marked = pa.RecordBatch.from_arrays(columns, schema=pa.schema(arrow_fields))
    return marked, batch.schema.with_fields(fields)


def _cast_key(key: pa.Array, field: pa.Field) -> pa.Array:
    if key.type == field.type:
        return key
    try:
        return key.cast(field.type)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as err:
        raise ConnectorError(
            f"deletes: mark: the key column {field.name!r} ({key.type}) cannot fill the "
            f"column of the same name ({field.type}): {err}"
        ) from err


def _nullable(field: Field) -> Field:
    return field if field.nullable else Field(field.name, field.type, True, field.doc)

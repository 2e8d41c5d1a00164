"""The ``raw`` converter: message bodies are the bytes of a single column, as they are."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from omconnect.connectors.api.errors import ConfigError
from omconnect.runtime.converters.base import Converter, Decoded, DecodedGroup, Encoded
from omconnect.runtime.converters.tombstones import (
    keyless_deletes,
    mask_array,
    null_mask,
    null_where,
)
from omconnect.schemas import types as t
from omconnect.schemas.record import RecordBatch
from omconnect.schemas.schema import Schema
from omconnect.schemas.types import Field

VALUE_COLUMN = "value"
KEY_COLUMN = "key"


class RawConverter(Converter):
    """Bodies are a batch's only column, bytes or text (UTF-8), untouched.

    Encoding needs values with exactly one binary or string column, and keys (when the
    batch has any) with exactly one too; anything else is refused with ``ConfigError``, the
    message naming the columns found. A null value gives a null body, and so does a delete
    (a row of ``tombstones``, which must have a key). Decoding gives a batch with one binary
    column ``value`` (and keys with one binary column ``key``); a null body with a key is a
    delete (the schema stays the one-column ``value`` schema), a null body without a key a
    null value.
    """

    name = "raw"
    content_type = "application/octet-stream"

    def encode(self, topic: str, batch: RecordBatch) -> Encoded:
        values = _only_column(batch.values, "values")
        key_columns = batch.key_columns()
        keys = _only_column(key_columns, "keys") if key_columns is not None else None
        if batch.tombstones is None:
            return Encoded(values=values, keys=keys)
        deletes = batch.delete_mask()
        failed = keyless_deletes(deletes, keys)
        return Encoded(values=null_where(values, deletes), keys=keys, failed=failed)

    def decode(self, topic: str, values: pa.BinaryArray, keys: pa.BinaryArray | None) -> Decoded:
        if not len(values):
            return Decoded(groups=[])
        value_batch = pa.record_batch([values.cast(pa.binary())], names=[VALUE_COLUMN])
        schema = Schema(name=topic, fields=(Field(VALUE_COLUMN, t.binary()),))
        key_batch = None
        deletes = np.zeros(len(values), dtype=np.bool_)
        if keys is not None:
            key_batch = pa.record_batch([keys.cast(pa.binary())], names=[KEY_COLUMN])
            deletes = null_mask(values, len(values)) & ~null_mask(keys, len(keys))
        rows = pa.array(np.arange(len(values), dtype=np.int64))
        group = DecodedGroup(rows, value_batch, schema, key_batch, mask_array(deletes))
        return Decoded(groups=[group])


def _only_column(batch: pa.RecordBatch, what: str) -> pa.BinaryArray:
    """The single binary or string column of ``batch``, as binary."""
    if batch.num_columns == 1:
        column = batch.column(0)
        kind = column.type
        if (
            pa.types.is_binary(kind)
            or pa.types.is_large_binary(kind)
            or pa.types.is_binary_view(kind)
            or pa.types.is_fixed_size_binary(kind)
            or pa.types.is_string(kind)
            or pa.types.is_large_string(kind)
            or pa.types.is_string_view(kind)
        ):
            return column.cast(pa.binary())
    found = ", ".join(f"{f.name} ({f.type})" for f in batch.schema) or "no columns"
    raise ConfigError(
        f"format raw needs {what} with a single binary or string column; found {found}. "
        "Use format json or avro, or a drop transform to keep one column.",
        "format",
    )

"""Rebuilding a batch's Arrow values after a transform changed its columns."""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa

from omconnect.schemas.arrow import SCHEMA_KEY, to_arrow_schema
from omconnect.schemas.schema import Schema


def rebuild_values(
    values: pa.RecordBatch,
    columns: Sequence[pa.Array],
    fields: Sequence[pa.Field],
    schema: Schema,
) -> pa.RecordBatch:
    """A record batch of ``columns`` typed by ``fields``, keeping ``values``' schema metadata.

    When the metadata carries the omconnect schema header (name, version, key fields), the
    header is rewritten from ``schema`` so it never names columns that are gone.
    """
    metadata = dict(values.schema.metadata or {})
    if SCHEMA_KEY in metadata:
        metadata[SCHEMA_KEY] = (to_arrow_schema(schema).metadata or {})[SCHEMA_KEY]
    arrow_schema = pa.schema(list(fields), metadata=metadata or None)
    return pa.RecordBatch.from_arrays(list(columns), schema=arrow_schema)

"""Deletes (tombstones) in converters: which messages are deletes, which schema they join, and
their rows spread among the decoded ones. Everything works on whole arrays.

A message with a null body and a key is a delete of that key. When a decode call also holds
messages with bodies, a delete joins the group of its nearest such neighbour (the message
before it, else the one after), so a stream of changes to a table stays one batch of the
table's schema; the converters decide what a delete with no neighbour gets.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

Mask = npt.NDArray[np.bool_]
I64 = npt.NDArray[np.int64]

NO_KEY_ERROR = "the body is null and the message has no key: it is neither a row nor a delete"
KEYLESS_DELETE_ERROR = "the row is a delete (tombstone) but has no key to delete"


def null_mask(bodies: pa.Array | None, num_rows: int) -> Mask:
    """True where a body is null (all True when there are no bodies at all)."""
    if bodies is None:
        return np.ones(num_rows, dtype=np.bool_)
    if bodies.null_count == 0:
        return np.zeros(num_rows, dtype=np.bool_)
    return np.asarray(bodies.is_null().to_numpy(zero_copy_only=False), dtype=np.bool_)


def null_where(bodies: pa.Array, rows: Mask) -> pa.Array:
    """``bodies`` with the ``rows`` set to null."""
    if not rows.any():
        return bodies
    return pc.if_else(pa.array(rows), pa.scalar(None, bodies.type), bodies)


def keyless_deletes(deletes: Mask, keys: pa.Array | None) -> dict[int, Exception]:
    """The delete rows whose encoded key is missing, each with the reason."""
    missing = deletes & null_mask(keys, len(deletes))
    if not missing.any():
        return {}
    error = ValueError(KEYLESS_DELETE_ERROR)
    return dict.fromkeys(np.flatnonzero(missing).tolist(), error)


def nearest_labels(labels: I64) -> I64:
    """For every row, the label of the nearest labelled row (label >= 0) at or before it,
    else after it; -1 when no row has a label."""
    n = len(labels)
    positions = np.arange(n, dtype=np.int64)
    labelled = labels >= 0
    before = np.maximum.accumulate(np.where(labelled, positions, -1)) if n else positions
    after = np.minimum.accumulate(np.where(labelled, positions, n)[::-1])[::-1] if n else positions
    source = np.where(before >= 0, before, after)
    found = source < n
    out = np.full(n, -1, dtype=np.int64)
    out[found] = labels[source[found]]
    return out


def spread_rows(batch: pa.RecordBatch, batch_rows: I64, all_rows: I64) -> pa.RecordBatch:
    """``batch`` (one row per entry of ``batch_rows``) laid out over ``all_rows`` (ascending,
    a superset of ``batch_rows``), with all-null rows where it has none."""
    if len(batch_rows) == len(all_rows):
        return batch
    where = np.searchsorted(all_rows, batch_rows)
    index = np.full(len(all_rows), -1, dtype=np.int64)
    index[where] = np.arange(len(batch_rows), dtype=np.int64)
    return batch.take(pa.array(index, mask=index < 0))


def null_batch(schema: pa.Schema, num_rows: int) -> pa.RecordBatch:
    """``num_rows`` rows of ``schema`` with every column null."""
    return pa.RecordBatch.from_arrays([pa.nulls(num_rows, f.type) for f in schema], schema=schema)


def mask_array(mask: Mask) -> pa.BooleanArray | None:
    """``mask`` as an Arrow array, or None when nothing is set (no row is a delete)."""
    return pa.array(mask, pa.bool_()) if mask.any() else None

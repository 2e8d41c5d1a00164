"""Incremental reads on a cursor that are correct at the boundary.

Each statement reads a closed range of the cursor, in cursor then key order::

    SELECT ... FROM t
    WHERE cursor >= :last_cursor [AND cursor <= (SELECT MAX(cursor) FROM t) - :lag]
    ORDER BY cursor, key LIMIT :chunk + <keys already delivered at :last_cursor>

- **Closed range, key de-duplication.** The position stores the last cursor value and the
  keys already delivered at that value; the next read starts *at* that value (not after it)
  and drops those keys. A row that commits later with the same cursor value is still read;
  nothing at the boundary is read twice.
- **One snapshot.** The upper bound is a subquery of the same statement as the data, so it
  is read in the same snapshot (a single statement sees one snapshot in PostgreSQL, InnoDB
  and SQLite): no row can be counted in the bound and missing from the data, as happens when
  ``MAX`` is read by a statement of its own.
- **Lag for late commits.** A writer whose transaction took its cursor value (a sequence, or
  ``now()``) and commits later than others makes rows appear behind the position. ``lag``
  holds the upper bound back: ``MAX(cursor) - lag`` for numeric cursors, the database's
  ``now() - lag`` seconds for time cursors; rows of writers that commit within the lag are
  read.

- **A crowded boundary.** When more than ``MAX_BOUNDARY_KEYS`` rows share the last cursor
  value (a bulk load stamping one ``updated_at`` on a million rows), listing their keys would
  make every position, and every read, grow with them. The position then holds the last key
  delivered at that value instead (``after_key``) and reads go on after it in key order,
  ``(cursor, key) > (:last_cursor, :after_key)``, until the cursor moves on. A row committed
  late at that very value with a key below ``after_key`` is then not read: ``lag`` is what
  covers late commits there.

With ``cursor`` a list of columns, order and boundary are lexicographic over them, and the
upper bound applies to the first.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from omconnect.connectors.sql._snapshot import after, at_or_after, last_values
from omconnect.connectors.sql._source_schema import INCREMENTAL
from omconnect.schemas import types as t
from omconnect.schemas.arrow import rows_to_arrow
from omconnect.schemas.schema import Schema

# Keys listed in a position at most; past it the boundary is crowded (module docstring).
MAX_BOUNDARY_KEYS = 1_000


def incremental_chunk(
    table: sa.FromClause,
    selected: Sequence[sa.ColumnElement[Any]],
    cursor: Sequence[sa.ColumnElement[Any]],
    key: Sequence[sa.ColumnElement[Any]],
    last_cursor: Sequence[Any] | None,
    limit: int,
    upper: sa.ColumnElement[Any] | None,
    row_values: bool,
    after_key: Sequence[Any] | None = None,
) -> sa.Select[Any]:
    """The statement reading the next rows at or after ``last_cursor`` (after ``after_key``
    at that value, when the boundary is crowded), up to ``upper``."""
    statement = sa.select(*selected).select_from(table)
    if last_cursor is not None and after_key is not None:
        columns = [*cursor, *key]
        statement = statement.where(after(columns, [*last_cursor, *after_key], row_values))
    elif last_cursor is not None:
        statement = statement.where(at_or_after(cursor, last_cursor, row_values))
    if upper is not None:
        statement = statement.where(cursor[0] <= upper)
    return statement.order_by(*cursor, *key).limit(limit)


def upper_bound(
    table: sa.FromClause,
    cursor: sa.ColumnElement[Any],
    cursor_type: t.DataType,
    lag: float,
    dialect: str,
) -> sa.ColumnElement[Any] | None:
    """The highest cursor value to read: None without lag (the statement's own snapshot
    bounds it), else ``MAX(cursor) - lag`` or ``now() - lag`` (see the module docstring)."""
    if lag <= 0:
        return None
    if isinstance(cursor_type, t.Timestamp) or cursor_type == t.date():
        moment = _now_minus(lag, dialect, cursor_type)
        return sa.cast(moment, sa.Date) if cursor_type == t.date() else moment
    amount: float | int = int(lag) if float(lag).is_integer() else lag
    latest = sa.select(sa.func.max(cursor)).select_from(table).scalar_subquery()
    return latest - sa.literal(amount)


def _now_minus(lag: float, dialect: str, cursor_type: t.DataType) -> sa.ColumnElement[Any]:
    micros = math.ceil(lag * 1_000_000)
    if dialect == "postgresql":
        zoned = isinstance(cursor_type, t.Timestamp) and cursor_type.timezone is not None
        now = sa.func.now() if zoned else sa.func.localtimestamp()
        return now - sa.func.make_interval(0, 0, 0, 0, 0, 0, sa.literal(micros / 1_000_000))
    if dialect == "mysql":
        return sa.func.timestampadd(sa.text("MICROSECOND"), -micros, sa.func.now(6))
    # SQLite keeps datetimes as ISO text, which compares in time order.
    modifier = f"-{micros / 1_000_000:.6f} seconds"
    return sa.func.strftime("%Y-%m-%d %H:%M:%f", "now", modifier)


def boundary_mask(
    batch: pa.RecordBatch,
    cursor: Sequence[str],
    last_cursor: Sequence[Any],
    delivered: Sequence[Sequence[Any]],
    key_schema: Schema,
) -> pa.BooleanArray | None:
    """True for the rows of ``batch`` to emit: every row but those at ``last_cursor`` whose
    key is in ``delivered``; None when every row is kept."""
    if not delivered or batch.num_rows == 0:
        return None
    at_boundary = rows_at(batch, cursor, last_cursor)
    positions = np.flatnonzero(np.asarray(at_boundary.to_numpy(zero_copy_only=False), bool))
    if positions.size == 0:
        return None
    keys = key_schema.names
    candidates = _storage(batch.select(keys).take(pa.array(positions)))
    candidates = candidates.append_column("__row", pa.array(positions, pa.int64()))
    seen = rows_to_arrow([dict(zip(keys, k, strict=True)) for k in delivered], key_schema)
    seen_table = _storage(seen)
    repeated = candidates.join(seen_table, keys=keys, join_type="left semi")
    drop = np.zeros(batch.num_rows, dtype=bool)
    drop[repeated.column("__row").to_numpy()] = True
    return pa.array(~drop, pa.bool_())


def rows_at(
    batch: pa.RecordBatch | pa.Table, cursor: Sequence[str], value: Sequence[Any]
) -> pa.BooleanArray:
    """True where the cursor columns of ``batch`` equal ``value``."""
    mask: Any = None
    for name, item in zip(cursor, value, strict=True):
        column = batch.column(name)
        storage_type = _storage_type(column.type)
        column = column.storage if isinstance(column.type, pa.BaseExtensionType) else column
        equal = pc.fill_null(pc.equal(column, _scalar(item, storage_type)), False)
        mask = equal if mask is None else pc.and_(mask, equal)
    return mask


def next_incremental_offset(
    emitted: pa.RecordBatch,
    cursor: Sequence[str],
    key: Sequence[str],
    last_cursor: Sequence[Any] | None,
    delivered: Sequence[Sequence[Any]],
    after_key: Sequence[Any] | None = None,
) -> dict[str, Any]:
    """The offset after ``emitted`` (rows in cursor then key order, non-empty): its last
    cursor value and every key delivered at that value (those of earlier reads too, when it
    did not move), or, at a crowded boundary, the last key delivered there (``after_key``)."""
    new_cursor = last_values(emitted, cursor)
    same = last_cursor is not None and list(last_cursor) == new_cursor
    at_new = emitted.filter(rows_at(emitted, cursor, new_cursor)).select(list(key))
    earlier = len(delivered) if same else 0
    if (same and after_key is not None) or at_new.num_rows + earlier > MAX_BOUNDARY_KEYS:
        crowded = {"mode": INCREMENTAL, "cursor": new_cursor, "keys": []}
        return {**crowded, "after_key": last_values(emitted, key)}
    keys = [list(row.values()) for row in at_new.to_pylist()]
    if same:
        keys = [list(k) for k in delivered] + keys
    return {"mode": INCREMENTAL, "cursor": new_cursor, "keys": keys}


def _storage(table: pa.RecordBatch | pa.Table) -> pa.Table:
    """``table`` with extension columns (uuid, json) as their storage, for joins."""
    if isinstance(table, pa.RecordBatch):
        table = pa.Table.from_batches([table])
    columns = [c.cast(_storage_type(c.type)) if _is_extension(c.type) else c for c in table.columns]
    return pa.table(columns, names=table.column_names)


def _is_extension(kind: pa.DataType) -> bool:
    return isinstance(kind, pa.BaseExtensionType) or pa.types.is_dictionary(kind)


def _storage_type(kind: pa.DataType) -> pa.DataType:
    if isinstance(kind, pa.BaseExtensionType):
        return kind.storage_type
    if pa.types.is_dictionary(kind):
        return kind.value_type
    return kind


def _scalar(value: Any, kind: pa.DataType) -> pa.Scalar:
    if pa.types.is_fixed_size_binary(kind) and hasattr(value, "bytes"):
        value = value.bytes  # a UUID
    return pa.scalar(value, kind)


__all__ = [
    "INCREMENTAL",
    "MAX_BOUNDARY_KEYS",
    "boundary_mask",
    "incremental_chunk",
    "next_incremental_offset",
    "rows_at",
    "upper_bound",
]

"""Snapshots by key range: the chunk statement and the position that resumes after it.

A snapshot reads a table in key order, one chunk of ``chunk_size`` rows per statement::

    SELECT ... FROM t WHERE (k1, k2) > (:last1, :last2) ORDER BY k1, k2 LIMIT :chunk

Each chunk's last key is its position, so a run killed half-way resumes at the chunk where it
stopped (the chunk in flight is read again: duplicates bounded by one chunk per table), and
memory holds one chunk whatever the table size. Composite keys use a row-value comparison
where the dialect plans it as a range (PostgreSQL, SQLite) and the expanded form
``k1 > :a OR (k1 = :a AND k2 > :b)`` on MySQL/MariaDB. The chunk that returns fewer rows than
asked for ends the snapshot: its position says ``done``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyarrow as pa
import sqlalchemy as sa

from omconnect.connectors.sql._source_schema import SNAPSHOT


def after(
    columns: Sequence[sa.ColumnElement[Any]], values: Sequence[Any], row_values: bool
) -> sa.ColumnElement[bool]:
    """``(columns) > (values)`` in lexicographic order, as bound parameters."""
    bound = [sa.bindparam(None, v, type_=c.type) for c, v in zip(columns, values, strict=True)]
    if len(columns) == 1:
        return columns[0] > bound[0]
    if row_values:
        return sa.tuple_(*columns) > sa.tuple_(*bound)
    # k1 > a OR (k1 = a AND (k2 > b OR (k2 = b AND ...)))
    condition = columns[-1] > bound[-1]
    for column, value in zip(reversed(columns[:-1]), reversed(bound[:-1]), strict=True):
        condition = sa.or_(column > value, sa.and_(column == value, condition))
    return condition


def at_or_after(
    columns: Sequence[sa.ColumnElement[Any]], values: Sequence[Any], row_values: bool
) -> sa.ColumnElement[bool]:
    """``(columns) >= (values)`` in lexicographic order, as bound parameters."""
    if len(columns) == 1:
        return columns[0] >= sa.bindparam(None, values[0], type_=columns[0].type)
    if row_values:
        bound = [sa.bindparam(None, v, type_=c.type) for c, v in zip(columns, values, strict=True)]
        return sa.tuple_(*columns) >= sa.tuple_(*bound)
    equal = sa.and_(
        *(c == sa.bindparam(None, v, type_=c.type) for c, v in zip(columns, values, strict=True))
    )
    return sa.or_(after(columns, values, row_values=False), equal)


def snapshot_chunk(
    table: sa.FromClause,
    selected: Sequence[sa.ColumnElement[Any]],
    key: Sequence[sa.ColumnElement[Any]],
    last_key: Sequence[Any] | None,
    chunk_size: int,
    row_values: bool,
) -> sa.Select[Any]:
    """The statement reading the next chunk after ``last_key`` (from the start if None)."""
    statement = sa.select(*selected).select_from(table)
    if last_key is not None:
        statement = statement.where(after(key, last_key, row_values))
    return statement.order_by(*key).limit(chunk_size)


def last_values(batch: pa.RecordBatch, columns: Sequence[str]) -> list[Any]:
    """The values of ``columns`` in the last row of ``batch`` (not empty): where a read
    ordered by those columns got to."""
    row = batch.slice(batch.num_rows - 1, 1).select(list(columns)).to_pylist()[0]
    return [row[name] for name in columns]


def snapshot_offset(last_key: Sequence[Any] | None, done: bool) -> dict[str, Any]:
    """The offset of a snapshot that delivered every row up to ``last_key``."""
    return {
        "mode": SNAPSHOT,
        "after": list(last_key) if last_key is not None else None,
        "done": done,
    }


__all__ = ["SNAPSHOT", "after", "at_or_after", "snapshot_chunk", "snapshot_offset"]

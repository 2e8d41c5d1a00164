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

A table's changes arrive as rows of texts left in their messages: a list of changes decoded one
by one (``_pgoutput.TupleData``, ``rows_from_texts``), or a poll's run of them decoded at once
(``_pgoutput.Changes``, ``rows_of``, ``key_changes``: no Python per change at all). The rows of
a batch are read column by column in one pass (``_pgoutput.tuple_texts``) into one string array
holding every value, the columns of one type end to end; each type is parsed by one Arrow cast
(``_pg_text.parse_masked``) and cut into its columns by zero-copy slices: no Python per value.
Before, a Python loop per row and per column gathered the texts and each column had its own
casts; with a batch per single-row transaction those casts were most of the cost. The schemas
and Arrow types a batch needs are built once per table version (``rebuild``). The numbers,
before and after, are in ``_pgoutput``'s docstring: the decode path of a 1M-row transaction
went from 81,000 to 258,000 changes/s (762,000 a poll at once); the batch of one single-row
transaction (``rows_from_texts`` of its new and old rows, ``envelopes``, ``keys_of``) from
about 700 to 110 µs on the same machine.

A value that does not fit its column's type (a numeric ``NaN`` in a decimal column, an
``infinity`` date: see ``_pg_text``) fails ``rows_from_texts`` and ``rows_of`` with a
``ValueError`` naming the table, the column and the value. With ``tolerant=True`` they return
the rows instead, that value null in its row and its other columns as they came, and
``BadValues``: which rows, and why, one line each, so that those rows can be set aside (a dead
letter) and the others flow on. Either way a batch whose values all fit costs what it did.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, overload

import numpy as np
import pyarrow as pa

from omconnect.connectors.sql import _pg_text
from omconnect.connectors.sql._pgoutput import (
    Changes,
    Row,
    TupleTexts,
    changes_texts,
    tuple_texts,
)
from omconnect.schemas import types as t
from omconnect.schemas.arrow import to_arrow_field, to_arrow_schema
from omconnect.schemas.schema import Schema
from omconnect.schemas.types import DataType, Field

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
    # Built with the schemas: their Arrow forms, and the columns grouped by type (``_order``:
    # the columns of the first type, then of the next...), as ``rows_from_texts`` parses them.
    arrow_schema: pa.Schema = field(init=False, repr=False, compare=False)
    _row_type: pa.StructType = field(init=False, repr=False, compare=False)
    _row_fields: list[pa.Field] = field(init=False, repr=False, compare=False)
    _unchanged_type: pa.DataType = field(init=False, repr=False, compare=False)
    _source_type: pa.StructType = field(init=False, repr=False, compare=False)
    _groups: tuple[tuple[DataType, tuple[int, ...]], ...] = field(
        init=False, repr=False, compare=False
    )
    _order: tuple[int, ...] = field(init=False, repr=False, compare=False)
    _names: pa.StringArray = field(init=False, repr=False, compare=False)

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
        self.arrow_schema = to_arrow_schema(self.value_schema)
        self._row_type = to_arrow_field(self.value_schema.fields[0]).type
        self._row_fields = list(self._row_type)
        self._unchanged_type = self.arrow_schema.field("unchanged").type
        self._source_type = self.arrow_schema.field("source").type
        groups: dict[DataType, list[int]] = {}
        for index, f in enumerate(self.row_fields):
            groups.setdefault(f.type, []).append(index)
        self._groups = tuple((dtype, tuple(members)) for dtype, members in groups.items())
        self._order = tuple(index for _, members in self._groups for index in members)
        self._names = pa.array([f.name for f in self.row_fields], pa.string())

    def row_type(self) -> pa.StructType:
        return self._row_type


@dataclass(frozen=True)
class SourceInfo:
    """What ``source`` says of a batch of events."""

    name: str
    db: str
    commit_time_ms: int
    snapshot: str | None  # "true", "last", "false"; None streaming
    xid: int | None
    lsn: int | None


@dataclass(frozen=True)
class SourceRuns:
    """What ``source`` says of runs of streamed events, a transaction each, as columns: the
    first ``counts[0]`` events are of the transaction committed at ``lsns[0]``
    (``times_ms[0]``, ``xids[0]``), the next ``counts[1]`` of the next, and so on."""

    name: str
    db: str
    times_ms: np.ndarray
    xids: np.ndarray
    lsns: np.ndarray
    counts: np.ndarray


class Unchanged(Sequence[Sequence[str]]):
    """Per row of a batch, the columns whose TOASTed value the server did not send (null in
    ``after``), held as the envelope's ``unchanged`` column: a list of names, null for a row
    without any."""

    __slots__ = ("column",)

    def __init__(self, column: pa.ListArray) -> None:
        self.column = column

    def __len__(self) -> int:
        return len(self.column)

    @overload
    def __getitem__(self, index: int) -> list[str]: ...

    @overload
    def __getitem__(self, index: slice) -> list[list[str]]: ...

    def __getitem__(self, index: int | slice) -> list[str] | list[list[str]]:
        if isinstance(index, slice):
            return [names or [] for names in self.column[index].to_pylist()]
        return self.column[index].as_py() or []


@dataclass(frozen=True)
class BadValues:
    """The rows of a batch that hold a value that does not fit its column's type (what
    ``rows_from_texts`` and ``rows_of`` return with ``tolerant``). Such a value is null in its
    row; the row's other columns are as they came.

    Attributes:
        rows: The rows' indices in the batch, ascending (a numpy int64 array).
        columns: Per row, the names of its columns whose value does not fit, in the table's
            column order.
        reasons: Per row, one line naming the table, and each such column with its value's
            text: ``table public.events, column day: "infinity" does not fit date``.
    """

    rows: np.ndarray
    columns: list[tuple[str, ...]]
    reasons: list[str]

    def good(self, count: int) -> np.ndarray:
        """A numpy mask over the batch's ``count`` rows, true for the rows not here."""
        keep = np.ones(count, np.bool_)
        keep[self.rows] = False
        return keep

    def union(self, other: BadValues | None) -> BadValues:
        """These rows and ``other``'s, rows of the same batch (its old rows' and its new
        rows'), in order; a row in both has both's columns and reasons."""
        if other is None:
            return self
        merged: dict[int, tuple[tuple[str, ...], list[str]]] = {}
        for bad in (self, other):
            for row, columns, reason in zip(
                bad.rows.tolist(), bad.columns, bad.reasons, strict=True
            ):
                before, reasons = merged.get(row, ((), []))
                merged[row] = (before + columns, [*reasons, reason])
        rows = sorted(merged)
        return BadValues(
            np.array(rows, np.int64),
            [merged[row][0] for row in rows],
            ["; ".join(merged[row][1]) for row in rows],
        )


Parsed = tuple[pa.StructArray, Unchanged]
"""A ``Row`` struct column, and per row the columns that were ``UNCHANGED``."""

ParsedWithBad = tuple[pa.StructArray, Unchanged, BadValues | None]
"""``Parsed``, and the rows holding a value that does not fit (None when there is none)."""


@overload
def rows_from_texts(
    table: TableEvents, rows: Sequence[Row | None], *, tolerant: Literal[False] = False
) -> Parsed: ...


@overload
def rows_from_texts(
    table: TableEvents, rows: Sequence[Row | None], *, tolerant: Literal[True]
) -> ParsedWithBad: ...


def rows_from_texts(
    table: TableEvents, rows: Sequence[Row | None], *, tolerant: bool = False
) -> Parsed | ParsedWithBad:
    """A ``Row`` struct column of rows of texts (None: no row), and per row the columns
    that were ``UNCHANGED`` (null in the struct).

    Args:
        tolerant: Return, third, the rows holding a value that does not fit its column's type
            (``BadValues``; None when there is none), instead of raising.

    Raises:
        ValueError: a value does not fit its column's type (names the table, the column and
            the value), unless ``tolerant``.
        ProtocolError: a row is not valid pgoutput.
    """
    if all(row is None for row in rows):  # the old rows of inserts and of most updates
        found: tuple[Parsed, BadValues | None] = _no_rows(table, len(rows)), None
    else:
        texts = tuple_texts(rows, len(table.row_fields), table._order)
        found = _rows(table, texts, len(rows))
    return _tolerated(found, tolerant)


@overload
def rows_of(
    table: TableEvents, changes: Changes, old: bool = False, *, tolerant: Literal[False] = False
) -> Parsed: ...


@overload
def rows_of(
    table: TableEvents, changes: Changes, old: bool = False, *, tolerant: Literal[True]
) -> ParsedWithBad: ...


def rows_of(
    table: TableEvents, changes: Changes, old: bool = False, *, tolerant: bool = False
) -> Parsed | ParsedWithBad:
    """``rows_from_texts`` of the new rows of ``changes`` (the old ones with ``old``)."""
    if ((changes.old_at if old else changes.new_at) < 0).all():
        found: tuple[Parsed, BadValues | None] = _no_rows(table, len(changes)), None
    else:
        texts = changes_texts(changes, old, len(table.row_fields), table._order)
        found = _rows(table, texts, len(changes))
    return _tolerated(found, tolerant)


def _tolerated(found: tuple[Parsed, BadValues | None], tolerant: bool) -> Parsed | ParsedWithBad:
    """What ``rows_from_texts`` returns of the rows and bad values found (or raises)."""
    (struct, unchanged), bad = found
    if tolerant:
        return struct, unchanged, bad
    if bad is not None:
        raise ValueError(bad.reasons[0])
    return struct, unchanged


def key_changes(table: TableEvents, changes: Changes) -> Changes:
    """``changes`` as Debezium publishes them: an update that changed the row's key is a
    delete of the old key (and its tombstone) and a create of the new one, so a compacted
    topic forgets the old key. Only an update that carries its old row can have changed the
    key (the server sends the old key then); those few are compared in Python."""
    with_old = changes.old_at >= 0
    if not with_old.any():
        return changes
    candidates = np.flatnonzero(with_old & (changes.ops == "u"))
    if not len(candidates):
        return changes
    names = [f.name for f in table.row_fields]
    key_at = [names.index(k) for k in table.key]
    moved = []
    for index in candidates.tolist():
        before, after = changes.row(index, old=True), changes.row(index)
        assert before is not None and after is not None
        if any(before[i] != after[i] for i in key_at):
            moved.append(index)
    if not moved:
        return changes
    repeats = np.ones(len(changes), np.int64)
    repeats[moved] = 2
    indices = np.repeat(np.arange(len(changes)), repeats)
    ops = changes.ops[indices]
    first = np.ones(len(indices), np.bool_)  # the first of each pair: the delete
    first[1:] = indices[1:] != indices[:-1]
    split = np.isin(indices, moved)
    ops[split & first] = "d"
    ops[split & ~first] = "c"
    return changes.take(indices, ops, old=~split | first, new=~split | ~first)


def _no_rows(table: TableEvents, count: int) -> Parsed:
    return null_rows(table, count), Unchanged(pa.nulls(count, table._unchanged_type))


def _rows(table: TableEvents, texts: TupleTexts, count: int) -> tuple[Parsed, BadValues | None]:
    """The ``Row`` column of ``texts`` (laid out in ``table._order``): one cast of the texts
    to strings (UTF-8 checked), one parse per type, a zero-copy slice per column; and the rows
    holding a value that does not fit (null in the column)."""
    strings, misfits = _pg_text.utf8_masked(texts.values)
    columns: list[Any] = [None] * len(table.row_fields)
    at = 0
    for dtype, members in table._groups:
        part = strings.slice(at * count, len(members) * count)
        parsed, found = _pg_text.parse_masked(part, dtype)
        if found is not None:
            if misfits is None:
                misfits = np.zeros(len(strings), np.bool_)
            misfits[at * count : (at + len(members)) * count] |= found
        at += len(members)
        for place, index in enumerate(members):
            columns[index] = parsed if len(members) == 1 else parsed.slice(place * count, count)
    mask = None if texts.missing is None else pa.array(texts.missing)
    struct = pa.StructArray.from_arrays(columns, fields=table._row_fields, mask=mask)
    bad = None if misfits is None else _bad_values(table, texts.values, misfits, count)
    unchanged_type = table._unchanged_type
    if texts.unchanged is None:
        return (struct, Unchanged(pa.nulls(count, unchanged_type))), bad
    # Per row, the names of its unchanged columns (row by row, in column order).
    per_row = texts.unchanged.sum(axis=0)
    offsets = np.zeros(count + 1, np.int32)
    np.cumsum(per_row, out=offsets[1:])
    _, named = np.nonzero(texts.unchanged.T)
    unchanged = pa.ListArray.from_arrays(
        pa.array(offsets),
        table._names.take(pa.array(named, pa.int64())),
        type=unchanged_type,
        mask=pa.array(per_row == 0),
    )
    return (struct, Unchanged(unchanged)), bad


def _bad_values(table: TableEvents, texts: pa.Array, misfits: np.ndarray, count: int) -> BadValues:
    """The rows of the values of ``texts`` (laid out as ``_rows`` has them) that ``misfits``
    marks: Python objects for those values only."""
    grid = misfits.reshape(len(table._order), count)
    rows = np.flatnonzero(grid.any(axis=0))
    found, places = np.nonzero(grid[:, rows].T)  # row by row
    values = texts.take(pa.array(places * count + rows[found])).to_pylist()
    per_row: list[list[tuple[int, bytes]]] = [[] for _ in range(len(rows))]
    for row, place, value in zip(found.tolist(), places.tolist(), values, strict=True):
        per_row[row].append((table._order[place], value))
    columns, reasons = [], []
    for misfit in per_row:
        misfit.sort()
        fields = [table.row_fields[index] for index, _ in misfit]
        columns.append(tuple(f.name for f in fields))
        said = (
            f"column {f.name}: {_pg_text.misfit_reason(value, f.type)}"
            for f, (_, value) in zip(fields, misfit, strict=True)
        )
        reasons.append(f"table {table.stream}, {'; '.join(said)}")
    return BadValues(rows.astype(np.int64), columns, reasons)


def rows_from_batch(table: TableEvents, batch: pa.RecordBatch) -> pa.StructArray:
    """A ``Row`` struct column of a snapshot batch (columns in ``table``'s order)."""
    row_type = table.row_type()
    columns = [batch.column(i).cast(row_type.field(i).type) for i in range(batch.num_columns)]
    return pa.StructArray.from_arrays(columns, fields=list(row_type))


def envelopes(
    table: TableEvents,
    ops: Sequence[str] | np.ndarray,
    before: pa.Array,
    after: pa.Array,
    source: SourceInfo | SourceRuns,
    unchanged: Sequence[Sequence[str]] | None = None,
) -> pa.RecordBatch:
    """The envelope batch of ``ops`` (``before``/``after``: ``Row`` structs or nulls; ``ops``
    a list or a numpy array of one-letter strings, as ``Changes.ops``).

    ``source`` is what ``source`` says of every event, or of runs of them, a streamed
    transaction each (several transactions in one batch).
    """
    count = len(ops)
    unchanged_type = table._unchanged_type
    if isinstance(unchanged, Unchanged):
        unchanged_column = unchanged.column
    elif unchanged is not None:
        unchanged_column = pa.array([list(u) if u else None for u in unchanged], unchanged_type)
    else:
        unchanged_column = pa.nulls(count, unchanged_type)
    now = int(time.time() * 1000)
    return pa.RecordBatch.from_arrays(
        [
            before,
            after,
            _source_column(table, source, count),
            pa.array(ops, pa.string()),
            pa.repeat(pa.scalar(now, pa.int64()), count),
            unchanged_column,
        ],
        schema=table.arrow_schema,
    )


def _source_column(
    table: TableEvents, source: SourceInfo | SourceRuns, count: int
) -> pa.StructArray:
    source_type = table._source_type
    if isinstance(source, SourceInfo):
        return pa.repeat(pa.scalar(_source_values(table, source), source_type), count)
    runs = source.counts
    if int(runs.sum()) != count:
        raise ValueError(f"source runs of {int(runs.sum())} events for {count} events")
    constant = _source_values(table, SourceInfo(source.name, source.db, 0, None, None, None))
    per_run = {"ts_ms": source.times_ms, "txId": source.xids, "lsn": source.lsns}
    run_of_row = np.repeat(np.arange(len(runs)), runs)
    children = []
    for f in source_type:
        values = per_run.get(f.name)
        if values is None:
            children.append(pa.repeat(pa.scalar(constant[f.name], f.type), count))
        else:
            children.append(pa.array(values[run_of_row], f.type))
    return pa.StructArray.from_arrays(children, fields=list(source_type))


def _source_values(table: TableEvents, source: SourceInfo) -> dict[str, Any]:
    return {
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
    "BadValues",
    "SourceInfo",
    "SourceRuns",
    "TableEvents",
    "Unchanged",
    "envelopes",
    "key_changes",
    "keys_of",
    "null_rows",
    "rows_from_batch",
    "rows_from_texts",
    "rows_of",
    "with_tombstones",
]

"""Running a SELECT and getting Arrow record batches of the reflected schema, per dialect.

The fast path of each database, with no Python object per row:

- **PostgreSQL**: ADBC (``adbc_driver_postgresql``), which reads ``COPY (SELECT ...) TO
  STDOUT (FORMAT binary)`` into Arrow; ``fetch_record_batch`` streams the result, so memory
  stays bounded by the batch. ADBC can COPY only a statement without parameters (a bound one
  is read row by row through the extended protocol, 1.6x slower here: 1M rows of the B1 table
  in 50k-row chunks took 1.38 s bound, 0.87 s as COPY), so the few values a statement holds
  (chunk bounds read back from positions, the LIMIT) are rendered as literals when their
  type has a text that means the same whatever the session's settings (numbers, dates and
  times, UUIDs, text without backslashes or NULs); any other value is bound. Arrays are
  selected as text (``col::text``) and parsed by ``_pg_text``, as the ``postgres-cdc``
  source parses them: ADBC's binary read would make a list of every element of a
  multi-dimensional array, drop a first index other than 1 and read an infinite timestamp
  as a number out of range, where a one-dimensional array from index 1 is a list and any
  other value a bad row (its text says why: a multi-dimensional array). The session sets the
  text forms of the elements first (``_pg_text.ARRAY_TEXT_STATEMENTS``: ISO dates, every
  digit of a float, hex ``bytea``; its time zone stays, as a ``timestamptz`` text holds its
  offset). 100k ``int4[]`` of 5 elements take about 60 ms of CPU to parse. A ``numeric(p, s)``
  of at most 18 digits is selected as its value times 10^s cast to ``bigint`` (NaN as the
  smallest ``bigint``) and made the exact ``decimal(p, s)`` again without a copy: ADBC reads
  other numerics as text, which for 1M values cost 0.7 s of CPU to read and as much again to
  check and cast (``_ScaledNumeric``). The driver's wheels from 1.9 to 1.13 (the newest) are
  built without compiler optimisation: reading the B1 table takes 0.85-0.95 s of client CPU
  per 1M rows with 1.13, 0.33-0.37 s with 1.8.0. 1.8.0 is not an option: a connection cut
  under its bulk ingest aborts the process, it ingests ``decimal128`` 100 times too large,
  and its SQLite sibling loses a float's last digit (the sink and edge-value tests fail on
  it). ConnectorX reads the same table with 1.4-1.8 s.
- **SQLite**: ADBC (``adbc_driver_sqlite``), streamed the same way; parameters bound (``?``).
  SQLite keeps a value of any storage class in any column (text in a ``REAL`` column, a float
  in an ``INTEGER`` one), and ADBC types each result column by its first rows: a value of
  another class later fails the whole read, or, within the first rows, turns the column into
  text that keeps about 6 digits of each float. So each column of numbers, booleans, dates or
  times is selected as text of one storage class (``_sqlite_one_class``): numbers as
  SQLite's text of them, which reads back as the same number (the SQLite that ADBC's driver
  bundles writes every digit a float needs; a ``NUMERIC`` column's floats are rounded to the
  column's scale first), dates and times as the text they are, and a value of any other class
  as SQL quotes it (``'abc'``, ``X'00FF'``), which never fits the column's type: a bad row.
  ``conform`` casts the text in Arrow, a column at a time. The price, for 1M values: a
  ``REAL`` column 0.14 s read as floats, 0.68 s so; an ``INTEGER`` one 0.15 s and 0.30 s; a
  ``DATETIME`` one 0.43 s and 0.60 s.
- **MariaDB/MySQL**: ConnectorX (``read_sql(..., return_type="arrow_stream")``), whose
  result streams in batches of ``CONNECTORX_BATCH_ROWS`` rows: a query read in one statement
  (a ``query:`` without ``key``) holds one batch in memory, not its whole result. ConnectorX
  binds no parameters, so the few values a statement holds (chunk bounds read back from
  positions, never config text) are rendered as SQL literals by SQLAlchemy's MySQL dialect,
  which escapes them. ``DATE`` and ``DATETIME`` columns are read as their text: ConnectorX
  panics on a value that is not a calendar date, which MariaDB keeps when ``sql_mode`` lacks
  ``NO_ZERO_DATE``, ``NO_ZERO_IN_DATE`` or has ``ALLOW_INVALID_DATES``. The zero date
  (``0000-00-00``, with any time of day) is read as NULL, as Debezium and MySQL Connector/J's
  ``zeroDateTimeBehavior=CONVERT_TO_NULL`` read it (so is a ``TIMESTAMP``'s, which is epoch
  0, a value no real ``TIMESTAMP`` has); any other value that is not a calendar date
  (``2024-00-10``, ``2024-02-31``) is a bad row. The text costs time: 1M rows of a ``DATE``
  and a ``DATETIME(6)`` column take 0.57 s read as dates, 1.09 s as text (cast in 0.08 s). A
  panic of ConnectorX's (a ``BaseException``) becomes a ``RuntimeError`` with its first line,
  which the task translates like any driver error.

Statements are SQLAlchemy ``Select``s built from reflected tables (or a ``query:`` as a
subquery whose text is the user's), so every identifier is quoted by the dialect. ``conform``
casts what a driver returns to the exact omconnect types (decimal precision and scale,
timestamp zones, uuid, json, enums), never rounding a value silently. ConnectorX statements
are compiled with the named paramstyle so that no ``%`` (in a literal or in a query's text) is
doubled.

A value that does not fit its column's type (a PostgreSQL ``numeric`` with more digits than
``decimal(38,9)``, a MariaDB ``TINYINT(1)`` holding 2, text that is not a UUID) fails
``conform`` with the table's and the column's names. For ``conform_rows`` it makes its row a
*bad row*: it returns the batch with every row and ``BadRows`` saying which rows, why, and what
to dead-letter for each; the source task reports them and emits the others. The good path is
one cast per column either way. Only when a column's cast fails are its values looked at:
vectorised checks mask the common misfits (digits beyond a decimal's precision or scale, NaN
and infinity, integers other than 0 and 1 for a boolean, text that is not a UUID), those values
are set to null, and what the checks missed is found by casting halves of the column down to
the values that fail alone. Only the bad rows become Python objects, for their reports.

Text of a date or timestamp whose date is ``0000-00-00`` (MariaDB's zero date, also when an
SQLite column holds it) is null before the cast.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any, TypeVar
from uuid import UUID

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql, sqlite

from omconnect.codecs.uuid_text import uuid_from_text
from omconnect.connectors.api import ConnectorError
from omconnect.connectors.sql._database import Database
from omconnect.connectors.sql._pg_text import ARRAY_TEXT_STATEMENTS, array_misfit, parse_masked
from omconnect.schemas import types as t
from omconnect.schemas.arrow import to_arrow_field
from omconnect.schemas.types import Field

_T = TypeVar("_T")


class ArrowReader(ABC):
    """Runs SELECTs on one connection of a database's fast path."""

    @abstractmethod
    def read(self, statement: sa.Select[Any]) -> Iterator[pa.RecordBatch]:
        """The rows of ``statement`` as Arrow batches, as the driver types them."""

    def select_column(self, column: sa.ColumnElement[Any], field: Field) -> sa.ColumnElement[Any]:
        """What to select for ``column`` so that ``conform`` can make ``field`` of it."""
        return column

    @abstractmethod
    def close(self) -> None: ...


class AdbcReader(ArrowReader):
    """PostgreSQL and SQLite through ADBC: streamed batches; on PostgreSQL, statements with
    only plain literal values are sent as text so that ADBC reads them with COPY."""

    def __init__(self, connection: Any, dialect: sa.Dialect, copies: bool) -> None:
        self._connection = connection
        self._dialect = dialect
        self._copies = copies

    def read(self, statement: sa.Select[Any]) -> Iterator[pa.RecordBatch]:
        compiled = statement.compile(dialect=self._dialect)
        names = compiled.positiontup or []
        values = [compiled.params[name] for name in names]
        if names and self._copies and all(_plain_literal(v) for v in values):
            compiled = statement.compile(
                dialect=self._dialect, compile_kwargs={"literal_binds": True}
            )
            values = []
        parameters = tuple(_bindable(value) for value in values)
        cursor = self._connection.cursor()
        try:
            cursor.execute(compiled.string, parameters=parameters or None)
            yield from cursor.fetch_record_batch()
        finally:
            cursor.close()

    def close(self) -> None:
        self._connection.close()


class _PostgresReader(AdbcReader):
    """PostgreSQL through ADBC, arrays selected as text and small numerics as scaled integers
    (module docstring)."""

    def select_column(self, column: sa.ColumnElement[Any], field: Field) -> sa.ColumnElement[Any]:
        if isinstance(field.type, t.Array):
            return sa.cast(column, sa.Text).label(column.key)
        if isinstance(field.type, t.Decimal) and _scaled_numeric(column, field.type):
            return _select_scaled(column, field.type)
        return column

    def read(self, statement: sa.Select[Any]) -> Iterator[pa.RecordBatch]:
        scaled = {
            i: selected.type.dtype
            for i, selected in enumerate(statement.selected_columns)
            if isinstance(selected.type, _ScaledNumeric)
        }
        for batch in super().read(statement):
            if not scaled:
                yield batch
                continue
            columns = list(batch.columns)
            for i, dtype in scaled.items():
                columns[i] = _unscaled(columns[i], dtype)
            yield pa.RecordBatch.from_arrays(columns, names=batch.schema.names)


class _ScaledNumeric(sa.types.TypeDecorator[int]):
    """A ``numeric(p, s)`` column (p <= 18) selected as ``bigint``: its value times 10^s."""

    impl = sa.BigInteger
    cache_ok = True

    def __init__(self, dtype: t.Decimal) -> None:
        super().__init__()
        self.dtype = dtype


# A PostgreSQL ``numeric(p, s)`` of at most 18 digits times 10^s fits a ``bigint`` with room
# to spare, so ADBC reads it as an int64 (0.19 s of CPU for 1M values) instead of as text
# (0.71 s, then 0.5 s or more to check and cast the text). Such a column still holds NaN,
# which no ``bigint`` does: it is selected as the smallest ``bigint``, never a scaled value,
# and a batch holding one gets the column back as text, where NaN is a bad row as before.
_MAX_SCALED_PRECISION = 18
_NAN_SCALED = -(2**63)


def _scaled_numeric(column: sa.ColumnElement[Any], dtype: t.Decimal) -> bool:
    """Whether ``column`` is a ``numeric`` whose declared precision and scale are ``dtype``'s
    and fit a scaled ``bigint`` (an unconstrained one may hold any digits: read as text)."""
    declared = column.type
    return (
        dtype.precision <= _MAX_SCALED_PRECISION
        and isinstance(declared, sa.Numeric)
        and not isinstance(declared, sa.Float)
        and declared.precision == dtype.precision
        and (declared.scale or 0) == dtype.scale
    )


def _select_scaled(column: sa.ColumnElement[Any], dtype: t.Decimal) -> sa.ColumnElement[Any]:
    factor: sa.ColumnElement[Any] = sa.literal_column(str(10**dtype.scale))
    nan: sa.ColumnElement[Any] = sa.literal_column("'NaN'::numeric")
    scaled = sa.case(
        (column == nan, sa.cast(sa.literal_column(str(_NAN_SCALED)), sa.BigInteger)),
        else_=sa.cast(column * factor, sa.BigInteger),
    )
    return sa.type_coerce(scaled, _ScaledNumeric(dtype)).label(column.key)


def _unscaled(column: pa.Array, dtype: t.Decimal) -> pa.Array:
    """The ``decimal(p, s)`` of a scaled ``bigint`` column, or its text where it holds NaN."""
    exact = pa.decimal128(dtype.precision, dtype.scale)
    whole = column.cast(pa.decimal128(_MAX_SCALED_PRECISION + 1, 0))
    values = pa.Array.from_buffers(exact, len(whole), whole.buffers(), whole.null_count)
    nan = pc.equal(column, _NAN_SCALED)
    if not pc.any(nan).as_py():
        return values
    return pc.if_else(nan, pa.scalar("NaN"), values.cast(pa.string()))


class _SqliteReader(AdbcReader):
    """SQLite through ADBC, each column selected in one storage class (module docstring)."""

    def select_column(self, column: sa.ColumnElement[Any], field: Field) -> sa.ColumnElement[Any]:
        return _sqlite_one_class(column, field.type)


class _ConnectorXReader(ArrowReader):
    """MariaDB/MySQL through ConnectorX: each result streamed in batches."""

    def __init__(self, uri: str) -> None:
        self._uri = uri
        # Named paramstyle: literals (and a query's text) keep their ``%`` undoubled.
        self._dialect = mysql.pymysql.dialect(paramstyle="named")

    def read(self, statement: sa.Select[Any]) -> Iterator[pa.RecordBatch]:
        import connectorx

        text = str(statement.compile(dialect=self._dialect, compile_kwargs={"literal_binds": True}))
        stream = _connectorx_call(
            lambda: connectorx.read_sql(
                self._uri, text, return_type="arrow_stream", batch_size=CONNECTORX_BATCH_ROWS
            )
        )
        try:
            batches = iter(stream)
            while (batch := _connectorx_call(lambda: next(batches, None))) is not None:
                yield batch
        finally:
            stream.close()

    def select_column(self, column: sa.ColumnElement[Any], field: Field) -> sa.ColumnElement[Any]:
        name = column.key
        dtype = field.type
        if isinstance(dtype, t.Decimal):
            # ConnectorX reads DECIMAL as decimal(38,10): exact only for the text.
            return sa.cast(column, mysql.CHAR()).label(name)
        if isinstance(dtype, t.Timestamp) and dtype.timezone is not None:
            # TIMESTAMP is an instant; its text depends on the session zone, its epoch does not.
            # The zero TIMESTAMP's epoch is 0, which no other has (they start at 1 s): NULL.
            seconds = sa.func.nullif(sa.func.unix_timestamp(column), sa.literal_column("0"))
            return sa.cast(seconds * 1_000_000, sa.BigInteger).label(name)
        if dtype == t.date() or isinstance(dtype, t.Timestamp):
            # DATE and DATETIME as text, which holds what is not a calendar date too.
            return sa.cast(column, mysql.CHAR()).label(name)
        return column

    def close(self) -> None:
        pass


CONNECTORX_BATCH_ROWS = 50_000
"""Rows per batch of a ConnectorX result (the ``chunk_size`` default): what a streamed query
holds in memory."""


def _connectorx_call(call: Callable[[], _T]) -> _T:
    """``call()``, with a panic of ConnectorX's Rust code (pyo3's ``PanicException``, a
    ``BaseException``) raised as a ``RuntimeError`` of its first line."""
    try:
        return call()
    except Exception:
        raise
    except BaseException as error:
        if type(error).__name__ != "PanicException":
            raise
        reason = (str(error).strip().splitlines() or ["a panic"])[0]
        raise RuntimeError(f"ConnectorX failed: {reason}") from None


def open_reader(database: Database) -> ArrowReader:
    """A reader on the fast path of ``database``'s dialect (see the module docstring)."""
    url = database.url
    with database.errors(doing="connect to"):
        try:
            if database.dialect == "postgresql":
                import adbc_driver_postgresql.dbapi as adbc_postgresql

                uri = url.set(drivername="postgresql").render_as_string(hide_password=False)
                connection = adbc_postgresql.connect(uri, autocommit=True)
                with connection.cursor() as cursor:  # the text forms of arrays' elements
                    for statement in ARRAY_TEXT_STATEMENTS:
                        cursor.execute(statement)
                dialect = postgresql.psycopg.dialect(paramstyle="numeric_dollar")
                return _PostgresReader(connection, dialect, copies=True)
            if database.dialect == "sqlite":
                import adbc_driver_sqlite.dbapi as adbc_sqlite

                connection = adbc_sqlite.connect(url.database or ":memory:", autocommit=True)
                with connection.cursor() as cursor:  # wait for writers instead of failing
                    cursor.execute(f"PRAGMA busy_timeout = {_SQLITE_BUSY_TIMEOUT_MS}")
                return _SqliteReader(connection, sqlite.dialect(), copies=False)
        except Exception as error:
            raise database.translate(error, doing="connect to") from None
    uri = url.set(drivername="mysql").render_as_string(hide_password=False)
    return _ConnectorXReader(uri)


# How long an SQLite read waits for a writer's lock before it fails (retried then).
_SQLITE_BUSY_TIMEOUT_MS = 30_000


def _plain_literal(value: Any) -> bool:
    """Whether SQLAlchemy's PostgreSQL literal of ``value`` reads back as ``value`` under any
    session setting: ``'...'`` with doubled quotes is exact for text only without backslashes
    (``standard_conforming_strings``) and NULs; bytes are never rendered."""
    if isinstance(value, bool) or value is None:
        return False
    if isinstance(value, str):
        return "\\" not in value and "\x00" not in value
    return isinstance(value, int | Decimal | datetime | date | time | UUID) and not (
        isinstance(value, Decimal) and not value.is_finite()
    )


def _bindable(value: Any) -> Any:
    """A parameter as ADBC binds it (through Arrow): UUIDs as text, cast back by the SQL, and
    decimals (which ADBC cannot bind) as text, which SQLite compares by the column's numeric
    affinity (PostgreSQL gets decimals as literals)."""
    return str(value) if isinstance(value, UUID | Decimal) else value


def _sqlite_one_class(column: sa.ColumnElement[Any], dtype: t.DataType) -> sa.ColumnElement[Any]:
    """What to select for ``column`` (of ``dtype``) on SQLite: text, whatever storage class
    each row's value has (see the module docstring), for the types ``conform`` makes of
    numbers or of ISO text; the column itself for the others."""
    text = sa.cast(column, sa.Text)
    accepted: dict[str, sa.ColumnElement[Any]]
    if isinstance(dtype, t.Decimal):
        # A NUMERIC column's float stands for the decimal it rounds to.
        accepted = {"integer": text, "real": sa.cast(sa.func.round(column, dtype.scale), sa.Text)}
    elif isinstance(dtype, t.Primitive) and dtype.kind in _FLOAT_KINDS:
        accepted = {"integer": text, "real": text}
    elif isinstance(dtype, t.Primitive) and dtype.kind in _INTEGER_KINDS:
        accepted = {"integer": text}
    elif dtype in (t.date(), t.time(), t.time_ns()) or isinstance(dtype, t.Timestamp):
        accepted = {"text": column}
    else:
        return column
    storage_class = sa.func.typeof(column)
    one_class = sa.case(
        {"null": sa.null(), **accepted}, value=storage_class, else_=sa.func.quote(column)
    )
    return one_class.label(column.key)


_FLOAT_KINDS = frozenset({t.Kind.FLOAT16, t.Kind.FLOAT32, t.Kind.FLOAT64})
# Booleans too: SQLite keeps them as the integers 0 and 1.
_INTEGER_KINDS = frozenset(
    {
        t.Kind.BOOLEAN,
        *(t.Kind(f"int{bits}") for bits in (8, 16, 32, 64)),
        *(t.Kind(f"uint{bits}") for bits in (8, 16, 32, 64)),
    }
)


# ---------------------------------------------------------------------------------------
# Driver types -> the reflected omconnect types
# ---------------------------------------------------------------------------------------


@dataclass
class BadRows:
    """The rows of a read batch that hold a value that does not fit its column's type, and
    what ``ErrorReporter.report_raw`` gets for each (one payload a row).

    Attributes:
        rows: their indices in the batch, ascending.
        payloads: each row as JSON text, UTF-8: its columns by name, a value that does not fit
            as its text (as the driver read it), the others as the record would have them.
        errors: why, naming the table, the row's key and its first column that does not fit.
        places: where: the read's partition (``{"table": ...}`` or ``{"query": ...}``), the
            row's ``key`` values (when the read has a key) and that ``column``.
    """

    rows: np.ndarray
    payloads: list[bytes]
    errors: list[ConnectorError]
    places: list[dict[str, Any]]

    def good(self, num_rows: int) -> pa.BooleanArray:
        """True for the rows of the batch (of ``num_rows`` rows) that are not bad: the mask
        that filters the bad rows out."""
        keep = np.ones(num_rows, dtype=bool)
        keep[self.rows] = False
        return pa.array(keep, pa.bool_())

    def after(self, start: int) -> BadRows:
        """The same bad rows numbered from row ``start`` of the batch (for the slice of the
        batch from ``start`` on, which holds them all)."""
        assert not self.rows.size or self.rows[0] >= start
        return BadRows(self.rows - start, self.payloads, self.errors, self.places)

    def kept(self, keep: np.ndarray) -> BadRows | None:
        """The bad rows that ``batch.filter(keep)`` keeps, numbered as in the filtered batch;
        None when it keeps none."""
        survives = keep[self.rows]
        if not survives.any():
            return None
        picked = np.flatnonzero(survives).tolist()
        return BadRows(
            np.cumsum(keep)[self.rows[survives]] - 1,
            [self.payloads[i] for i in picked],
            [self.errors[i] for i in picked],
            [self.places[i] for i in picked],
        )


def conform(batch: pa.RecordBatch, fields: Sequence[Field], table: str) -> pa.RecordBatch:
    """``batch`` (columns named and ordered as ``fields``) cast to the Arrow types of
    ``fields`` exactly.

    Raises:
        ConnectorError: a value does not fit its column's type (a ``numeric`` value with more
            digits than ``decimal(38,9)``, a ``TINYINT(1)`` holding 2); names the column.
    """
    arrays = []
    for field, column in zip(fields, batch.columns, strict=True):
        target = to_arrow_field(field)
        try:
            arrays.append(_conform_column(column, field.type, target.type))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError) as error:
            raise ConnectorError(_misfit_message(table, field, str(error))) from None
    schema = pa.schema([to_arrow_field(f) for f in fields])
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def conform_rows(
    batch: pa.RecordBatch,
    fields: Sequence[Field],
    table: str,
    place: Mapping[str, Any],
    key: Sequence[str] = (),
    positions: Sequence[str] = (),
) -> tuple[pa.RecordBatch, BadRows | None]:
    """``batch`` cast as ``conform`` casts it, and its bad rows (see the module docstring),
    if any, instead of failing on them.

    Args:
        table: the table's name in messages (``schema.table``, or ``query``).
        place: where the batch was read (the read's partition), for the bad rows' places.
        key: the columns whose values identify a row in a bad row's reason and place.
        positions: the columns a position is made of (the key, the cursor): a value of theirs
            that does not fit cannot be skipped, as the read's position would need it.

    Returns:
        The batch with every row, a value that does not fit being null there (filter the bad
        rows out before emitting it), and the bad rows (None when every value fits).

    Raises:
        ConnectorError: a column of ``positions`` holds a value that does not fit, or a
            driver type has no cast to its column's type at all; names the table and column.
    """
    arrays = []
    misfits: dict[str, dict[int, str]] = {}
    for field, column in zip(fields, batch.columns, strict=True):
        target = to_arrow_field(field)
        try:
            array, found = _conform_or_find(column, field.type, target.type)
        except pa.ArrowNotImplementedError as error:
            raise ConnectorError(_misfit_message(table, field, str(error))) from None
        if found and field.name in positions:
            detail = found[min(found)]
            raise ConnectorError(
                f"table {table}, column {field.name}: a value does not fit {field.type} "
                f"({detail}) and the column is part of the key or cursor that the read's "
                "position holds, so its row cannot be skipped; change the column's type"
            )
        if found:
            misfits[field.name] = found
        arrays.append(array)
    schema = pa.schema([to_arrow_field(f) for f in fields])
    values = pa.RecordBatch.from_arrays(arrays, schema=schema)
    if not misfits:
        return values, None
    return values, _bad_rows(batch, values, fields, misfits, table, place, key)


def _misfit_message(table: str, field: Field, detail: str, key: str = "") -> str:
    return (
        f"table {table}, {key}column {field.name}: a value does not fit {field.type} "
        f"({detail}); change the column's type or leave it out"
    )


def _readable(column: pa.Array) -> list[Any]:
    """``column``'s values as Python objects; dates and timestamps as Arrow's text of them
    (Python's cannot hold a date outside years 1 to 9999, which is why such a row is bad)."""
    if pa.types.is_date(column.type) or pa.types.is_timestamp(column.type):
        return pc.cast(column, pa.string()).to_pylist()
    return column.to_pylist()


def _bad_rows(
    raw: pa.RecordBatch,
    values: pa.RecordBatch,
    fields: Sequence[Field],
    misfits: Mapping[str, Mapping[int, str]],
    table: str,
    place: Mapping[str, Any],
    key: Sequence[str],
) -> BadRows:
    """The reports of the rows of ``misfits`` (column -> row -> why): Python objects for these
    rows only."""
    rows = np.array(sorted({row for found in misfits.values() for row in found}), np.int64)
    picked = pa.array(rows)
    as_read = [_readable(_storage_of(column).take(picked)) for column in raw.columns]
    conformed = [column.take(picked).to_pylist() for column in values.columns]
    payloads, errors, places = [], [], []
    for i, row in enumerate(rows.tolist()):
        record: dict[str, Any] = {}
        first: tuple[Field, str] | None = None
        for field, read_values, record_values in zip(fields, as_read, conformed, strict=True):
            detail = misfits.get(field.name, {}).get(row)
            if detail is None:
                record[field.name] = record_values[i]
                continue
            record[field.name] = _as_text(read_values[i])
            if first is None:
                first = (field, detail)
        assert first is not None
        where = dict(place)
        key_text = ""
        if key:
            where["key"] = {name: record[name] for name in key}
            key_text = f"key {json.dumps(where['key'], default=str, ensure_ascii=False)}, "
        where["column"] = first[0].name
        payloads.append(json.dumps(record, default=str, ensure_ascii=False).encode())
        errors.append(ConnectorError(_misfit_message(table, first[0], first[1], key_text)))
        places.append(where)
    return BadRows(rows, payloads, errors, places)


def _storage_of(column: pa.Array) -> pa.Array:
    return column.storage if isinstance(column.type, pa.BaseExtensionType) else column


def _as_text(value: Any) -> str | None:
    """A value that does not fit, as its text (a number of 45 digits stays exact; a list is
    its JSON)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode(errors="backslashreplace")
    if isinstance(value, list | dict):
        return json.dumps(value, default=str, ensure_ascii=False)
    return str(value)


def _conform_or_find(
    column: pa.Array, dtype: t.DataType, target: pa.DataType
) -> tuple[pa.Array, dict[int, str]]:
    """``column`` cast to ``target`` (``dtype``) in one call when every value fits; otherwise
    with the values that do not fit as nulls, and their rows (row -> why).

    Raises:
        pyarrow.ArrowNotImplementedError: no cast from the driver's type to ``target``.
    """
    if isinstance(dtype, t.Array) and _is_text(column.type):
        return _lists_of_text(column, dtype, target)
    try:
        return _in_calendar(_conform_column(column, dtype, target), {})
    except ValueError:  # (ArrowInvalid too) some value does not fit
        pass
    checked, found = _checked(column, dtype)
    pieces, rest = _conform_halves(checked, dtype, target, 0)
    array = pieces[0] if len(pieces) == 1 else pa.concat_arrays(pieces)
    return _in_calendar(array, {**rest, **found})


def _lists_of_text(
    column: pa.Array, dtype: t.Array, target: pa.DataType
) -> tuple[pa.Array, dict[int, str]]:
    """PostgreSQL array texts as the lists of ``dtype`` (``_pg_text.parse_masked``: a value
    that is no list, a multi-dimensional array, or holds an element that does not fit, is
    null), and the rows of those (row -> why)."""
    values, misfits = parse_masked(column, dtype)
    if values.type != target:
        values = values.cast(target)
    if misfits is None:
        return values, {}
    rows = np.flatnonzero(misfits)
    texts = column.take(pa.array(rows)).to_pylist()
    return values, {
        int(row): array_misfit(text, dtype) or "not an array's text"
        for row, text in zip(rows.tolist(), texts, strict=True)
    }


# The dates a record may hold: years 1 to 9999, as Python, JSON Schema's date format and
# the CDC stream's parser take them (PostgreSQL's infinite dates and timestamps arrive from
# ADBC as the extremes of their integer storage).
_FIRST_DAY, _LAST_DAY = -719_162, 2_932_896  # 0001-01-01 and 9999-12-31, days since 1970
# (Nanosecond timestamps cannot leave those years: int64 nanoseconds end in 2262.)
_DAY_UNITS = {"s": 86_400, "ms": 86_400_000, "us": 86_400_000_000}


def _in_calendar(array: pa.Array, found: dict[int, str]) -> tuple[pa.Array, dict[int, str]]:
    """``array`` with its dates and timestamps outside years 1 to 9999 null, and their rows
    added to ``found`` (row -> why); other types as they are. One min/max pass when every
    value is inside."""
    kind = array.type
    if pa.types.is_date32(kind):
        stored, first, last = array.cast(pa.int32()), _FIRST_DAY, _LAST_DAY
    elif pa.types.is_timestamp(kind) and kind.unit in _DAY_UNITS:
        day = _DAY_UNITS[kind.unit]
        stored, first, last = array.cast(pa.int64()), _FIRST_DAY * day, (_LAST_DAY + 1) * day - 1
    else:
        return array, found
    extremes = pc.min_max(stored)
    low, high = extremes["min"].as_py(), extremes["max"].as_py()
    if low is None or (low >= first and high <= last):
        return array, found
    outside = pc.or_(pc.less(stored, first), pc.greater(stored, last))
    rows = np.flatnonzero(outside.to_numpy(zero_copy_only=False) == True)  # noqa: E712
    reason = "it is outside the years 1 to 9999 (an infinite date or timestamp?)"
    return pc.if_else(outside, pa.nulls(len(array), kind), array), {
        **found,
        **{int(row): reason for row in rows},
    }


def _conform_halves(
    column: pa.Array, dtype: t.DataType, target: pa.DataType, start: int
) -> tuple[list[pa.Array], dict[int, str]]:
    """``column`` (rows ``start`` on of the batch) cast in pieces: the whole when it fits,
    else each half the same way, down to the values that fail alone, which become nulls (their
    rows -> Arrow's reason)."""
    try:
        return [_conform_column(column, dtype, target)], {}
    except ValueError as error:
        if len(column) == 1:
            return [pa.nulls(1, target)], {start: str(error)}
    middle = len(column) // 2
    first, first_found = _conform_halves(column.slice(0, middle), dtype, target, start)
    second, second_found = _conform_halves(column.slice(middle), dtype, target, start + middle)
    return first + second, {**first_found, **second_found}


def _checked(column: pa.Array, dtype: t.DataType) -> tuple[pa.Array, dict[int, str]]:
    """The values of ``column`` that the vectorised checks find not to fit ``dtype`` (row ->
    why), and ``column`` with them null (decimal text also without its fraction's trailing
    zeros, which Arrow would count against the precision). A column without a check comes back
    as it was."""
    storage = _storage_of(column)
    kind = storage.type
    checks: list[tuple[pa.Array, str]]
    if isinstance(dtype, t.Decimal) and _is_text(kind):
        storage = pc.replace_substring_regex(storage, _FRACTION_TRAILING_ZEROS, r"\1")
        checks = [_quoted_check(storage), *_decimal_text_checks(storage, dtype)]
    elif dtype == t.boolean() and pa.types.is_integer(kind):
        outside = pc.or_(pc.less(storage, 0), pc.greater(storage, 1))
        checks = [(outside, "a boolean (TINYINT(1)) column holds only 0 and 1")]
    elif dtype == t.boolean() and _is_text(kind):
        outside = pc.invert(pc.is_in(storage, pa.array(["0", "1"])))
        checks = [_quoted_check(storage), (outside, "a boolean column holds only 0 and 1")]
    elif isinstance(dtype, t.Primitive) and dtype.kind in _NUMBER_KINDS and _is_text(kind):
        checks = [_quoted_check(storage)]
    elif dtype == t.uuid() and _is_text(kind):
        checks = [(uuid_from_text(storage)[1], "not a UUID")]
    else:
        return column, {}
    found: dict[int, str] = {}
    for mask, detail in checks:
        rows = np.flatnonzero(pc.fill_null(mask, False).to_numpy(zero_copy_only=False))
        for row in rows.tolist():
            found.setdefault(row, detail)
    if not found:
        return storage, found
    misfit = np.zeros(len(storage), dtype=bool)
    misfit[list(found)] = True
    nulled = pc.if_else(pa.array(misfit), pa.scalar(None, kind), storage)
    return nulled, found


def _is_text(kind: pa.DataType) -> bool:
    return pa.types.is_string(kind) or pa.types.is_large_string(kind)


# The fraction's trailing zeros of decimal text (``1.500`` -> ``1.5``, ``2.0`` -> ``2.``).
_FRACTION_TRAILING_ZEROS = r"^([+-]?(?:[0-9]+\.[0-9]*?|\.[0-9]*?[1-9]))0+$"
# Decimal text without exponent: its digits before the point (no leading zeros) and after it.
_DECIMAL_TEXT = r"^[+-]?0*(?P<whole>[0-9]*)(?:\.(?P<fraction>[0-9]*))?$"
# How drivers spell NaN and infinity (PostgreSQL through ADBC: ``nan``, ``inf``, ``-inf``).
_NOT_FINITE_TEXT = r"^[+-]?(nan|inf|infinity)$"


def _decimal_text_checks(text: pa.Array, dtype: t.Decimal) -> list[tuple[pa.Array, str]]:
    """Decimal text (without trailing zeros) with more digits than ``dtype`` holds, or NaN or
    infinity. Text of another form (an exponent) is left to the cast."""
    parts = pc.extract_regex(text, _DECIMAL_TEXT)
    whole = pc.utf8_length(pc.struct_field(parts, "whole"))
    fraction = pc.utf8_length(pc.struct_field(parts, "fraction"))
    integer_digits = dtype.precision - dtype.scale
    return [
        (
            pc.match_substring_regex(text, _NOT_FINITE_TEXT, ignore_case=True),
            "not a finite number",
        ),
        (
            pc.greater(whole, integer_digits),
            f"more than {integer_digits} digits before the decimal point",
        ),
        (
            pc.greater(fraction, dtype.scale),
            f"more than {dtype.scale} digits after the decimal point",
        ),
    ]


def _quoted_check(text: pa.Array) -> tuple[pa.Array, str]:
    """Text or a blob where SQLite should hold a number: SQL quotes it (``_sqlite_one_class``)."""
    return (
        pc.match_substring_regex(text, _SQL_QUOTED),
        "SQLite holds text or a blob here, not a number",
    )


# A text or blob literal as SQLite's quote() writes it: 'it''s', X'00FF'.
_SQL_QUOTED = r"^X?'"
_NUMBER_KINDS = _INTEGER_KINDS | _FLOAT_KINDS


def _conform_column(column: pa.Array, dtype: t.DataType, target: pa.DataType) -> pa.Array:
    if column.type == target:
        return column
    if column.null_count == len(column):  # SQLite types a column of nulls as int64
        return pa.nulls(len(column), target)
    if isinstance(column.type, pa.BaseExtensionType) and not isinstance(
        target, pa.BaseExtensionType
    ):
        column = column.storage  # PostgreSQL numeric arrives as opaque text
    if dtype == t.uuid() and (
        pa.types.is_string(column.type) or pa.types.is_large_string(column.type)
    ):
        # MariaDB's UUID type and UUIDs kept as CHAR(36) arrive as their text.
        uuids, invalid = uuid_from_text(column)
        if pc.any(invalid).as_py():
            raise ValueError("a value is not a UUID")
        return uuids.cast(target) if uuids.type != target else uuids
    if isinstance(target, pa.BaseExtensionType):
        storage = _conform_column(column, dtype, target.storage_type)
        return pa.ExtensionArray.from_storage(target, storage)
    if (dtype == t.date() or isinstance(dtype, t.Timestamp)) and _is_text(column.type):
        column = _zero_dates_as_null(column)
    if isinstance(dtype, t.Timestamp):
        return _to_timestamp(column, target)
    if dtype == t.boolean():
        return _to_boolean(column)
    if isinstance(dtype, t.Enum):
        return pc.dictionary_encode(column.cast(pa.string())).cast(target)
    if isinstance(dtype, t.Array) and _is_text(column.type):  # PostgreSQL arrays' text
        values, misfits = parse_masked(column, dtype)
        if misfits is not None:
            text = column[int(np.flatnonzero(misfits)[0])].as_py()
            raise ValueError(array_misfit(text, dtype) or "a value is not an array's text")
        return values if values.type == target else values.cast(target)
    if isinstance(dtype, t.Array) and pa.types.is_list(column.type):
        if len(column) and (
            column.offsets[0].as_py() != 0 or column.offsets[-1].as_py() != len(column.values)
        ):  # a slice, whose ``values`` are every item of the whole array: just its own
            column = pa.concat_arrays([column])
        items = _conform_column(column.values, dtype.items, target.value_type)
        mask = column.is_null() if column.null_count else None
        return pa.ListArray.from_arrays(column.offsets, items, type=target, mask=mask)
    return column.cast(target)


def _zero_dates_as_null(text: pa.Array) -> pa.Array:
    """Date or datetime text with MariaDB's zero date (``0000-00-00``, any time of day) null."""
    zero = pc.starts_with(text, _ZERO_DATE)
    if not pc.any(zero).as_py():
        return text
    return pc.if_else(zero, pa.scalar(None, text.type), text)


_ZERO_DATE = "0000-00-00"


def _to_timestamp(column: pa.Array, target: pa.DataType) -> pa.Array:
    if pa.types.is_integer(column.type):  # MySQL TIMESTAMP as epoch microseconds
        return column.cast(pa.int64()).cast(target)
    if pa.types.is_string(column.type):  # SQLite's ISO text
        return column.cast(pa.timestamp(target.unit)).cast(target)
    if pa.types.is_timestamp(column.type) and column.type.tz is None and target.tz is not None:
        return column.cast(pa.timestamp(target.unit)).cast(pa.int64()).cast(target)
    return column.cast(target)


def _to_boolean(column: pa.Array) -> pa.Array:
    if pa.types.is_binary(column.type) or pa.types.is_large_binary(column.type):
        return pc.not_equal(column.cast(pa.binary()), pa.scalar(b"\x00", pa.binary()))
    if pa.types.is_integer(column.type):
        outside = pc.or_(pc.less(column, 0), pc.greater(column, 1))
        if pc.any(outside).as_py():
            raise ValueError("a boolean (TINYINT(1)) column holds a value other than 0 and 1")
    return column.cast(pa.bool_())


__all__ = ["ArrowReader", "BadRows", "conform", "conform_rows", "open_reader"]

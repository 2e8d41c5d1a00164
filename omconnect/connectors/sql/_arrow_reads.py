"""Running a SELECT and getting Arrow record batches of the reflected schema, per dialect.

The fast path of each database, with no Python object per row:

- **PostgreSQL**: ADBC (``adbc_driver_postgresql``), which reads ``COPY (SELECT ...) TO
  STDOUT (FORMAT binary)`` into Arrow; ``fetch_record_batch`` streams the result, so memory
  stays bounded by the batch. ADBC can COPY only a statement without parameters (a bound one
  is read row by row through the extended protocol, 1.6x slower here: 1M rows of the B1 table
  in 50k-row chunks took 1.38 s bound, 0.87 s as COPY), so the few values a statement holds
  (chunk bounds read back from positions, the LIMIT) are rendered as literals when their
  type has a text that means the same whatever the session's settings (numbers, dates and
  times, UUIDs, text without backslashes or NULs); any other value is bound.
- **SQLite**: ADBC (``adbc_driver_sqlite``), streamed the same way; parameters bound (``?``).
- **MariaDB/MySQL**: ConnectorX (``read_sql(..., return_type="arrow")``), which
  materialises one query's result: callers keep each query to one key-range chunk. ConnectorX
  binds no parameters, so the few values a statement holds (chunk bounds read back from
  positions, never config text) are rendered as SQL literals by SQLAlchemy's MySQL dialect,
  which escapes them.

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
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any
from uuid import UUID

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql, sqlite

from omconnect.codecs.uuid_text import uuid_from_text
from omconnect.connectors.api import ConnectorError
from omconnect.connectors.sql._database import Database
from omconnect.schemas import types as t
from omconnect.schemas.arrow import to_arrow_field
from omconnect.schemas.types import Field


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


class _ConnectorXReader(ArrowReader):
    """MariaDB/MySQL through ConnectorX: one materialised result per statement."""

    def __init__(self, uri: str) -> None:
        self._uri = uri
        # Named paramstyle: literals (and a query's text) keep their ``%`` undoubled.
        self._dialect = mysql.pymysql.dialect(paramstyle="named")

    def read(self, statement: sa.Select[Any]) -> Iterator[pa.RecordBatch]:
        import connectorx

        text = str(statement.compile(dialect=self._dialect, compile_kwargs={"literal_binds": True}))
        table = connectorx.read_sql(self._uri, text, return_type="arrow")
        yield from table.to_batches()

    def select_column(self, column: sa.ColumnElement[Any], field: Field) -> sa.ColumnElement[Any]:
        name = column.key
        if isinstance(field.type, t.Decimal):
            # ConnectorX reads DECIMAL as decimal(38,10): exact only for the text.
            return sa.cast(column, mysql.CHAR()).label(name)
        if isinstance(field.type, t.Timestamp) and field.type.timezone is not None:
            # TIMESTAMP is an instant; its text depends on the session zone, its epoch does not.
            micros = sa.func.unix_timestamp(column) * 1_000_000
            return sa.cast(micros, sa.BigInteger).label(name)
        return column

    def close(self) -> None:
        pass


def open_reader(database: Database) -> ArrowReader:
    """A reader on the fast path of ``database``'s dialect (see the module docstring)."""
    url = database.url
    with database.errors(doing="connect to"):
        try:
            if database.dialect == "postgresql":
                import adbc_driver_postgresql.dbapi as adbc_postgresql

                uri = url.set(drivername="postgresql").render_as_string(hide_password=False)
                connection = adbc_postgresql.connect(uri, autocommit=True)
                dialect = postgresql.psycopg.dialect(paramstyle="numeric_dollar")
                return AdbcReader(connection, dialect, copies=True)
            if database.dialect == "sqlite":
                import adbc_driver_sqlite.dbapi as adbc_sqlite

                connection = adbc_sqlite.connect(url.database or ":memory:", autocommit=True)
                with connection.cursor() as cursor:  # wait for writers instead of failing
                    cursor.execute(f"PRAGMA busy_timeout = {_SQLITE_BUSY_TIMEOUT_MS}")
                return AdbcReader(connection, sqlite.dialect(), copies=False)
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
    as_read = [_storage_of(column).take(picked).to_pylist() for column in raw.columns]
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
    try:
        return _conform_column(column, dtype, target), {}
    except ValueError:  # (ArrowInvalid too) some value does not fit
        pass
    checked, found = _checked(column, dtype)
    pieces, rest = _conform_halves(checked, dtype, target, 0)
    array = pieces[0] if len(pieces) == 1 else pa.concat_arrays(pieces)
    return array, {**rest, **found}


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
        checks = _decimal_text_checks(storage, dtype)
    elif isinstance(dtype, t.Decimal) and (pa.types.is_floating(kind) or pa.types.is_integer(kind)):
        checks = _decimal_number_checks(storage, dtype)
    elif dtype == t.boolean() and pa.types.is_integer(kind):
        outside = pc.or_(pc.less(storage, 0), pc.greater(storage, 1))
        checks = [(outside, "a boolean (TINYINT(1)) column holds only 0 and 1")]
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


def _decimal_number_checks(numbers: pa.Array, dtype: t.Decimal) -> list[tuple[pa.Array, str]]:
    """Numbers (SQLite's NUMERIC values) too large for ``dtype``, or not finite."""
    integer_digits = dtype.precision - dtype.scale
    too_long = f"more than {integer_digits} digits before the decimal point"
    if pa.types.is_floating(numbers.type):
        limit = pa.scalar(10.0**integer_digits, numbers.type)
        rounded = pc.abs(pc.round(numbers, dtype.scale))
        return [
            (pc.invert(pc.is_finite(numbers)), "not a finite number"),
            (pc.greater_equal(rounded, limit), too_long),
        ]
    if integer_digits > 18:  # every int64 fits
        return []
    limit = 10**integer_digits
    return [(pc.or_(pc.greater_equal(numbers, limit), pc.less_equal(numbers, -limit)), too_long)]


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
    if isinstance(dtype, t.Decimal):
        return _to_decimal(column, dtype, target)
    if isinstance(dtype, t.Timestamp):
        return _to_timestamp(column, target)
    if dtype == t.boolean():
        return _to_boolean(column)
    if isinstance(dtype, t.Enum):
        return pc.dictionary_encode(column.cast(pa.string())).cast(target)
    if isinstance(dtype, t.Array) and pa.types.is_list(column.type):
        if len(column) and (
            column.offsets[0].as_py() != 0 or column.offsets[-1].as_py() != len(column.values)
        ):  # a slice, whose ``values`` are every item of the whole array: just its own
            column = pa.concat_arrays([column])
        items = _conform_column(column.values, dtype.items, target.value_type)
        mask = column.is_null() if column.null_count else None
        return pa.ListArray.from_arrays(column.offsets, items, type=target, mask=mask)
    return column.cast(target)


def _to_decimal(column: pa.Array, dtype: t.Decimal, target: pa.DataType) -> pa.Array:
    if pa.types.is_floating(column.type):
        # SQLite keeps NUMERIC values as 8-byte floats: their decimal is the rounded one.
        column = pc.round(column, dtype.scale)
    if pa.types.is_floating(column.type) or pa.types.is_integer(column.type):
        # (SQLite's whole NUMERIC values are integers.)
        column = column.cast(pa.decimal128(38, dtype.scale))
    return column.cast(target)


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

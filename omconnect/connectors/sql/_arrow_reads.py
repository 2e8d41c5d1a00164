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
timestamp zones, uuid, json, enums) and fails with the column's name when a value does not
fit, never rounding it silently. ConnectorX statements are compiled with the named paramstyle
so that no ``%`` (in a literal or in a query's text) is doubled.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any
from uuid import UUID

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


class _AdbcReader(ArrowReader):
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
                return _AdbcReader(connection, dialect, copies=True)
            if database.dialect == "sqlite":
                import adbc_driver_sqlite.dbapi as adbc_sqlite

                connection = adbc_sqlite.connect(url.database or ":memory:", autocommit=True)
                with connection.cursor() as cursor:  # wait for writers instead of failing
                    cursor.execute(f"PRAGMA busy_timeout = {_SQLITE_BUSY_TIMEOUT_MS}")
                return _AdbcReader(connection, sqlite.dialect(), copies=False)
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
            raise ConnectorError(
                f"table {table}, column {field.name}: a value does not fit {field.type} "
                f"({error}); change the column's type or leave it out"
            ) from None
    schema = pa.schema([to_arrow_field(f) for f in fields])
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


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


__all__ = ["ArrowReader", "conform", "open_reader"]

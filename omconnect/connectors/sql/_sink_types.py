"""omconnect types -> SQL column types, the direction the sql sink needs: the DDL of
``create: true`` and of added columns, and whether an existing column can hold a record
field (schema evolution: widening is fine, anything narrower or of another kind is refused).

The other direction (SQL -> omconnect, for the source) lives in ``omconnect.schemas.sql``.
Types are SQLAlchemy types so each dialect compiles its own spelling; MariaDB needs bounded
types for key columns (a TEXT or BLOB column cannot be a primary key) and LONG types for the
others (TEXT and BLOB stop at 64 KiB). Arrays, maps and structs are stored as JSON documents.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql

from omconnect.schemas import types as t
from omconnect.schemas.types import DataType, Kind

_INTEGER_BITS = {
    Kind.INT8: 16,
    Kind.INT16: 16,
    Kind.INT32: 32,
    Kind.INT64: 64,
    Kind.UINT8: 16,
    Kind.UINT16: 32,
    Kind.UINT32: 64,
}
_FLOAT_BITS = {Kind.FLOAT16: 32, Kind.FLOAT32: 32, Kind.FLOAT64: 64}
_KEY_LENGTH = 255


class NoSqlTypeError(TypeError):
    """An omconnect type the sink has no SQL column type for; the message says what to do."""


def sql_type(dtype: DataType, dialect: str, *, key: bool = False) -> sa.types.TypeEngine[Any]:
    """The column type that holds every value of ``dtype`` in ``dialect`` (``postgresql``,
    ``mysql``, ``sqlite``); ``key``: the column is part of the primary key.

    Raises:
        NoSqlTypeError: nested types, nanosecond times, decimals wider than the dialect's.
    """
    kind = dtype.kind
    if kind in _INTEGER_BITS:
        bits = _INTEGER_BITS[kind]
        return {16: sa.SmallInteger(), 32: sa.Integer(), 64: sa.BigInteger()}[bits]
    if kind == Kind.UINT64:
        return sa.Numeric(20, 0)
    if kind in _FLOAT_BITS:
        return sa.Double() if _FLOAT_BITS[kind] == 64 else sa.REAL()
    if kind == Kind.BOOLEAN:
        return sa.Boolean()
    if kind in (Kind.STRING, Kind.ENUM, Kind.NULL):
        if dialect == "mysql":
            return sa.String(_KEY_LENGTH) if key else mysql.LONGTEXT()
        return sa.Text()
    if kind == Kind.BYTES:
        if dialect == "mysql":
            return mysql.VARBINARY(_KEY_LENGTH) if key else mysql.LONGBLOB()
        return sa.LargeBinary()
    if kind == Kind.UUID:
        return postgresql.UUID() if dialect == "postgresql" else sa.CHAR(36)
    if kind == Kind.JSON:
        return postgresql.JSONB() if dialect == "postgresql" else sa.JSON()
    if kind == Kind.DATE:
        return sa.Date()
    if kind == Kind.TIME:
        return mysql.TIME(fsp=6) if dialect == "mysql" else sa.Time()
    if isinstance(dtype, t.Timestamp) and dtype.unit == "us":
        if dialect == "mysql":
            return mysql.DATETIME(fsp=6)
        return sa.DateTime(timezone=dtype.timezone is not None)
    if isinstance(dtype, t.Decimal):
        if dialect == "mysql" and dtype.precision > 65:
            raise NoSqlTypeError(f"{dtype} is wider than MariaDB's DECIMAL(65)")
        return sa.Numeric(dtype.precision, dtype.scale)
    if kind in (Kind.TIME_NS, Kind.TIMESTAMP):
        raise NoSqlTypeError(
            f"{dtype} has nanoseconds, which SQL columns do not hold: cast it to microseconds "
            "with a cast transform"
        )
    if kind in (Kind.ARRAY, Kind.MAP, Kind.STRUCT):
        return postgresql.JSONB() if dialect == "postgresql" else sa.JSON()
    raise NoSqlTypeError(f"{dtype} has no SQL column type: drop it or cast it with a transform")


def holds(column: sa.types.TypeEngine[Any], dtype: DataType, dialect: str) -> bool:
    """Whether an existing column of type ``column`` holds every value of ``dtype``
    (the same kind, as wide or wider). Unknown column types hold nothing, but in SQLite,
    whose columns hold any value."""
    if dialect == "sqlite" and isinstance(column, sa.types.NullType):
        return True
    kind = dtype.kind
    if kind in _INTEGER_BITS or kind == Kind.UINT64:
        needed = _INTEGER_BITS.get(kind, 65)
        if isinstance(column, sa.Integer) and not isinstance(column, sa.Boolean):
            return _integer_bits(column, dialect) >= needed
        return (
            isinstance(column, sa.Numeric)
            and not isinstance(column, sa.Float)
            and (column.scale in (None, 0) and (column.precision is None or column.precision >= 20))
        )
    if kind in _FLOAT_BITS:
        return isinstance(column, sa.Float) and _float_bits(column) >= _FLOAT_BITS[kind]
    if isinstance(dtype, t.Decimal):
        if not isinstance(column, sa.Numeric) or isinstance(column, sa.Float):
            return False
        if column.precision is None:
            return True
        scale = column.scale or 0
        return scale >= dtype.scale and column.precision - scale >= dtype.precision - dtype.scale
    if kind == Kind.BOOLEAN:
        return isinstance(column, sa.Boolean | sa.Integer)
    if kind in (Kind.STRING, Kind.ENUM, Kind.NULL):
        return isinstance(column, sa.String) and not isinstance(column, sa.Enum)
    if kind == Kind.BYTES:
        return isinstance(column, sa.LargeBinary | sa.types._Binary)
    if kind == Kind.UUID:
        return isinstance(column, sa.Uuid | sa.String)
    if kind in (Kind.JSON, Kind.ARRAY, Kind.MAP, Kind.STRUCT):
        return isinstance(column, sa.JSON | sa.String)
    if kind == Kind.DATE:
        return isinstance(column, sa.Date)
    if kind == Kind.TIME:
        return isinstance(column, sa.Time)
    if kind == Kind.TIMESTAMP:
        return isinstance(column, sa.DateTime)
    return False


def _integer_bits(column: sa.Integer, dialect: str) -> int:
    if dialect == "sqlite":
        return 64  # every SQLite integer is 64 bits, whatever the declared type
    if isinstance(column, sa.BigInteger):
        return 64
    named = {"TINYINT": 8, "SMALLINT": 16, "MEDIUMINT": 24}.get(type(column).__name__)
    if named is not None:
        return named
    return 16 if isinstance(column, sa.SmallInteger) else 32


def _float_bits(column: sa.Float[Any]) -> int:
    if isinstance(column, sa.Double | sa.DOUBLE_PRECISION):
        return 64
    if isinstance(column, sa.REAL):
        return 32
    precision = column.precision
    return 64 if precision is None or precision > 24 else 32


def describe(column: sa.types.TypeEngine[Any], dialect: Any) -> str:
    """A column type as the dialect spells it (for messages)."""
    try:
        return str(column.compile(dialect=dialect))
    except Exception:
        return type(column).__name__

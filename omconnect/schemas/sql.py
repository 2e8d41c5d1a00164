"""The mapping between SQL column types (as SQLAlchemy reflects them) and omconnect types.

One section per direction:

- **SQL -> omconnect** (``from_sql_type``): what a source emits for a reflected column of
  PostgreSQL, MySQL/MariaDB or SQLite. Exact: every value of the column has one omconnect
  value and comes back unchanged.
- **omconnect -> SQL** (``sql_type``, ``holds``): the column types a sink creates and adds
  for record fields, and whether an existing column holds a field; its own section at the
  end of the module.

Choices that are not forced by the SQL type:

- An unconstrained ``numeric`` (PostgreSQL ``numeric`` without precision, SQLite ``NUMERIC``
  without one) becomes ``decimal(38, 9)`` (``UNCONSTRAINED_NUMERIC``); a value that does not
  fit fails the read with an error naming the column, never a rounded value.
- MySQL ``TINYINT(1)`` (what ``BOOLEAN`` is in MySQL and MariaDB) is ``boolean``; a value other
  than 0 and 1 fails the read. ``BIT(1)`` is ``boolean``; wider ``BIT(n)`` are big-endian bytes.
- MySQL ``TIMESTAMP`` is an instant (``timestamp(UTC)``); ``DATETIME`` has no zone. PostgreSQL
  ``timestamptz`` is ``timestamp(UTC)``, ``timestamp`` has no zone. SQLite stores datetimes as
  text; they are zone-less timestamps.
- MariaDB stores ``JSON`` as ``LONGTEXT`` with the check ``json_valid(col)``, and
  reflection sees the text type: the caller says which columns have that check
  (``json_checked_columns`` reads them from the table's check clauses), and those are
  ``json``, holding the JSON text as it was stored. Other ``LONGTEXT`` columns, and columns
  whose check is anything but exactly ``json_valid(col)`` (MariaDB drops its own check when
  ``JSON`` is declared with another one), are ``string``.

A type with no exact mapping (intervals, geometric and network types, ``SET``, multi-dimension
arrays, ``time with time zone``) raises ``UnmappedSqlType`` naming the table, the column and
the type.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql
from sqlalchemy.sql.type_api import TypeEngine

from omconnect.schemas import types as t
from omconnect.schemas.types import DataType, Kind

UNCONSTRAINED_NUMERIC = t.decimal(38, 9)
"""The omconnect type of a ``numeric`` column declared without precision and scale."""

DIALECTS = ("postgresql", "mysql", "sqlite")
"""The dialect names this module maps (MariaDB reports itself as ``mysql``)."""


class UnmappedSqlType(TypeError):
    """A column type without an exact omconnect type; the message names the column."""

    def __init__(self, where: str, sql_type: str, reason: str = "") -> None:
        detail = f" ({reason})" if reason else ""
        super().__init__(
            f"column {where} has type {sql_type}, which has no exact omconnect type{detail}; "
            "leave the column out (cast it in a `query:`) or change its type"
        )
        self.where = where
        self.sql_type = sql_type


# ---------------------------------------------------------------------------------------
# SQL -> omconnect
# ---------------------------------------------------------------------------------------


def from_sql_type(
    sql_type: TypeEngine[Any], dialect: str, where: str, *, json_checked: bool = False
) -> DataType:
    """The omconnect type of a column of ``sql_type`` reflected from ``dialect``.

    Args:
        sql_type: the type SQLAlchemy reflected (``Inspector.get_columns(...)["type"]``).
        dialect: ``postgresql``, ``mysql`` (MySQL and MariaDB) or ``sqlite``.
        where: ``schema.table.column``, for the error message.
        json_checked: the column has MariaDB's ``json_valid(col)`` check (see
            ``json_checked_columns``): a ``LONGTEXT`` one is MariaDB's ``JSON``, ``json``.

    Raises:
        UnmappedSqlType: the type has no exact omconnect type.
        ValueError: ``dialect`` is not one of ``DIALECTS``.
    """
    if dialect not in DIALECTS:
        raise ValueError(f"no SQL type mapping for dialect {dialect!r}; known: {DIALECTS}")
    if json_checked and dialect == "mysql" and isinstance(sql_type, mysql.LONGTEXT):
        return t.json()
    found = _DIALECT_MAPPERS[dialect](sql_type, where)
    if found is None:
        found = _generic(sql_type, dialect)
    if found is None:
        raise UnmappedSqlType(where, _spelled(sql_type, dialect))
    return found


def json_checked_columns(check_clauses: Iterable[str]) -> frozenset[str]:
    """The columns that MariaDB check clauses (``information_schema.CHECK_CONSTRAINTS
    .CHECK_CLAUSE`` of one table) constrain to JSON: those of the clauses that are exactly
    ``json_valid(col)``, which is what MariaDB adds to a column declared ``JSON``.

    MariaDB prints a clause in its own normal form: ``json_valid(`doc`)``, or
    ``json_valid("doc")`` when the session's ``sql_mode`` has ``ANSI_QUOTES``; both are read.
    """
    found = set()
    for clause in check_clauses:
        match = _JSON_VALID_CHECK.fullmatch(clause.strip())
        if match is None:
            continue
        if match["backticked"] is not None:
            found.add(match["backticked"].replace("``", "`"))
        else:
            found.add(match["quoted"].replace('""', '"'))
    return frozenset(found)


_JSON_VALID_CHECK = re.compile(
    r'json_valid\((?:`(?P<backticked>(?:[^`]|``)+)`|"(?P<quoted>(?:[^"]|"")+)")\)',
    re.IGNORECASE,
)


def _postgresql(sql_type: TypeEngine[Any], where: str) -> DataType | None:
    if isinstance(sql_type, postgresql.ARRAY):
        if sql_type.dimensions is not None and sql_type.dimensions > 1:
            raise UnmappedSqlType(where, _spelled(sql_type, "postgresql"), "arrays of arrays")
        return t.array(from_sql_type(sql_type.item_type, "postgresql", f"{where}[]"))
    if isinstance(sql_type, postgresql.ENUM):
        return t.enum(*sql_type.enums, name=sql_type.name)
    if isinstance(sql_type, postgresql.TIME) and sql_type.timezone:
        raise UnmappedSqlType(where, "time with time zone", "an offset without a date")
    if isinstance(sql_type, postgresql.INTERVAL | postgresql.MONEY):
        raise UnmappedSqlType(where, _spelled(sql_type, "postgresql"))
    if isinstance(sql_type, postgresql.DOUBLE_PRECISION):
        return t.float64()
    if isinstance(sql_type, postgresql.REAL):
        return t.float32()
    return None


def _mysql(sql_type: TypeEngine[Any], where: str) -> DataType | None:
    unsigned = bool(getattr(sql_type, "unsigned", False))
    if isinstance(sql_type, mysql.TINYINT):
        if sql_type.display_width == 1 and not unsigned:
            return t.boolean()
        return t.uint8() if unsigned else t.int8()
    for signed_type, plain, unsigned_type in _MYSQL_INTEGERS:
        if isinstance(sql_type, signed_type):
            return unsigned_type if unsigned else plain
    if isinstance(sql_type, mysql.BIT):
        return t.boolean() if (sql_type.length or 1) == 1 else t.binary()
    if isinstance(sql_type, mysql.YEAR):
        return t.int16()
    if isinstance(sql_type, mysql.SET):
        raise UnmappedSqlType(where, _spelled(sql_type, "mysql"), "a set of several symbols")
    if isinstance(sql_type, mysql.ENUM):
        return t.enum(*sql_type.enums)
    if isinstance(sql_type, mysql.TIMESTAMP):
        return t.timestamp("UTC")
    if isinstance(sql_type, mysql.DATETIME):
        return t.timestamp(None)
    if isinstance(sql_type, mysql.DOUBLE):
        return t.float64()
    if isinstance(sql_type, mysql.FLOAT):
        return t.float32()
    return None


_MYSQL_INTEGERS: tuple[tuple[type[TypeEngine[Any]], DataType, DataType], ...] = (
    (mysql.SMALLINT, t.int16(), t.uint16()),
    (mysql.MEDIUMINT, t.int32(), t.uint32()),
    (mysql.INTEGER, t.int32(), t.uint32()),
    (mysql.BIGINT, t.int64(), t.uint64()),
)


def _sqlite(sql_type: TypeEngine[Any], where: str) -> DataType | None:
    # SQLite integers are 64-bit whatever the declared name; REAL is 8 bytes.
    if isinstance(sql_type, sa.Integer):
        return t.int64()
    if isinstance(sql_type, sa.Float):
        return t.float64()
    if isinstance(sql_type, sa.DateTime):
        return t.timestamp(None)
    return None


_DIALECT_MAPPERS = {"postgresql": _postgresql, "mysql": _mysql, "sqlite": _sqlite}


def _generic(sql_type: TypeEngine[Any], dialect: str) -> DataType | None:
    """The mapping SQLAlchemy's generic type hierarchy gives, for every dialect alike."""
    if isinstance(sql_type, sa.Boolean):
        return t.boolean()
    if isinstance(sql_type, sa.SmallInteger):
        return t.int16()
    if isinstance(sql_type, sa.BigInteger):
        return t.int64()
    if isinstance(sql_type, sa.Integer):
        return t.int32()
    if isinstance(sql_type, sa.Float):
        return t.float64() if (sql_type.precision or 53) > 24 else t.float32()
    if isinstance(sql_type, sa.Numeric):
        return _decimal(sql_type)
    if isinstance(sql_type, sa.Uuid):
        return t.uuid()
    if isinstance(sql_type, sa.JSON):
        return t.json()
    if isinstance(sql_type, sa.Enum):
        return t.enum(*sql_type.enums, name=sql_type.name)
    if isinstance(sql_type, sa.String):  # Text, VARCHAR, CHAR, NVARCHAR ...
        return t.string()
    if isinstance(sql_type, sa.LargeBinary | sa.BINARY | sa.VARBINARY):
        return t.binary()
    if isinstance(sql_type, sa.DateTime):
        return t.timestamp("UTC" if sql_type.timezone else None)
    if isinstance(sql_type, sa.Date):
        return t.date()
    if isinstance(sql_type, sa.Time):
        return t.time()
    return None


def _decimal(sql_type: sa.Numeric[Any]) -> DataType:
    if sql_type.precision is None:
        return UNCONSTRAINED_NUMERIC
    return t.decimal(sql_type.precision, sql_type.scale or 0)


def _spelled(sql_type: TypeEngine[Any], dialect: str) -> str:
    """The type as the database spells it (``INTERVAL``, ``SET('a','b')``)."""
    try:
        return str(sql_type.compile(dialect=_dialect_objects()[dialect]))
    except Exception:  # a type the dialect cannot print: its class name says enough
        return type(sql_type).__name__


def _dialect_objects() -> dict[str, sa.Dialect]:
    from sqlalchemy.dialects import sqlite

    return {
        "postgresql": postgresql.dialect(),
        "mysql": mysql.dialect(),
        "sqlite": sqlite.dialect(),
    }


# ---------------------------------------------------------------------------------------
# omconnect -> SQL (DDL types for sinks): the DDL of ``create: true`` and of added columns,
# and whether an existing column can hold a record field (schema evolution: widening is
# fine, anything narrower or of another kind is refused). Types are SQLAlchemy types so each
# dialect compiles its own spelling; MariaDB needs bounded types for key columns (a TEXT or
# BLOB column cannot be a primary key) and LONG types for the others (TEXT and BLOB stop at
# 64 KiB). Arrays, maps and structs are stored as JSON documents.
# ---------------------------------------------------------------------------------------

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


__all__ = [
    "DIALECTS",
    "UNCONSTRAINED_NUMERIC",
    "NoSqlTypeError",
    "UnmappedSqlType",
    "describe",
    "from_sql_type",
    "holds",
    "json_checked_columns",
    "sql_type",
]

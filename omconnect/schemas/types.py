"""The standard type system: every value that moves through omconnect has one of these types.

Types are immutable values compared by structure. Primitive types are singletons built by the
functions at the bottom (``int64()``, ``string()`` ...); parameterised types are small frozen
dataclasses. The mappings to Arrow, Avro and JSON Schema live in their own modules.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Kind(StrEnum):
    """The kind of a type; parameterised kinds have their own class below."""

    BOOLEAN = "boolean"
    INT8 = "int8"
    INT16 = "int16"
    INT32 = "int32"
    INT64 = "int64"
    UINT8 = "uint8"
    UINT16 = "uint16"
    UINT32 = "uint32"
    UINT64 = "uint64"
    FLOAT16 = "float16"
    FLOAT32 = "float32"
    FLOAT64 = "float64"
    STRING = "string"
    BYTES = "bytes"
    DATE = "date"
    TIME = "time"
    TIME_NS = "time_ns"
    NULL = "null"
    UUID = "uuid"
    JSON = "json"
    DECIMAL = "decimal"
    TIMESTAMP = "timestamp"
    ARRAY = "array"
    MAP = "map"
    STRUCT = "struct"
    ENUM = "enum"


@dataclass(frozen=True)
class Primitive:
    """A type without parameters: booleans, signed and unsigned integers, floats (16, 32 and
    64 bits), string, bytes, date, time (``time`` in µs, ``time_ns`` in ns), uuid, json (a
    string holding one JSON document) and null (a column that holds only nulls)."""

    kind: Kind

    def __str__(self) -> str:
        return self.kind.value


TIMESTAMP_UNITS = ("us", "ns")


@dataclass(frozen=True)
class Decimal:
    """An exact decimal number with ``precision`` digits, ``scale`` of them after the point."""

    precision: int
    scale: int
    kind: Kind = field(default=Kind.DECIMAL, init=False)

    def __post_init__(self) -> None:
        if not 1 <= self.precision <= 76:
            raise ValueError(f"decimal precision must be 1..76, got {self.precision}")
        if not 0 <= self.scale <= self.precision:
            raise ValueError(f"decimal scale must be 0..precision, got {self.scale}")

    def __str__(self) -> str:
        return f"decimal({self.precision},{self.scale})"


@dataclass(frozen=True)
class Timestamp:
    """Time since the epoch in ``unit`` (``"us"``, or ``"ns"`` for nanoseconds). ``timezone``
    None means a local (zone-less) timestamp; otherwise the instant is UTC-based and
    ``timezone`` names the zone it is shown in."""

    timezone: str | None = "UTC"
    unit: str = "us"
    kind: Kind = field(default=Kind.TIMESTAMP, init=False)

    def __post_init__(self) -> None:
        if self.unit not in TIMESTAMP_UNITS:
            raise ValueError(f"timestamp unit must be one of {TIMESTAMP_UNITS}, got {self.unit!r}")

    def __str__(self) -> str:
        word = "timestamp" if self.unit == "us" else f"timestamp_{self.unit}"
        return f"{word}({self.timezone})" if self.timezone else word


@dataclass(frozen=True)
class Array:
    """A variable-length list of ``items``."""

    items: DataType
    items_nullable: bool = True
    kind: Kind = field(default=Kind.ARRAY, init=False)

    def __post_init__(self) -> None:
        _null_type_is_nullable(self, "items_nullable", self.items)

    def __str__(self) -> str:
        return f"array<{self.items}>"


@dataclass(frozen=True)
class Map:
    """A map from ``keys`` (string unless said otherwise) to ``values``. Avro and JSON only
    have string keys: maps with other keys travel there as arrays of key/value records."""

    values: DataType
    values_nullable: bool = True
    keys: DataType = Primitive(Kind.STRING)
    kind: Kind = field(default=Kind.MAP, init=False)

    def __post_init__(self) -> None:
        _null_type_is_nullable(self, "values_nullable", self.values)

    def __str__(self) -> str:
        return f"map<{self.keys},{self.values}>"


@dataclass(frozen=True)
class Struct:
    """A nested record of named fields."""

    fields: tuple[Field, ...]
    name: str | None = None
    kind: Kind = field(default=Kind.STRUCT, init=False)

    def __str__(self) -> str:
        return "struct<" + ",".join(f"{f.name}:{f.type}" for f in self.fields) + ">"


@dataclass(frozen=True)
class Enum:
    """One of a fixed list of string ``symbols``."""

    symbols: tuple[str, ...]
    name: str | None = None
    kind: Kind = field(default=Kind.ENUM, init=False)

    def __str__(self) -> str:
        return "enum<" + ",".join(self.symbols) + ">"


DataType = Primitive | Decimal | Timestamp | Array | Map | Struct | Enum


@dataclass(frozen=True)
class Field:
    """A named, typed slot of a schema or struct."""

    name: str
    type: DataType
    nullable: bool = True
    doc: str | None = None

    def __post_init__(self) -> None:
        _null_type_is_nullable(self, "nullable", self.type)


def _null_type_is_nullable(owner: object, attribute: str, dtype: DataType) -> None:
    """A slot of the null type holds nulls whatever it says (Arrow insists on it too)."""
    if dtype == Primitive(Kind.NULL):
        object.__setattr__(owner, attribute, True)


def boolean() -> Primitive:
    return Primitive(Kind.BOOLEAN)


def int8() -> Primitive:
    return Primitive(Kind.INT8)


def int16() -> Primitive:
    return Primitive(Kind.INT16)


def int32() -> Primitive:
    return Primitive(Kind.INT32)


def int64() -> Primitive:
    return Primitive(Kind.INT64)


def uint8() -> Primitive:
    return Primitive(Kind.UINT8)


def uint16() -> Primitive:
    return Primitive(Kind.UINT16)


def uint32() -> Primitive:
    return Primitive(Kind.UINT32)


def uint64() -> Primitive:
    return Primitive(Kind.UINT64)


def float16() -> Primitive:
    return Primitive(Kind.FLOAT16)


def float32() -> Primitive:
    return Primitive(Kind.FLOAT32)


def float64() -> Primitive:
    return Primitive(Kind.FLOAT64)


def string() -> Primitive:
    return Primitive(Kind.STRING)


def binary() -> Primitive:
    return Primitive(Kind.BYTES)


def date() -> Primitive:
    return Primitive(Kind.DATE)


def time() -> Primitive:
    return Primitive(Kind.TIME)


def time_ns() -> Primitive:
    return Primitive(Kind.TIME_NS)


def null() -> Primitive:
    return Primitive(Kind.NULL)


def uuid() -> Primitive:
    return Primitive(Kind.UUID)


def json() -> Primitive:
    return Primitive(Kind.JSON)


def decimal(precision: int, scale: int) -> Decimal:
    return Decimal(precision, scale)


def timestamp(timezone: str | None = "UTC", unit: str = "us") -> Timestamp:
    return Timestamp(timezone, unit)


def array(items: DataType, items_nullable: bool = True) -> Array:
    return Array(items, items_nullable)


def map_of(values: DataType, values_nullable: bool = True, keys: DataType | None = None) -> Map:
    return Map(values, values_nullable, keys if keys is not None else string())


def struct(*fields: Field, name: str | None = None) -> Struct:
    return Struct(tuple(fields), name)


def enum(*symbols: str, name: str | None = None) -> Enum:
    return Enum(tuple(symbols), name)

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
    FLOAT32 = "float32"
    FLOAT64 = "float64"
    STRING = "string"
    BYTES = "bytes"
    DATE = "date"
    TIME = "time"
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
    """A type without parameters: booleans, integers, floats, string, bytes, date, time (µs),
    uuid and json (a string holding one JSON document)."""

    kind: Kind

    def __str__(self) -> str:
        return self.kind.value


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
    """Microseconds since the epoch. ``timezone`` None means a local (zone-less) timestamp;
    otherwise the instant is UTC-based and ``timezone`` names the zone it is shown in."""

    timezone: str | None = "UTC"
    kind: Kind = field(default=Kind.TIMESTAMP, init=False)

    def __str__(self) -> str:
        return f"timestamp({self.timezone})" if self.timezone else "timestamp"


@dataclass(frozen=True)
class Array:
    """A variable-length list of ``items``."""

    items: DataType
    items_nullable: bool = True
    kind: Kind = field(default=Kind.ARRAY, init=False)

    def __str__(self) -> str:
        return f"array<{self.items}>"


@dataclass(frozen=True)
class Map:
    """A map from string keys to ``values`` (string keys are what Avro and JSON allow)."""

    values: DataType
    values_nullable: bool = True
    kind: Kind = field(default=Kind.MAP, init=False)

    def __str__(self) -> str:
        return f"map<string,{self.values}>"


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


def uuid() -> Primitive:
    return Primitive(Kind.UUID)


def json() -> Primitive:
    return Primitive(Kind.JSON)


def decimal(precision: int, scale: int) -> Decimal:
    return Decimal(precision, scale)


def timestamp(timezone: str | None = "UTC") -> Timestamp:
    return Timestamp(timezone)


def array(items: DataType, items_nullable: bool = True) -> Array:
    return Array(items, items_nullable)


def map_of(values: DataType, values_nullable: bool = True) -> Map:
    return Map(values, values_nullable)


def struct(*fields: Field, name: str | None = None) -> Struct:
    return Struct(tuple(fields), name)


def enum(*symbols: str, name: str | None = None) -> Enum:
    return Enum(tuple(symbols), name)

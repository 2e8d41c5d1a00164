"""Type names as users write them in pipeline files, parsed into omconnect types and back.

The grammar follows ``str()`` of the types in ``omconnect.schemas.types``::

    int8 int16 int32 int64 uint8 uint16 uint32 uint64 float16 float32 float64 boolean
    string bytes date time time_ns uuid json null
    decimal(12,2)    timestamp    timestamp(UTC)    timestamp(Europe/Paris)
    timestamp_ns     timestamp_ns(UTC)
    array<int64>     array<string not null>     map<string,float64>     map<int64,string>
    struct<id:int64 not null,name:string>       enum<small,medium,large>

``timestamp`` alone is a local (zone-less) timestamp; ``timestamp(ZONE)`` is an instant shown
in ``ZONE`` (an IANA name, ``UTC`` or an offset like ``+02:00``). ``timestamp`` and ``time``
count microseconds, ``timestamp_ns`` and ``time_ns`` nanoseconds. A map names its key type
first (any type; keys are never null), then its value type. Keywords are read in any case,
and the SQL spellings in ``ALIASES``
(``int``, ``bigint``, ``double``, ``varchar``, ``timestamptz`` ...) are accepted too;
``format_type`` always writes the canonical name. Names of structs and enums and field docs
have no place in the text, so ``parse_type(format_type(t)) == t`` holds for types without
them. This is the one grammar of every option that names a type: the ``cast`` transform's
``fields`` and the ``columns`` of the csv and jsonl sources.
"""

from __future__ import annotations

import difflib
import json
import re
import zoneinfo
from typing import NoReturn

from omconnect.schemas import types as t
from omconnect.schemas.types import DataType, Field, Kind

_PARAMETERISED = {Kind.DECIMAL, Kind.TIMESTAMP, Kind.ARRAY, Kind.MAP, Kind.STRUCT, Kind.ENUM}
_PRIMITIVES: dict[str, Kind] = {k.value: k for k in Kind if k not in _PARAMETERISED}

# Other spellings of the types, each the name of a type in SQL or a common language.
ALIASES: dict[str, DataType] = {
    "bool": t.boolean(),
    "tinyint": t.int8(),
    "smallint": t.int16(),
    "int": t.int32(),
    "integer": t.int32(),
    "bigint": t.int64(),
    "float": t.float32(),
    "real": t.float32(),
    "double": t.float64(),
    "str": t.string(),
    "text": t.string(),
    "varchar": t.string(),
    "binary": t.binary(),
    "bytea": t.binary(),
    "timestamptz": t.timestamp("UTC"),
}

_COMPOSITE = ("decimal", "timestamp", "timestamp_ns", "array", "map", "struct", "enum")
# The word of each timestamp unit, as ``str(t.Timestamp(...))`` writes it.
_TIMESTAMP_WORDS = {"timestamp": "us", "timestamp_ns": "ns"}
# Every word that starts a type: the canonical names, the aliases, the parameterised types.
TYPE_WORDS: tuple[str, ...] = (*_PRIMITIVES, *ALIASES, *_COMPOSITE)
_OFFSET = re.compile(r"[+-]\d{2}:\d{2}")
_DIGITS = re.compile(r"\d+")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NOT_NULL = re.compile(r"\s+not\s+null\b", re.IGNORECASE)


def parse_type(text: str) -> DataType:
    """The omconnect type named by ``text``.

    Raises:
        ValueError: naming the position in ``text`` where it stops making sense.
    """
    parser = _TypeParser(text)
    dtype = parser.parse_type()
    parser.skip_spaces()
    if parser.pos != len(text):
        parser.fail("unexpected text after the type")
    return dtype


def format_type(dtype: DataType) -> str:
    """The canonical text of ``dtype``, which ``parse_type`` reads back."""
    if isinstance(dtype, t.Array):
        return f"array<{format_type(dtype.items)}{_nullability(dtype.items_nullable)}>"
    if isinstance(dtype, t.Map):
        values = f"{format_type(dtype.values)}{_nullability(dtype.values_nullable)}"
        return f"map<{format_type(dtype.keys)},{values}>"
    if isinstance(dtype, t.Struct):
        parts = [
            f"{_format_name(f.name)}:{format_type(f.type)}{_nullability(f.nullable)}"
            for f in dtype.fields
        ]
        return "struct<" + ",".join(parts) + ">"
    if isinstance(dtype, t.Enum):
        return "enum<" + ",".join(_format_name(s) for s in dtype.symbols) + ">"
    return str(dtype)


def _nullability(nullable: bool) -> str:
    return "" if nullable else " not null"


def _format_name(name: str) -> str:
    """A struct field name or enum symbol, quoted as a JSON string when it is not plain."""
    return name if _NAME.fullmatch(name) else json.dumps(name)


class _TypeParser:
    """A recursive-descent parser over one type text; ``pos`` is where it has read to."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def fail(self, message: str, suffix: str = "") -> NoReturn:
        raise ValueError(f"type {self.text!r}: {message} at position {self.pos + 1}{suffix}")

    def skip_spaces(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def expect(self, char: str) -> None:
        self.skip_spaces()
        if not self.text.startswith(char, self.pos):
            self.fail(f"expected {char!r}")
        self.pos += 1

    def accept(self, char: str) -> bool:
        self.skip_spaces()
        if self.text.startswith(char, self.pos):
            self.pos += 1
            return True
        return False

    def name(self) -> str:
        """A plain identifier or a JSON-quoted string."""
        self.skip_spaces()
        if self.text.startswith('"', self.pos):
            decoder = json.JSONDecoder()
            try:
                value, end = decoder.raw_decode(self.text, self.pos)
            except json.JSONDecodeError:
                self.fail("unterminated quoted name")
            self.pos = end
            return str(value)
        match = _NAME.match(self.text, self.pos)
        if match is None:
            self.fail("expected a name")
        self.pos = match.end()
        return match.group()

    def nullable(self) -> bool:
        match = _NOT_NULL.match(self.text, self.pos)
        if match is None:
            return True
        self.pos = match.end()
        return False

    def parse_type(self) -> DataType:
        start = self.pos
        word = self.name().lower()
        if word in _PRIMITIVES:
            return t.Primitive(_PRIMITIVES[word])
        if word in ALIASES:
            return ALIASES[word]
        if word == "decimal":
            return self._decimal()
        if word in _TIMESTAMP_WORDS:
            return self._timestamp(_TIMESTAMP_WORDS[word])
        if word == "array":
            self.expect("<")
            items = self.parse_type()
            items_nullable = self.nullable()
            self.expect(">")
            return t.Array(items, items_nullable)
        if word == "map":
            return self._map()
        if word == "struct":
            return self._struct()
        if word == "enum":
            return self._enum()
        self.pos = start
        close = difflib.get_close_matches(word, TYPE_WORDS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        zoned = ("decimal(p,s)", "timestamp(ZONE)", "timestamp_ns(ZONE)")
        known = ", ".join([*_PRIMITIVES, *zoned, *_COMPOSITE])
        self.fail(f"unknown type {word!r}", f"{hint}; known: {known}")

    def _decimal(self) -> DataType:
        self.expect("(")
        precision = self._integer()
        scale = self._integer() if self.accept(",") else 0
        self.expect(")")
        try:
            return t.Decimal(precision, scale)
        except ValueError as exc:
            self.fail(str(exc))

    def _integer(self) -> int:
        self.skip_spaces()
        match = _DIGITS.match(self.text, self.pos)
        if match is None:
            self.fail("expected a number")
        self.pos = match.end()
        return int(match.group())

    def _timestamp(self, unit: str) -> DataType:
        if not self.accept("("):
            return t.Timestamp(None, unit)
        close = self.text.find(")", self.pos)
        if close < 0:
            self.fail("expected ')'")
        zone = self.text[self.pos : close].strip()
        if zone != "UTC" and not _OFFSET.fullmatch(zone):
            try:
                zoneinfo.ZoneInfo(zone)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                self.fail(f"unknown time zone {zone!r}")
        self.pos = close + 1
        return t.Timestamp(zone, unit)

    def _map(self) -> DataType:
        self.expect("<")
        keys = self.parse_type()
        if not self.nullable():
            self.fail("map keys are never null: write the key type alone")
        self.expect(",")
        values = self.parse_type()
        values_nullable = self.nullable()
        self.expect(">")
        return t.Map(values, values_nullable, keys)

    def _struct(self) -> DataType:
        self.expect("<")
        fields: list[Field] = []
        if not self.accept(">"):
            while True:
                name = self.name()
                self.expect(":")
                dtype = self.parse_type()
                fields.append(Field(name, dtype, self.nullable()))
                if self.accept(">"):
                    break
                self.expect(",")
        return t.Struct(tuple(fields))

    def _enum(self) -> DataType:
        self.expect("<")
        symbols = [self.name()]
        while not self.accept(">"):
            self.expect(",")
            symbols.append(self.name())
        return t.Enum(tuple(symbols))

"""Column type strings of the ``columns`` option: ``"int64"``, ``"decimal(12,2)"`` ...

The names are those of the omconnect type system (``str()`` of a type), plus a few common
spellings. ``timestamp`` is a zone-less timestamp; ``timestamptz`` and ``timestamp(UTC)``
(any zone name in the parentheses) are instants. Every timestamp has microsecond precision.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import pyarrow as pa

from omconnect.schemas import types as t
from omconnect.schemas.arrow import to_arrow_type
from omconnect.schemas.types import DataType

_NAMED_TYPES: dict[str, DataType] = {
    "boolean": t.boolean(),
    "bool": t.boolean(),
    "int8": t.int8(),
    "int16": t.int16(),
    "int32": t.int32(),
    "int": t.int32(),
    "int64": t.int64(),
    "bigint": t.int64(),
    "float32": t.float32(),
    "float": t.float32(),
    "float64": t.float64(),
    "double": t.float64(),
    "string": t.string(),
    "text": t.string(),
    "bytes": t.binary(),
    "binary": t.binary(),
    "date": t.date(),
    "time": t.time(),
    "timestamp": t.timestamp(None),
    "timestamptz": t.timestamp("UTC"),
    "json": t.json(),
}

_DECIMAL = re.compile(r"decimal\(\s*(\d+)\s*,\s*(\d+)\s*\)")
_ZONED_TIMESTAMP = re.compile(r"timestamp\(\s*([^)\s]+)\s*\)")

KNOWN_TYPE_NAMES = ", ".join([*sorted(_NAMED_TYPES), "decimal(p,s)", "timestamp(ZONE)"])


def parse_column_type(text: str) -> DataType:
    """The omconnect type a type string names.

    Raises:
        ValueError: naming the string and the known type names.
    """
    spelled = text.strip().lower()
    named = _NAMED_TYPES.get(spelled)
    if named is not None:
        return named
    decimal = _DECIMAL.fullmatch(spelled)
    if decimal is not None:
        return t.decimal(int(decimal.group(1)), int(decimal.group(2)))
    zoned = _ZONED_TIMESTAMP.fullmatch(text.strip())
    if zoned is not None:
        return t.timestamp(zoned.group(1))
    raise ValueError(f"unknown column type {text!r}; known: {KNOWN_TYPE_NAMES}")


def arrow_column_types(columns: Mapping[str, str]) -> dict[str, pa.DataType]:
    """The Arrow type of every column in a ``columns`` option (validated already)."""
    return {name: to_arrow_type(parse_column_type(text)) for name, text in columns.items()}

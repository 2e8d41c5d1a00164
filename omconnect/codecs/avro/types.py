"""The shape of an Avro schema and the Arrow values it carries: what the column encoders and
decoders dispatch on.

Schemas arrive as the JSON-like dicts that ``fastavro`` takes (``omconnect.schemas.avro`` is
the mapping that writes and reads them). Named references (a type used by name after its
first definition) are expanded first, so every walker sees full definitions; a part of an
expanded schema handed back to fastavro is first made ``named_once`` again, since fastavro
refuses a named type defined twice.

Arrow columns are read as numpy values in Avro's units straight from their buffers
(respecting the array offset), so nothing is copied into Python objects; values under null
slots are whatever the buffer holds, and callers use the validity mask to ignore them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
from fastavro.schema import expand_schema

Mask = npt.NDArray[np.bool_]
I64 = npt.NDArray[np.int64]

AvroType = Any
"""A parsed Avro schema node: a primitive name (``"long"``), a dict, or a list (a union)."""


def expanded(schema: AvroType) -> AvroType:
    """``schema`` with every named reference replaced by its definition."""
    return expand_schema(schema)


def named_once(schema: AvroType) -> AvroType:
    """An expanded ``schema`` (or part of one) with every named type defined at its first
    occurrence and referenced by its full name after, as fastavro's parser wants it."""
    return _named_once(schema, set())


def _named_once(schema: AvroType, seen: set[str]) -> AvroType:
    if isinstance(schema, list):
        return [_named_once(branch, seen) for branch in schema]
    if not isinstance(schema, dict):
        return schema
    kind = schema.get("type")
    if kind in ("record", "enum", "fixed") and "name" in schema:
        name = str(schema["name"])
        if "." not in name and schema.get("namespace"):
            name = f"{schema['namespace']}.{name}"
        if name in seen:
            return name
        seen.add(name)
    out = dict(schema)
    if isinstance(kind, (dict, list)):
        out["type"] = _named_once(kind, seen)
    if kind == "record":
        out["fields"] = [{**f, "type": _named_once(f["type"], seen)} for f in schema["fields"]]
    elif kind == "array":
        out["items"] = _named_once(schema["items"], seen)
    elif kind == "map":
        out["values"] = _named_once(schema["values"], seen)
    return out


def type_name(schema: AvroType) -> str:
    """The Avro type of a node: ``"long"``, ``"record"``, ``"union"`` ..."""
    if isinstance(schema, list):
        return "union"
    if isinstance(schema, dict):
        inner = schema["type"]
        return type_name(inner) if isinstance(inner, (dict, list)) else str(inner)
    return str(schema)


def logical_type(schema: AvroType) -> str | None:
    """The ``logicalType`` of a node, or None."""
    if isinstance(schema, dict):
        value = schema.get("logicalType")
        return str(value) if value is not None else None
    return None


def unwrap(schema: AvroType) -> AvroType:
    """A node whose ``type`` is itself a schema (``{"type": {"type": "record"...}}``) -> inner."""
    while isinstance(schema, dict) and isinstance(schema["type"], (dict, list)):
        schema = schema["type"]
    return schema


def nullable_branches(schema: AvroType) -> tuple[int, int, AvroType] | None:
    """For a two-branch union with ``"null"`` -> (null index, value index, value schema).

    Any other node (including unions of several non-null types) -> None.
    """
    schema = unwrap(schema)
    if not isinstance(schema, list) or len(schema) != 2:
        return None
    names = [type_name(branch) for branch in schema]
    if names.count("null") != 1:
        return None
    null_index = names.index("null")
    value_index = 1 - null_index
    return null_index, value_index, schema[value_index]


def least_size(schema: AvroType) -> int:
    """The fewest bytes a value of ``schema`` takes (0 only for values that never take any:
    ``null``, and records of such fields)."""
    schema = unwrap(schema)
    name = type_name(schema)
    if name == "null":
        return 0
    if name == "record":
        return sum(least_size(f["type"]) for f in schema["fields"])
    if name == "fixed":
        return int(schema["size"])
    return {"float": 4, "double": 8}.get(name, 1)  # varint, length, count or union branch


def record_fields(schema: AvroType) -> list[dict[str, Any]]:
    """The fields of a record node."""
    return list(unwrap(schema)["fields"])


def column_name(field: dict[str, Any]) -> str:
    """The Arrow column (or struct child) name of a record field: the original name kept in
    ``"omconnect.name"`` when the Avro name had to be sanitised."""
    return str(field.get("omconnect.name") or field["name"])


def enum_symbols(schema: AvroType) -> list[str]:
    """An enum's symbols as Arrow holds them (the originals in ``"omconnect.symbols"`` when the
    Avro symbols had to be sanitised); position i is Avro index i."""
    schema = unwrap(schema)
    return [str(s) for s in (schema.get("omconnect.symbols") or schema["symbols"])]


# Units per second of each Arrow time unit, and of the Avro logical types that carry time.
_PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}
AVRO_TIME_UNITS = {
    "timestamp-millis": "ms",
    "timestamp-micros": "us",
    "timestamp-nanos": "ns",
    "local-timestamp-millis": "ms",
    "local-timestamp-micros": "us",
    "local-timestamp-nanos": "ns",
    "time-millis": "ms",
    "time-micros": "us",
}
_MS_PER_DAY = 86_400_000


def storage_of(array: pa.Array) -> pa.Array:
    """The storage array of an extension array, else the array itself."""
    return array.storage if isinstance(array, pa.ExtensionArray) else array


def valid_mask(array: pa.Array) -> Mask | None:
    """True where ``array`` holds a value; None when it has no nulls."""
    if array.null_count == 0:
        return None
    bitmap = array.buffers()[0]
    if bitmap is None:  # null type, or a union: every slot counts as null here
        return np.zeros(len(array), dtype=np.bool_)
    bits = np.unpackbits(np.frombuffer(bitmap, dtype=np.uint8), bitorder="little")
    return bits[array.offset : array.offset + len(array)].astype(np.bool_)


def fixed_width_values(array: pa.Array, dtype: npt.DTypeLike) -> npt.NDArray[np.generic]:
    """The data buffer of a fixed-width primitive array, as numpy values of ``dtype``."""
    array = storage_of(array)
    if pa.types.is_boolean(array.type):
        bits = np.unpackbits(np.frombuffer(array.buffers()[1], dtype=np.uint8), bitorder="little")
        return bits[array.offset : array.offset + len(array)].astype(dtype)
    width = array.type.bit_width // 8
    native = np.dtype(
        f"<{'f' if pa.types.is_floating(array.type) else _int_code(array.type)}{width}"
    )
    raw = np.frombuffer(array.buffers()[1], dtype=native, count=array.offset + len(array))
    return raw[array.offset :].astype(dtype, copy=False)


def _int_code(kind: pa.DataType) -> str:
    return "u" if pa.types.is_unsigned_integer(kind) else "i"


def integer_values(array: pa.Array, logical: str | None) -> I64:
    """An integer-like column as int64 in the units of Avro ``logical`` type.

    Timestamps and times are converted to the logical type's unit (flooring when finer
    units are dropped); dates become days; plain integers are returned as they are.
    """
    kind = array.type
    values = fixed_width_values(array, np.int64).astype(np.int64, copy=False)
    if pa.types.is_date64(kind):
        return np.floor_divide(values, _MS_PER_DAY)
    if pa.types.is_timestamp(kind) or pa.types.is_time(kind):
        target = AVRO_TIME_UNITS.get(logical or "", kind.unit)
        return rescale(values, kind.unit, target)
    return values


def rescale(values: I64, unit: str, target: str) -> I64:
    """Integers counted in ``unit`` -> counted in ``target`` (floor when dropping precision)."""
    source_rate, target_rate = _PER_SECOND[unit], _PER_SECOND[target]
    if source_rate == target_rate:
        return values
    if source_rate < target_rate:
        return values * (target_rate // source_rate)
    return np.floor_divide(values, source_rate // target_rate)


def integer_array(values: I64, kind: pa.DataType, logical: str | None) -> pa.Array:
    """int64 values in Avro ``logical`` units -> an Arrow array of ``kind`` (no nulls).

    The caller has range-checked values for narrow integer kinds.
    """
    if pa.types.is_timestamp(kind) or pa.types.is_time(kind):
        values = rescale(values, AVRO_TIME_UNITS.get(logical or "", kind.unit), kind.unit)
    elif pa.types.is_date64(kind):
        values = values * _MS_PER_DAY
    storage = kind.storage_type if isinstance(kind, pa.BaseExtensionType) else kind
    width = storage.bit_width // 8
    native = values.astype(f"<{_int_code(storage)}{width}")
    array = pa.Array.from_buffers(storage, len(values), [None, pa.py_buffer(native)])
    if isinstance(kind, pa.BaseExtensionType):
        return pa.ExtensionArray.from_storage(kind, array)
    return array


def integer_bounds(kind: pa.DataType) -> tuple[int, int]:
    """The smallest and largest value an Arrow integer-like type holds."""
    storage = kind.storage_type if isinstance(kind, pa.BaseExtensionType) else kind
    bits = storage.bit_width
    if pa.types.is_unsigned_integer(storage):
        return 0, 2**bits - 1
    return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1

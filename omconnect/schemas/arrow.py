"""The exact mapping between omconnect types and Arrow types.

Every omconnect type has one Arrow type, and ``from_arrow_*(to_arrow_*(x)) == x``. What Arrow
cannot say by type alone travels in field metadata: enum symbols (``omconnect.enum``, JSON),
struct and enum names (``omconnect.name``) and field docs (``doc``). Schema name, version,
key fields and doc travel in the Arrow schema metadata (``omconnect.schema``, JSON).

Every Arrow type a Parquet, Avro or CSV file or a database driver produces has an exact
omconnect type: signed and unsigned integers, float16/32/64, timestamps and times in µs and ns,
the null type, maps with any key type. On the way back from Arrow, a few near relatives are
accepted and widened to the omconnect type that holds every value (value-lossless; they come
back as the plain type): large/view strings and binaries, fixed-size binary, date64, time32,
second and millisecond timestamps, large and fixed-size lists, and dictionary-encoded columns
(their value type).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa

from omconnect.schemas import types as t
from omconnect.schemas.schema import Schema
from omconnect.schemas.types import DataType, Field, Kind

ENUM_KEY = b"omconnect.enum"
NAME_KEY = b"omconnect.name"
DOC_KEY = b"doc"
SCHEMA_KEY = b"omconnect.schema"

_DECIMAL128_MAX_PRECISION = 38

_PRIMITIVE_TO_ARROW: dict[Kind, pa.DataType] = {
    Kind.BOOLEAN: pa.bool_(),
    Kind.INT8: pa.int8(),
    Kind.INT16: pa.int16(),
    Kind.INT32: pa.int32(),
    Kind.INT64: pa.int64(),
    Kind.UINT8: pa.uint8(),
    Kind.UINT16: pa.uint16(),
    Kind.UINT32: pa.uint32(),
    Kind.UINT64: pa.uint64(),
    Kind.FLOAT16: pa.float16(),
    Kind.FLOAT32: pa.float32(),
    Kind.FLOAT64: pa.float64(),
    Kind.STRING: pa.string(),
    Kind.BYTES: pa.binary(),
    Kind.DATE: pa.date32(),
    Kind.TIME: pa.time64("us"),
    Kind.TIME_NS: pa.time64("ns"),
    Kind.NULL: pa.null(),
    Kind.UUID: pa.uuid(),
    Kind.JSON: pa.json_(),
}

# Exact Arrow types first, then the relatives that widen losslessly into an omconnect type.
_ARROW_TO_PRIMITIVE: dict[pa.DataType, Kind] = {
    **{arrow: kind for kind, arrow in _PRIMITIVE_TO_ARROW.items()},
    pa.time32("s"): Kind.TIME,
    pa.time32("ms"): Kind.TIME,
    pa.large_string(): Kind.STRING,
    pa.string_view(): Kind.STRING,
    pa.large_binary(): Kind.BYTES,
    pa.binary_view(): Kind.BYTES,
    pa.date64(): Kind.DATE,
}


def to_arrow_type(dtype: DataType) -> pa.DataType:
    """The Arrow type of ``dtype``.

    Enum symbols and struct/enum names are not part of an Arrow type: use ``to_arrow_field``
    to keep them (nested fields of structs, lists and maps keep theirs).

    Raises:
        TypeError: for a map whose key is not a string (cannot happen with ``Map``) or an
            unknown type object.
    """
    if isinstance(dtype, t.Primitive):
        return _PRIMITIVE_TO_ARROW[dtype.kind]
    if isinstance(dtype, t.Decimal):
        if dtype.precision <= _DECIMAL128_MAX_PRECISION:
            return pa.decimal128(dtype.precision, dtype.scale)
        return pa.decimal256(dtype.precision, dtype.scale)
    if isinstance(dtype, t.Timestamp):
        return pa.timestamp(dtype.unit, dtype.timezone)
    if isinstance(dtype, t.Array):
        return pa.list_(_child_field("item", dtype.items, dtype.items_nullable))
    if isinstance(dtype, t.Map):
        keys = _child_field("key", dtype.keys, False)
        return pa.map_(keys, _child_field("value", dtype.values, dtype.values_nullable))
    if isinstance(dtype, t.Struct):
        return pa.struct([to_arrow_field(f) for f in dtype.fields])
    if isinstance(dtype, t.Enum):
        return pa.dictionary(pa.int32(), pa.string())
    raise TypeError(f"not an omconnect type: {dtype!r}")


def to_arrow_field(f: Field) -> pa.Field:
    """The Arrow field of ``f``, with enum symbols, type names and doc in its metadata.

    A field of the null type is always nullable (Arrow allows nothing else)."""
    metadata = _type_metadata(f.type)
    if f.doc is not None:
        metadata[DOC_KEY] = f.doc.encode()
    return pa.field(f.name, to_arrow_type(f.type), _nullable(f.type, f.nullable), metadata or None)


def from_arrow_type(arrow: pa.DataType) -> DataType:
    """The omconnect type of an Arrow type; dictionaries become their value type.

    Raises:
        TypeError: naming the Arrow type when omconnect has no type that holds its values.
    """
    return _from_arrow(arrow, {})


def from_arrow_field(f: pa.Field) -> Field:
    """The omconnect field of an Arrow field, reading the metadata ``to_arrow_field`` wrote."""
    metadata = f.metadata or {}
    doc = metadata.get(DOC_KEY)
    return Field(
        name=f.name,
        type=_from_arrow(f.type, metadata),
        nullable=f.nullable,
        doc=doc.decode() if doc is not None else None,
    )


def to_arrow_schema(s: Schema) -> pa.Schema:
    """The Arrow schema of ``s``; name, version, key fields and doc go in its metadata."""
    header = {"name": s.name, "version": s.version, "key_fields": list(s.key_fields)}
    if s.doc is not None:
        header["doc"] = s.doc
    return pa.schema(
        [to_arrow_field(f) for f in s.fields], metadata={SCHEMA_KEY: json.dumps(header)}
    )


def from_arrow_schema(s: pa.Schema, name: str, key_fields: Sequence[str] = ()) -> Schema:
    """The omconnect schema of an Arrow schema.

    Args:
        s: the Arrow schema.
        name: the schema name when ``s`` carries no omconnect metadata.
        key_fields: the key fields when ``s`` carries no omconnect metadata.

    The metadata written by ``to_arrow_schema`` wins over ``name`` and ``key_fields``, so a
    schema read back is the schema that was written.
    """
    fields = tuple(from_arrow_field(f) for f in s)
    raw = (s.metadata or {}).get(SCHEMA_KEY)
    if raw is None:
        return Schema(name=name, fields=fields, key_fields=tuple(key_fields))
    header = json.loads(raw)
    return Schema(
        name=header["name"],
        fields=fields,
        version=int(header.get("version", 1)),
        key_fields=tuple(header.get("key_fields", ())),
        doc=header.get("doc"),
    )


def _child_field(name: str, dtype: DataType, nullable: bool) -> pa.Field:
    metadata = _type_metadata(dtype)
    return pa.field(name, to_arrow_type(dtype), _nullable(dtype, nullable), metadata or None)


def _nullable(dtype: DataType, nullable: bool) -> bool:
    return nullable or dtype == t.null()


def _type_metadata(dtype: DataType) -> dict[bytes, bytes]:
    """What the Arrow type of ``dtype`` cannot hold, for the metadata of the field holding it."""
    metadata: dict[bytes, bytes] = {}
    if isinstance(dtype, t.Enum):
        metadata[ENUM_KEY] = json.dumps(list(dtype.symbols)).encode()
    if isinstance(dtype, t.Struct | t.Enum) and dtype.name is not None:
        metadata[NAME_KEY] = dtype.name.encode()
    return metadata


def _from_arrow(arrow: pa.DataType, metadata: Mapping[bytes, bytes]) -> DataType:
    """The omconnect type of ``arrow``, held by a field with ``metadata``."""
    kind = _ARROW_TO_PRIMITIVE.get(arrow)
    if kind is not None:
        return t.Primitive(kind)
    name_raw = metadata.get(NAME_KEY)
    name = name_raw.decode() if name_raw is not None else None
    if pa.types.is_dictionary(arrow):
        symbols = metadata.get(ENUM_KEY)
        if symbols is not None:
            return t.Enum(tuple(json.loads(symbols)), name)
        return _from_arrow(arrow.value_type, {})
    return _from_arrow_parameterised(arrow, name)


def _from_arrow_parameterised(arrow: pa.DataType, name: str | None) -> DataType:
    if pa.types.is_struct(arrow):
        fields = tuple(from_arrow_field(arrow.field(i)) for i in range(arrow.num_fields))
        return t.Struct(fields, name)
    if pa.types.is_decimal(arrow):
        return t.Decimal(arrow.precision, arrow.scale)
    if pa.types.is_timestamp(arrow):
        return t.Timestamp(arrow.tz, "ns" if arrow.unit == "ns" else "us")
    if pa.types.is_fixed_size_binary(arrow):
        return t.binary()
    if (
        pa.types.is_list(arrow)
        or pa.types.is_large_list(arrow)
        or pa.types.is_fixed_size_list(arrow)
        or pa.types.is_list_view(arrow)
        or pa.types.is_large_list_view(arrow)
    ):
        item = from_arrow_field(arrow.value_field)
        return t.Array(item.type, item.nullable)
    if pa.types.is_map(arrow):
        value = from_arrow_field(arrow.item_field)
        return t.Map(value.type, value.nullable, from_arrow_field(arrow.key_field).type)
    raise TypeError(f"Arrow type {arrow} has no omconnect type")


def rows_to_arrow(rows: list[dict[str, Any]], schema: Schema) -> pa.RecordBatch:
    """``rows`` as an Arrow batch of ``schema``.

    pyarrow cannot convert Python values nested inside lists, maps or structs into extension
    types (uuid, json), so the rows are converted to the storage types first, then wrapped.
    """
    target = to_arrow_schema(schema)
    storage = pa.schema([f.with_type(_storage_type(f.type)) for f in target])
    batch = pa.RecordBatch.from_pylist(rows, schema=storage)
    columns = [
        _from_storage(column, f.type) for column, f in zip(batch.columns, target, strict=True)
    ]
    return pa.RecordBatch.from_arrays(columns, schema=target)


def _from_storage(array: pa.Array, kind: pa.DataType) -> pa.Array:
    """An array built with ``_storage_type(kind)`` as an array of ``kind``: extension arrays
    wrapped around their storage, lists, maps and structs rebuilt around their converted
    children. (pyarrow's ``cast`` would do it, but builds invalid arrays when the null type
    sits inside a list of structs.)"""
    if array.type == kind:
        return array
    if isinstance(kind, pa.BaseExtensionType):
        return pa.ExtensionArray.from_storage(kind, array)
    mask = array.is_null() if array.null_count else None
    if pa.types.is_list(kind):
        values = _from_storage(array.values, kind.value_type)
        return pa.ListArray.from_arrays(array.offsets, values, type=kind, mask=mask)
    if pa.types.is_map(kind):
        keys = _from_storage(array.keys, kind.key_type)
        items = _from_storage(array.items, kind.item_type)
        return pa.MapArray.from_arrays(array.offsets, keys, items, type=kind, mask=mask)
    if pa.types.is_struct(kind):
        children = [_from_storage(array.field(i), kind.field(i).type) for i in range(len(kind))]
        return pa.StructArray.from_arrays(children, fields=list(kind), mask=mask)
    return array.cast(kind)


def _storage_type(arrow: pa.DataType) -> pa.DataType:
    if isinstance(arrow, pa.BaseExtensionType):
        return arrow.storage_type
    if pa.types.is_dictionary(arrow):
        return arrow.value_type
    if pa.types.is_list(arrow):
        return pa.list_(arrow.value_field.with_type(_storage_type(arrow.value_type)))
    if pa.types.is_map(arrow):
        key, item = arrow.key_field, arrow.item_field
        return pa.map_(
            key.with_type(_storage_type(key.type)), item.with_type(_storage_type(item.type))
        )
    if pa.types.is_struct(arrow):
        return pa.struct([f.with_type(_storage_type(f.type)) for f in arrow])
    return arrow

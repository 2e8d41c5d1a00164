"""Avro container-file schemas to and from Arrow schemas, for the ``avro`` source and sink.

Only what container files need: nullable fields are ``["null", T]`` unions, decimals are
``bytes`` with the decimal logical type, timestamps are ``timestamp-micros`` (zoned) or
``local-timestamp-micros``, uuids are strings, enums and fixed read as strings and bytes.
Other unions have no Arrow column type and are refused with the field's name.
"""

from __future__ import annotations

import itertools
from typing import Any

import pyarrow as pa

AvroSchema = Any

_PRIMITIVE_TO_ARROW: dict[str, pa.DataType] = {
    "boolean": pa.bool_(),
    "int": pa.int32(),
    "long": pa.int64(),
    "float": pa.float32(),
    "double": pa.float64(),
    "string": pa.string(),
    "bytes": pa.binary(),
}

_LOGICAL_TO_ARROW: dict[str, pa.DataType] = {
    "date": pa.date32(),
    "time-millis": pa.time64("us"),
    "time-micros": pa.time64("us"),
    "timestamp-millis": pa.timestamp("us", "UTC"),
    "timestamp-micros": pa.timestamp("us", "UTC"),
    "local-timestamp-millis": pa.timestamp("us"),
    "local-timestamp-micros": pa.timestamp("us"),
    "uuid": pa.string(),
}


def arrow_schema_of_avro(record: dict[str, Any]) -> pa.Schema:
    """The Arrow schema of an Avro record schema (a parsed writer schema).

    Raises:
        TypeError: naming the field whose Avro type has no Arrow column type.
    """
    return pa.schema([_arrow_field(f["name"], f["type"]) for f in record["fields"]])


def without_uuid_logical_type(schema: AvroSchema) -> AvroSchema:
    """``schema`` with uuid strings read as plain strings (fastavro would build UUID objects)."""
    if isinstance(schema, list):
        return [without_uuid_logical_type(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    if schema.get("logicalType") == "uuid":
        return {k: v for k, v in schema.items() if k != "logicalType"}
    copied = dict(schema)
    if "fields" in copied:
        copied["fields"] = [
            {**f, "type": without_uuid_logical_type(f["type"])} for f in copied["fields"]
        ]
    for nested in ("items", "values"):
        if nested in copied:
            copied[nested] = without_uuid_logical_type(copied[nested])
    return copied


def _arrow_field(name: str, avro: AvroSchema) -> pa.Field:
    nullable = False
    if isinstance(avro, list):
        branches = [b for b in avro if b != "null"]
        if len(branches) != 1:
            raise TypeError(f"field {name!r}: the union {avro} has no Arrow column type")
        nullable = len(branches) < len(avro)
        avro = branches[0]
    return pa.field(name, _arrow_type(name, avro), nullable)


def _arrow_type(name: str, avro: AvroSchema) -> pa.DataType:
    if isinstance(avro, str):
        if avro in _PRIMITIVE_TO_ARROW:
            return _PRIMITIVE_TO_ARROW[avro]
        raise TypeError(f"field {name!r}: unknown Avro type {avro!r}")
    logical = avro.get("logicalType")
    if logical == "decimal":
        precision, scale = int(avro["precision"]), int(avro.get("scale", 0))
        return (
            pa.decimal128(precision, scale) if precision <= 38 else pa.decimal256(precision, scale)
        )
    if logical in _LOGICAL_TO_ARROW:
        return _LOGICAL_TO_ARROW[logical]
    kind = avro["type"]
    if kind == "record":
        return pa.struct([_arrow_field(f["name"], f["type"]) for f in avro["fields"]])
    if kind == "array":
        return pa.list_(_arrow_field("item", avro["items"]))
    if kind == "map":
        return pa.map_(pa.string(), _arrow_field("value", avro["values"]))
    if kind == "enum":
        return pa.string()
    if kind == "fixed":
        return pa.binary()
    return _arrow_type(name, kind)


def avro_schema_of_arrow(schema: pa.Schema, name: str) -> dict[str, Any]:
    """An Avro record schema named ``name`` for rows of ``schema``.

    Raises:
        TypeError: naming the column whose Arrow type has no Avro type.
    """
    counter = itertools.count(1)
    return {
        "type": "record",
        "name": name,
        "fields": [_avro_field(f, name, counter) for f in schema],
    }


def _avro_field(f: pa.Field, owner: str, counter: itertools.count[int]) -> dict[str, Any]:
    avro = _avro_type(f.name, f.type, owner, counter)
    if f.nullable:
        return {"name": f.name, "type": ["null", avro], "default": None}
    return {"name": f.name, "type": avro}


def _avro_type(
    name: str, arrow: pa.DataType, owner: str, counter: itertools.count[int]
) -> AvroSchema:
    if pa.types.is_dictionary(arrow):
        return _avro_type(name, arrow.value_type, owner, counter)
    if isinstance(arrow, pa.UuidType):
        return {"type": "string", "logicalType": "uuid"}
    if isinstance(arrow, pa.JsonType):
        return "string"
    for avro_name, arrow_type in _PRIMITIVE_TO_ARROW.items():
        if arrow == arrow_type:
            return avro_name
    if pa.types.is_int8(arrow) or pa.types.is_int16(arrow):
        return "int"
    if pa.types.is_large_string(arrow) or pa.types.is_string_view(arrow):
        return "string"
    if pa.types.is_large_binary(arrow) or pa.types.is_fixed_size_binary(arrow):
        return "bytes"
    if pa.types.is_decimal(arrow):
        return {
            "type": "bytes",
            "logicalType": "decimal",
            "precision": arrow.precision,
            "scale": arrow.scale,
        }
    if pa.types.is_date(arrow):
        return {"type": "int", "logicalType": "date"}
    if pa.types.is_time(arrow):
        return {"type": "long", "logicalType": "time-micros"}
    if pa.types.is_timestamp(arrow):
        logical = "timestamp-micros" if arrow.tz is not None else "local-timestamp-micros"
        return {"type": "long", "logicalType": logical}
    if pa.types.is_list(arrow) or pa.types.is_large_list(arrow):
        return {"type": "array", "items": _nested(arrow.value_field, owner, counter)}
    if pa.types.is_map(arrow):
        return {"type": "map", "values": _nested(arrow.item_field, owner, counter)}
    if pa.types.is_struct(arrow):
        record = f"{owner}_{name}_{next(counter)}"
        fields = [_avro_field(arrow.field(i), record, counter) for i in range(arrow.num_fields)]
        return {"type": "record", "name": record, "fields": fields}
    raise TypeError(f"column {name!r}: Arrow type {arrow} has no Avro type")


def _nested(f: pa.Field, owner: str, counter: itertools.count[int]) -> AvroSchema:
    avro = _avro_type(f.name, f.type, owner, counter)
    return ["null", avro] if f.nullable else avro

"""Reading the shape of an Avro schema: what the column encoders and decoders dispatch on.

Schemas arrive as the JSON-like dicts that ``fastavro`` takes. Named references (a type used
by name after its first definition) are expanded first, so every walker sees full definitions;
a part of an expanded schema handed back to fastavro is first made ``named_once`` again, since
fastavro refuses a named type defined twice.
"""

from __future__ import annotations

from typing import Any

from fastavro.schema import expand_schema

AvroType = Any
"""A parsed Avro schema node: a primitive name (``"long"``), a dict, or a list (a union)."""

_CONTAINER_TYPES = frozenset({"array", "map"})


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


def has_container(schema: AvroType) -> bool:
    """True when an array, a map or a general union sits anywhere inside ``schema``.

    Those need a per-row path: their byte layout depends on per-row counts.
    """
    schema = unwrap(schema)
    name = type_name(schema)
    if name in _CONTAINER_TYPES:
        return True
    if name == "union":
        branches = nullable_branches(schema)
        return branches is None or has_container(branches[2])
    if name == "record":
        return any(has_container(f["type"]) for f in schema["fields"])
    return False


def record_fields(schema: AvroType) -> list[dict[str, Any]]:
    """The fields of a record node."""
    return list(unwrap(schema)["fields"])


def zigzag_of_index(index: int) -> int:
    """The single varint byte that encodes a small union or enum index."""
    return (index << 1) ^ (index >> 63)


def column_name(field: dict[str, Any]) -> str:
    """The Arrow column (or struct child) name of a record field: the original name kept in
    ``"omconnect.name"`` when the Avro name had to be sanitised."""
    return str(field.get("omconnect.name") or field["name"])


def enum_symbols(schema: AvroType) -> list[str]:
    """An enum's symbols as Arrow holds them (the originals in ``"omconnect.symbols"`` when the
    Avro symbols had to be sanitised); position i is Avro index i."""
    schema = unwrap(schema)
    return [str(s) for s in (schema.get("omconnect.symbols") or schema["symbols"])]

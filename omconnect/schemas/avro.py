"""The exact mapping between omconnect schemas and Avro schemas (as fastavro reads them).

``to_avro_schema`` writes a record schema that ``fastavro.parse_schema`` accepts and that a
vectorised encoder can follow without fastavro; ``from_avro_schema(to_avro_schema(s)) == s``.
The rules (a contract with the Avro converter):

- Names (records, enums, fields, enum symbols) are sanitised to ``[A-Za-z_][A-Za-z0-9_]*`` by
  replacing other characters with ``_``, then made unique by appending ``_2``, ``_3`` ...
  (record and enum names across the whole schema, field names within their record, symbols
  within their enum). When a name differs from the original, the original is kept beside it:
  ``"omconnect.name"`` on records, enums and fields, ``"omconnect.symbols"`` on enums. A struct
  or enum without a name is named ``<parent record name>_<field name>`` and carries
  ``"omconnect.name": null``.
- Namespaces: the top record is named after the last dotted part of the schema name
  (``db.orders`` -> ``orders``, with ``"omconnect.name": "db.orders"``); its namespace is the
  one asked for, else the dotted prefix of the schema name (``db``), else none. Every record
  and enum is written with that ``"namespace"`` (each dotted part sanitised as a name).
- A struct or enum type that occurs more than once (the ``before`` and ``after`` of a change
  event envelope) is defined where it first occurs, in field order, and referenced by its full
  name (``"db.Value"``) everywhere after.
- The top record carries ``"omconnect.version"``, ``"omconnect.key"`` (original key field
  names, when there are key fields) and ``"doc"`` (when set).
- A nullable field is ``["null", T]`` with ``"default": null``; nullable array items and map
  values are ``["null", T]``.
- int8/int16 are ``int`` with ``"omconnect.type"``; int32 ``int``; int64 ``long``; float32
  ``float``; float64 ``double``; date ``int``/date; time ``long``/time-micros; timestamp with a
  zone ``long``/timestamp-micros (plus ``"omconnect.timezone"`` unless the zone is UTC);
  timestamp without a zone ``long``/local-timestamp-micros (``-nanos`` for ns timestamps);
  decimal ``bytes``/decimal; uuid ``string``/uuid; json ``string`` with
  ``"omconnect.type": "json"``.
- Types Avro has no logical type for follow a convention that other readers read as the
  right values and omconnect reads back exactly, marked by ``"omconnect.type"``: uint8 and
  uint16 ``int``, uint32 ``long``, uint64 ``bytes``/decimal(20,0), float16 ``float``,
  time_ns ``long`` (nanoseconds since midnight). The null type is ``"null"`` (never in a
  union). A map whose keys are not strings is an ``array`` of ``<name>_entry`` records
  (``key``, ``value``) with ``"omconnect.type": "map"``.

``from_avro_schema`` also reads Avro written by others: unions with null in either order,
``fixed``, millisecond logical types, named-type references, and non-record schemas (read as
a one-field schema named ``value``).
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from omconnect.schemas import types as t
from omconnect.schemas.schema import Schema
from omconnect.schemas.types import DataType, Field, Kind

_INVALID_FIRST = re.compile(r"^[^A-Za-z_]")
_INVALID_REST = re.compile(r"[^A-Za-z0-9_]")

_PRIMITIVE_TO_AVRO: dict[Kind, Any] = {
    Kind.BOOLEAN: "boolean",
    Kind.INT8: {"type": "int", "omconnect.type": "int8"},
    Kind.INT16: {"type": "int", "omconnect.type": "int16"},
    Kind.INT32: "int",
    Kind.INT64: "long",
    Kind.UINT8: {"type": "int", "omconnect.type": "uint8"},
    Kind.UINT16: {"type": "int", "omconnect.type": "uint16"},
    Kind.UINT32: {"type": "long", "omconnect.type": "uint32"},
    Kind.UINT64: {
        "type": "bytes",
        "logicalType": "decimal",
        "precision": 20,
        "scale": 0,
        "omconnect.type": "uint64",
    },
    Kind.FLOAT16: {"type": "float", "omconnect.type": "float16"},
    Kind.FLOAT32: "float",
    Kind.FLOAT64: "double",
    Kind.STRING: "string",
    Kind.BYTES: "bytes",
    Kind.DATE: {"type": "int", "logicalType": "date"},
    Kind.TIME: {"type": "long", "logicalType": "time-micros"},
    Kind.TIME_NS: {"type": "long", "omconnect.type": "time_ns"},
    Kind.NULL: "null",
    Kind.UUID: {"type": "string", "logicalType": "uuid"},
    Kind.JSON: {"type": "string", "omconnect.type": "json"},
}


def avro_name(name: str) -> str:
    """``name`` sanitised to an Avro name (before it is made unique)."""
    return _INVALID_REST.sub("_", _INVALID_FIRST.sub("_", name)) or "_"


class _UniqueNames:
    """Hands out sanitised names, each at most once."""

    def __init__(self) -> None:
        self._taken: set[str] = set()

    def claim(self, name: str) -> str:
        base = avro_name(name)
        candidate, n = base, 1
        while candidate in self._taken:
            n += 1
            candidate = f"{base}_{n}"
        self._taken.add(candidate)
        return candidate


def to_avro_schema(s: Schema, namespace: str | None = None) -> dict[str, Any]:
    """The Avro record schema of ``s`` (a dict for ``fastavro.parse_schema``).

    Args:
        s: the schema.
        namespace: the Avro namespace of the record and of every named type in it; by
            default the dotted prefix of ``s.name`` (none when the name has no dot).
    """
    prefix, _, last = s.name.rpartition(".")
    space = _avro_namespace(namespace if namespace is not None else prefix)
    names = _AvroNames(space)
    record = _record(names.claim(last), s.name, s.fields, names)
    if s.doc is not None:
        record["doc"] = s.doc
    record["omconnect.version"] = s.version
    if s.key_fields:
        record["omconnect.key"] = list(s.key_fields)
    return record


def _avro_namespace(namespace: str) -> str | None:
    """``namespace`` with each dotted part sanitised; None for no namespace."""
    return ".".join(avro_name(part) for part in namespace.split(".")) if namespace else None


class _AvroNames(_UniqueNames):
    """The named types of one Avro schema: unique names in one namespace, and the types
    already defined (referenced by full name when they occur again)."""

    def __init__(self, namespace: str | None) -> None:
        super().__init__()
        self.namespace = namespace
        self._defined: dict[DataType, str] = {}

    def full_name(self, name: str) -> str:
        return f"{self.namespace}.{name}" if self.namespace else name

    def defined(self, dtype: DataType) -> str | None:
        """The full name of ``dtype`` when it is already defined in this schema."""
        return self._defined.get(dtype)

    def define(self, dtype: DataType, name: str) -> None:
        self._defined.setdefault(dtype, self.full_name(name))

    def named(self, kind: str, name: str) -> dict[str, Any]:
        """The start of a named type's definition: type, name and namespace."""
        node: dict[str, Any] = {"type": kind, "name": name}
        if self.namespace:
            node["namespace"] = self.namespace
        return node


def _record(
    avro: str, original: str | None, fields: Iterable[Field], type_names: _AvroNames
) -> dict[str, Any]:
    record = type_names.named("record", avro)
    if original != avro:
        record["omconnect.name"] = original
    field_names = _UniqueNames()
    entries = []
    for f in fields:
        name = field_names.claim(f.name)
        entry: dict[str, Any] = {"name": name}
        if name != f.name:
            entry["omconnect.name"] = f.name
        if f.doc is not None:
            entry["doc"] = f.doc
        avro_type = _avro_type(f.type, f"{avro}_{name}", type_names)
        if f.nullable:
            entry["type"] = _or_null(avro_type, f.type)
            entry["default"] = None
        else:
            entry["type"] = avro_type
        entries.append(entry)
    record["fields"] = entries
    return record


def _avro_type(dtype: DataType, default_name: str, type_names: _AvroNames) -> Any:
    """The Avro type of ``dtype``; ``default_name`` names it if it is an unnamed struct/enum."""
    if isinstance(dtype, t.Primitive):
        avro = _PRIMITIVE_TO_AVRO[dtype.kind]
        return dict(avro) if isinstance(avro, dict) else avro
    if isinstance(dtype, t.Decimal):
        return {
            "type": "bytes",
            "logicalType": "decimal",
            "precision": dtype.precision,
            "scale": dtype.scale,
        }
    if isinstance(dtype, t.Timestamp):
        unit = "nanos" if dtype.unit == "ns" else "micros"
        if dtype.timezone is None:
            return {"type": "long", "logicalType": f"local-timestamp-{unit}"}
        stamp: dict[str, Any] = {"type": "long", "logicalType": f"timestamp-{unit}"}
        if dtype.timezone != "UTC":
            stamp["omconnect.timezone"] = dtype.timezone
        return stamp
    if isinstance(dtype, t.Array):
        items = _avro_type(dtype.items, default_name, type_names)
        return {
            "type": "array",
            "items": _or_null(items, dtype.items) if dtype.items_nullable else items,
        }
    if isinstance(dtype, t.Map):
        values = _avro_type(dtype.values, default_name, type_names)
        values = _or_null(values, dtype.values) if dtype.values_nullable else values
        if dtype.keys == t.string():
            return {"type": "map", "values": values}
        return _map_entries(dtype, values, default_name, type_names)
    if isinstance(dtype, (t.Struct, t.Enum)):
        reference = type_names.defined(dtype)
        if reference is not None:
            return reference
    if isinstance(dtype, t.Struct):
        name = type_names.claim(dtype.name if dtype.name is not None else default_name)
        # Registered before its fields are written: fields come first in Avro's order, but a
        # struct cannot contain itself, so nothing inside can refer to it.
        type_names.define(dtype, name)
        return _record(name, dtype.name, dtype.fields, type_names)
    if isinstance(dtype, t.Enum):
        return _enum(dtype, default_name, type_names)
    raise TypeError(f"not an omconnect type: {dtype!r}")


def _or_null(avro: Any, dtype: DataType) -> Any:
    """``avro`` admitting null: a union with ``"null"``, except for the null type itself."""
    return avro if dtype == t.null() else ["null", avro]


def _map_entries(dtype: t.Map, values: Any, default_name: str, type_names: _AvroNames) -> Any:
    """A map with keys that are not strings: an array of key/value records."""
    name = type_names.claim(f"{default_name}_entry")
    entry = type_names.named("record", name)
    entry["fields"] = [
        {"name": "key", "type": _avro_type(dtype.keys, f"{name}_key", type_names)},
        {"name": "value", "type": values},
    ]
    return {"type": "array", "items": entry, "omconnect.type": "map"}


def _enum(dtype: t.Enum, default_name: str, type_names: _AvroNames) -> dict[str, Any]:
    name = type_names.claim(dtype.name if dtype.name is not None else default_name)
    type_names.define(dtype, name)
    enum = type_names.named("enum", name)
    if dtype.name != name:
        enum["omconnect.name"] = dtype.name
    symbol_names = _UniqueNames()
    symbols = [symbol_names.claim(symbol) for symbol in dtype.symbols]
    enum["symbols"] = symbols
    if symbols != list(dtype.symbols):
        enum["omconnect.symbols"] = list(dtype.symbols)
    return enum


def from_avro_schema(avro: Mapping[str, Any] | str | list[Any]) -> Schema:
    """The omconnect schema of an Avro schema (a dict, a union list or JSON text).

    A record becomes a schema of its fields; any other Avro type becomes a schema named
    ``value`` with one field ``value``.

    Raises:
        TypeError: for Avro types omconnect cannot hold (unions of several non-null types,
            recursive records, unknown names).
    """
    if isinstance(avro, str):
        # Not JSON text: a bare type name such as long.
        with contextlib.suppress(json.JSONDecodeError):
            avro = json.loads(avro)
    reader = _AvroReader()
    if isinstance(avro, Mapping) and avro.get("type") == "record":
        struct = reader.record(avro, namespace=None)
        return Schema(
            name=struct.name if struct.name is not None else _short_name(avro["name"]),
            fields=struct.fields,
            version=int(avro.get("omconnect.version", 1)),
            key_fields=tuple(avro.get("omconnect.key", ())),
            doc=avro.get("doc"),
        )
    dtype, nullable = reader.union(avro, namespace=None)
    return Schema(name="value", fields=(Field("value", dtype, nullable),))


_AVRO_PRIMITIVES: dict[str, DataType] = {
    "boolean": t.boolean(),
    "int": t.int32(),
    "long": t.int64(),
    "float": t.float32(),
    "double": t.float64(),
    "string": t.string(),
    "bytes": t.binary(),
    "null": t.null(),
}

_LOGICAL_TYPES: dict[tuple[str, str], DataType] = {
    ("int", "date"): t.date(),
    ("int", "time-millis"): t.time(),
    ("long", "time-micros"): t.time(),
    ("long", "timestamp-millis"): t.timestamp("UTC"),
    ("long", "timestamp-micros"): t.timestamp("UTC"),
    ("long", "timestamp-nanos"): t.timestamp("UTC", "ns"),
    ("long", "local-timestamp-millis"): t.timestamp(None),
    ("long", "local-timestamp-micros"): t.timestamp(None),
    ("long", "local-timestamp-nanos"): t.timestamp(None, "ns"),
    ("string", "uuid"): t.uuid(),
    ("fixed", "uuid"): t.uuid(),
}

_ZONED_UNITS = {"timestamp-micros": "us", "timestamp-nanos": "ns"}

_ANNOTATED_TYPES: dict[tuple[str, str], DataType] = {
    ("int", "int8"): t.int8(),
    ("int", "int16"): t.int16(),
    ("int", "uint8"): t.uint8(),
    ("int", "uint16"): t.uint16(),
    ("long", "uint32"): t.uint32(),
    ("bytes", "uint64"): t.uint64(),
    ("fixed", "uint64"): t.uint64(),
    ("float", "float16"): t.float16(),
    ("long", "time_ns"): t.time_ns(),
    ("string", "json"): t.json(),
}


class _AvroReader:
    """Reads one Avro schema, remembering named types for later references."""

    def __init__(self) -> None:
        self._named: dict[str, DataType] = {}

    def union(self, avro: Any, namespace: str | None) -> tuple[DataType, bool]:
        """The type of ``avro`` and whether it admits null (a union with ``"null"``)."""
        if not isinstance(avro, list):
            dtype = self.type(avro, namespace)
            return dtype, dtype == t.null()
        branches = [b for b in avro if b != "null"]
        if len(branches) != 1:
            raise TypeError(f"Avro union {avro} is not one type or one type and null")
        return self.type(branches[0], namespace), len(branches) < len(avro)

    def type(self, avro: Any, namespace: str | None) -> DataType:
        if isinstance(avro, str):
            return self._named_or_primitive(avro, namespace)
        if isinstance(avro, list):
            raise TypeError(f"Avro union {avro} is only allowed as a whole field type")
        base = avro["type"]
        if not isinstance(base, str):
            return self.type(base, namespace)
        if base == "record":
            return self.record(avro, namespace)
        if base == "enum":
            symbols = avro.get("omconnect.symbols", avro["symbols"])
            enum = t.Enum(tuple(symbols), self._original_name(avro))
            return self._register(avro, namespace, enum)
        if base == "array":
            items, items_nullable = self.union(avro["items"], namespace)
            if avro.get("omconnect.type") == "map" and isinstance(items, t.Struct):
                return _entries_map(items)
            return t.Array(items, items_nullable)
        if base == "map":
            values, values_nullable = self.union(avro["values"], namespace)
            return t.Map(values, values_nullable)
        logical = avro.get("logicalType")
        annotated = _ANNOTATED_TYPES.get((base, avro.get("omconnect.type")))
        if annotated is not None and base != "fixed":
            return annotated
        if logical == "decimal" and base in ("bytes", "fixed"):
            decimal = t.Decimal(int(avro["precision"]), int(avro.get("scale", 0)))
            return self._register(avro, namespace, decimal) if base == "fixed" else decimal
        if base == "long" and logical in _ZONED_UNITS and "omconnect.timezone" in avro:
            return t.Timestamp(avro["omconnect.timezone"], _ZONED_UNITS[logical])
        known = annotated or _LOGICAL_TYPES.get((base, logical))
        if base == "fixed":
            return self._register(avro, namespace, known or t.binary())
        # Avro readers ignore logical types they do not know; so do we.
        return known or self._named_or_primitive(base, namespace)

    def record(self, avro: Mapping[str, Any], namespace: str | None) -> t.Struct:
        inner = _namespace_of(avro, namespace)
        fields = []
        for f in avro["fields"]:
            dtype, nullable = self.union(f["type"], inner)
            name = f["omconnect.name"] if "omconnect.name" in f else f["name"]
            fields.append(Field(name, dtype, nullable, f.get("doc")))
        struct = t.Struct(tuple(fields), self._original_name(avro))
        self._register(avro, namespace, struct)
        return struct

    @staticmethod
    def _original_name(avro: Mapping[str, Any]) -> str | None:
        if "omconnect.name" in avro:
            return avro["omconnect.name"]
        return _short_name(avro["name"])

    def _register(
        self, avro: Mapping[str, Any], namespace: str | None, dtype: DataType
    ) -> DataType:
        name = avro["name"]
        inner = _namespace_of(avro, namespace)
        full = name if "." in name or not inner else f"{inner}.{name}"
        self._named[full] = dtype
        return dtype

    def _named_or_primitive(self, name: str, namespace: str | None) -> DataType:
        if name in _AVRO_PRIMITIVES:
            return _AVRO_PRIMITIVES[name]
        for candidate in (f"{namespace}.{name}" if namespace else name, name):
            if candidate in self._named:
                return self._named[candidate]
        raise TypeError(f"Avro type {name!r} is unknown here (or a recursive reference)")


def _entries_map(entries: t.Struct) -> DataType:
    """The map held by an array of key/value records (``"omconnect.type": "map"``)."""
    by_name = {f.name: f for f in entries.fields}
    if set(by_name) != {"key", "value"}:
        raise TypeError(f"Avro map entries must have fields key and value, not {set(by_name)}")
    value = by_name["value"]
    return t.Map(value.type, value.nullable, by_name["key"].type)


def _namespace_of(avro: Mapping[str, Any], enclosing: str | None) -> str | None:
    name = avro.get("name", "")
    if "." in name:
        return str(name.rsplit(".", 1)[0])
    namespace = avro.get("namespace")
    return str(namespace) if namespace else enclosing


def _short_name(name: str) -> str:
    return name.rsplit(".", 1)[-1]

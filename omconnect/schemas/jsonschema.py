"""The mapping between omconnect schemas and JSON Schema (draft 2020-12).

``to_json_schema`` describes records as the JSON converter writes them: integers with their
range, decimals as strings matching a pattern, bytes as base64 strings, dates and times as
formatted strings, json values as strings holding a JSON document, maps as objects with
``additionalProperties``, structs as closed objects. A nullable value has ``"type": [T,
"null"]`` and a nullable field is left out of ``required``. Where JSON Schema alone cannot tell
two omconnect types apart, an ``x-omconnect-*`` annotation does, so
``from_json_schema(to_json_schema(s), name) == s``. Unsigned integers, float16 and time_ns carry
their type in ``x-omconnect-type``, ns timestamps ``"x-omconnect-unit": "ns"``; the null type
is ``{"type": "null"}``; a map whose keys are not strings is an array of ``{"key", "value"}``
objects marked ``"x-omconnect-type": "map"`` (as the JSON converter writes it).

``from_json_schema`` also maps schemas written by others: local ``$ref``, ``anyOf``/``oneOf``
with a null branch, integer bounds, string formats; anything it cannot type more precisely
becomes ``json``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from omconnect.schemas import types as t
from omconnect.schemas.schema import Schema
from omconnect.schemas.types import DataType, Field, Kind

DRAFT = "https://json-schema.org/draft/2020-12/schema"
TYPE_KEY = "x-omconnect-type"
TIMEZONE_KEY = "x-omconnect-timezone"
UNIT_KEY = "x-omconnect-unit"

_INTEGER_RANGES: dict[Kind, tuple[int, int]] = {
    Kind.INT8: (-(2**7), 2**7 - 1),
    Kind.INT16: (-(2**15), 2**15 - 1),
    Kind.INT32: (-(2**31), 2**31 - 1),
    Kind.INT64: (-(2**63), 2**63 - 1),
}

_UNSIGNED_RANGES: dict[Kind, tuple[int, int]] = {
    Kind.UINT8: (0, 2**8 - 1),
    Kind.UINT16: (0, 2**16 - 1),
    Kind.UINT32: (0, 2**32 - 1),
    Kind.UINT64: (0, 2**64 - 1),
}
# Types told apart from their JSON relatives only by ``x-omconnect-type``.
_ANNOTATED_KINDS = {Kind.UINT8, Kind.UINT16, Kind.UINT32, Kind.UINT64, Kind.FLOAT16, Kind.TIME_NS}

_LOCAL_TIMESTAMP_PATTERN = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?$"

_PRIMITIVE_TO_JSON: dict[Kind, dict[str, Any]] = {
    Kind.BOOLEAN: {"type": "boolean"},
    **{
        kind: {"type": "integer", "minimum": low, "maximum": high}
        for kind, (low, high) in _INTEGER_RANGES.items()
    },
    **{
        kind: {"type": "integer", "minimum": low, "maximum": high, TYPE_KEY: kind.value}
        for kind, (low, high) in _UNSIGNED_RANGES.items()
    },
    Kind.FLOAT16: {"type": "number", TYPE_KEY: "float16"},
    Kind.FLOAT32: {"type": "number", TYPE_KEY: "float32"},
    Kind.FLOAT64: {"type": "number"},
    Kind.STRING: {"type": "string"},
    Kind.BYTES: {"type": "string", "contentEncoding": "base64"},
    Kind.DATE: {"type": "string", "format": "date"},
    Kind.TIME: {"type": "string", "format": "time"},
    Kind.TIME_NS: {"type": "string", "format": "time", TYPE_KEY: "time_ns"},
    Kind.NULL: {"type": "null"},
    Kind.UUID: {"type": "string", "format": "uuid"},
    Kind.JSON: {"type": "string", "contentMediaType": "application/json", TYPE_KEY: "json"},
}


_STRING_FORMATS: dict[str, DataType] = {"date": t.date(), "time": t.time(), "uuid": t.uuid()}


def to_json_schema(s: Schema) -> dict[str, Any]:
    """The JSON Schema of one record of ``s``."""
    js: dict[str, Any] = {"$schema": DRAFT, "title": s.name}
    if s.doc is not None:
        js["description"] = s.doc
    js.update(_object(s.fields))
    js["x-omconnect-name"] = s.name
    js["x-omconnect-version"] = s.version
    if s.key_fields:
        js["x-omconnect-key"] = list(s.key_fields)
    return js


def _object(fields: tuple[Field, ...]) -> dict[str, Any]:
    properties: dict[str, Any] = {}
    for f in fields:
        prop = _value(f.type, f.nullable)
        if f.doc is not None:
            prop["description"] = f.doc
        properties[f.name] = prop
    return {
        "type": "object",
        "properties": properties,
        "required": [f.name for f in fields if not f.nullable],
        "additionalProperties": False,
    }


def _value(dtype: DataType, nullable: bool) -> dict[str, Any]:
    """The JSON Schema of a value of ``dtype``, admitting null when ``nullable``."""
    js = _non_null_value(dtype)
    if nullable and dtype != t.null():
        js["type"] = [js["type"], "null"]
        if "enum" in js:
            js["enum"] = [*js["enum"], None]
    return js


def _non_null_value(dtype: DataType) -> dict[str, Any]:
    if isinstance(dtype, t.Primitive):
        return dict(_PRIMITIVE_TO_JSON[dtype.kind])
    if isinstance(dtype, t.Decimal):
        return {
            "type": "string",
            "pattern": _decimal_pattern(dtype),
            TYPE_KEY: "decimal",
            "x-omconnect-precision": dtype.precision,
            "x-omconnect-scale": dtype.scale,
        }
    if isinstance(dtype, t.Timestamp):
        stamp: dict[str, Any]
        if dtype.timezone is None:
            stamp = {"type": "string", "pattern": _LOCAL_TIMESTAMP_PATTERN, TYPE_KEY: "timestamp"}
        else:
            stamp = {"type": "string", "format": "date-time"}
            if dtype.timezone != "UTC":
                stamp[TIMEZONE_KEY] = dtype.timezone
        if dtype.unit != "us":
            stamp[UNIT_KEY] = dtype.unit
        return stamp
    if isinstance(dtype, t.Array):
        return {"type": "array", "items": _value(dtype.items, dtype.items_nullable)}
    if isinstance(dtype, t.Map) and dtype.keys != t.string():
        entry = _object(
            (Field("key", dtype.keys, False), Field("value", dtype.values, dtype.values_nullable))
        )
        return {"type": "array", "items": entry, TYPE_KEY: "map"}
    if isinstance(dtype, t.Map):
        return {
            "type": "object",
            "additionalProperties": _value(dtype.values, dtype.values_nullable),
        }
    if isinstance(dtype, t.Struct):
        js = _object(dtype.fields)
        if dtype.name is not None:
            js["title"] = dtype.name
        return js
    if isinstance(dtype, t.Enum):
        js = {"type": "string", "enum": list(dtype.symbols)}
        if dtype.name is not None:
            js["title"] = dtype.name
        return js
    raise TypeError(f"not an omconnect type: {dtype!r}")


def _decimal_pattern(dtype: t.Decimal) -> str:
    whole = max(dtype.precision - dtype.scale, 1)
    fraction = rf"(\.\d{{1,{dtype.scale}}})?" if dtype.scale else ""
    return rf"^-?\d{{1,{whole}}}{fraction}$"


def from_json_schema(js: Mapping[str, Any], name: str) -> Schema:
    """The omconnect schema of an object JSON Schema.

    Args:
        js: a JSON Schema whose root is an object with ``properties``.
        name: the schema name unless ``js`` carries ``x-omconnect-name``.

    Raises:
        TypeError: when the root is not an object with properties, or a ``$ref`` is not local
            or is recursive.
    """
    reader = _JsonSchemaReader(js)
    root = reader.resolve(js)
    if "properties" not in root:
        raise TypeError("a JSON Schema for records must be an object with properties")
    return Schema(
        name=root.get("x-omconnect-name", name),
        fields=reader.fields(root),
        version=int(root.get("x-omconnect-version", 1)),
        key_fields=tuple(root.get("x-omconnect-key", ())),
        doc=root.get("description"),
    )


class _JsonSchemaReader:
    """Reads the types of one JSON Schema document, resolving its local references."""

    def __init__(self, document: Mapping[str, Any]) -> None:
        self._document = document
        self._resolving: list[str] = []

    def resolve(self, js: Mapping[str, Any]) -> Mapping[str, Any]:
        """``js`` with its ``$ref`` (and theirs) replaced by what they point to."""
        return self._follow(js)[0]

    def _follow(self, js: Mapping[str, Any]) -> tuple[Mapping[str, Any], list[str]]:
        """``js`` resolved, and the references followed to get there."""
        followed: list[str] = []
        while "$ref" in js:
            ref = js["$ref"]
            if not isinstance(ref, str) or not ref.startswith("#"):
                raise TypeError(f"JSON Schema $ref {ref!r} is not local to the document")
            if ref in followed or ref in self._resolving:
                raise TypeError(f"JSON Schema $ref {ref!r} is recursive")
            followed.append(ref)
            target: Any = self._document
            for part in ref.lstrip("#").strip("/").split("/"):
                if part:
                    target = target[part.replace("~1", "/").replace("~0", "~")]
            js = {**target, **{k: v for k, v in js.items() if k != "$ref"}}
        return js, followed

    def fields(self, js: Mapping[str, Any]) -> tuple[Field, ...]:
        required = set(js.get("required", ()))
        fields = []
        for name, prop in js["properties"].items():
            dtype, nullable = self.value(prop)
            doc = self.resolve(prop).get("description")
            fields.append(Field(name, dtype, nullable or name not in required, doc))
        return tuple(fields)

    def value(self, js: Mapping[str, Any] | bool) -> tuple[DataType, bool]:
        """The type of a JSON Schema and whether it admits null."""
        if isinstance(js, bool):
            return t.json(), True
        js, followed = self._follow(js)
        # References stay open while their insides are read, so a cycle is caught.
        self._resolving.extend(followed)
        try:
            return self._resolved_value(js)
        finally:
            del self._resolving[len(self._resolving) - len(followed) :]

    def _resolved_value(self, js: Mapping[str, Any]) -> tuple[DataType, bool]:
        for combinator in ("anyOf", "oneOf"):
            if combinator in js:
                branches = [self.resolve(b) for b in js[combinator]]
                others = [b for b in branches if b.get("type") != "null"]
                if len(others) == 1:
                    dtype, nullable = self.value(others[0])
                    return dtype, nullable or len(others) < len(branches)
                return t.json(), True
        declared = js.get("type")
        types = declared if isinstance(declared, list) else [declared]
        nullable = "null" in types or declared is None
        if types == ["null"]:
            return t.null(), True
        non_null = [x for x in types if x not in ("null", None)]
        if len(non_null) == 1:
            return self._typed(non_null[0], js), nullable
        if declared is None and "enum" in js:
            return self._typed("string", js), None in js["enum"]
        if declared is None and "properties" in js:
            return self._typed("object", js), True
        return t.json(), True

    def _typed(self, kind: str, js: Mapping[str, Any]) -> DataType:
        annotation = js.get(TYPE_KEY)
        if annotation in _ANNOTATED_KINDS:
            return t.Primitive(Kind(annotation))
        if kind == "boolean":
            return t.boolean()
        if kind == "integer":
            return _integer(js)
        if kind == "number":
            return t.float32() if annotation == "float32" else t.float64()
        if kind == "string":
            return self._string(js, annotation)
        if kind == "array":
            items, items_nullable = self.value(js.get("items", True))
            if annotation == "map" and isinstance(items, t.Struct):
                fields = {f.name: f for f in items.fields}
                if set(fields) == {"key", "value"}:
                    value = fields["value"]
                    return t.Map(value.type, value.nullable, fields["key"].type)
            return t.Array(items, items_nullable)
        if kind == "object":
            return self._object_type(js)
        return t.json()

    def _string(self, js: Mapping[str, Any], annotation: Any) -> DataType:
        if "enum" in js:
            symbols = tuple(s for s in js["enum"] if s is not None)
            if all(isinstance(s, str) for s in symbols):
                return t.Enum(symbols, js.get("title"))
        if annotation == "decimal":
            return t.Decimal(int(js["x-omconnect-precision"]), int(js["x-omconnect-scale"]))
        unit = str(js.get(UNIT_KEY, "us"))
        if annotation == "timestamp":
            return t.timestamp(None, unit)
        if annotation == "json" or js.get("contentMediaType") == "application/json":
            return t.json()
        if js.get("contentEncoding") == "base64" or js.get("format") == "byte":
            return t.binary()
        string_format = str(js.get("format", ""))
        if string_format == "date-time":
            return t.timestamp(js.get(TIMEZONE_KEY, "UTC"), unit)
        return _STRING_FORMATS.get(string_format, t.string())

    def _object_type(self, js: Mapping[str, Any]) -> DataType:
        if "properties" in js:
            return t.Struct(self.fields(js), js.get("title"))
        values = js.get("additionalProperties")
        if isinstance(values, Mapping):
            value_type, values_nullable = self.value(values)
            return t.Map(value_type, values_nullable)
        return t.json()


def _integer(js: Mapping[str, Any]) -> DataType:
    """The narrowest integer type holding the declared range (int64 when unbounded)."""
    low, high = js.get("minimum"), js.get("maximum")
    if low is None or high is None:
        return t.int64()
    for kind, (kind_low, kind_high) in _INTEGER_RANGES.items():
        if kind_low <= low and high <= kind_high:
            return t.Primitive(kind)
    return t.int64()

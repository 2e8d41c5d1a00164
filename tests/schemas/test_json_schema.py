"""The omconnect <-> JSON Schema mapping: exact round trips, the written shapes, and schemas
written by others."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import given, settings

from omconnect.schemas import types as t
from omconnect.schemas.jsonschema import DRAFT, from_json_schema, to_json_schema
from omconnect.schemas.schema import Schema
from omconnect.schemas.types import DataType, Field
from tests.support.schema_strategies import schemas

EVERY_TYPE = [
    t.boolean(),
    t.int8(),
    t.int16(),
    t.int32(),
    t.int64(),
    t.float32(),
    t.float64(),
    t.string(),
    t.binary(),
    t.date(),
    t.time(),
    t.uuid(),
    t.json(),
    t.decimal(38, 38),
    t.decimal(60, 20),
    t.decimal(5, 0),
    t.timestamp("UTC"),
    t.timestamp("Europe/Paris"),
    t.timestamp(None),
    t.array(t.int16(), False),
    t.map_of(t.enum("a", "b", name="AB")),
    t.struct(Field("inner", t.array(t.struct(Field("x", t.int8())))), name="Outer"),
    t.enum("only"),
]


@pytest.mark.parametrize("dtype", EVERY_TYPE, ids=str)
@pytest.mark.parametrize("nullable", [False, True])
def test_every_type_round_trips(dtype: DataType, nullable: bool) -> None:
    schema = Schema("s", (Field("f", dtype, nullable, doc="the f"),), version=2, key_fields=())
    js = to_json_schema(schema)
    assert json.loads(json.dumps(js)) == js
    assert from_json_schema(js, name="other") == schema


def test_record_shape() -> None:
    schema = Schema(
        "orders",
        (
            Field("id", t.int32(), False),
            Field("amount", t.decimal(7, 2)),
            Field("paid", t.timestamp("UTC")),
            Field("photo", t.binary(), False),
        ),
        version=3,
        key_fields=("id",),
        doc="one order",
    )
    js = to_json_schema(schema)
    assert js["$schema"] == DRAFT
    assert js["title"] == "orders"
    assert js["description"] == "one order"
    assert js["type"] == "object"
    assert js["required"] == ["id", "photo"]
    assert js["additionalProperties"] is False
    props = js["properties"]
    assert props["id"] == {"type": "integer", "minimum": -(2**31), "maximum": 2**31 - 1}
    assert props["amount"]["type"] == ["string", "null"]
    assert props["paid"] == {"type": ["string", "null"], "format": "date-time"}
    assert props["photo"] == {"type": "string", "contentEncoding": "base64"}
    assert (js["x-omconnect-version"], js["x-omconnect-key"]) == (3, ["id"])


@pytest.mark.parametrize(
    ("dtype", "good", "bad"),
    [
        (t.decimal(7, 2), ["12345.67", "-1", "0.5"], ["123456.7", "1.234", "1e5", ".5"]),
        (t.decimal(3, 3), ["0.123", "-0.1"], ["1.1234", "12.1"]),
        (t.decimal(4, 0), ["1234", "-9"], ["12345", "1.0"]),
        (t.timestamp(None), ["2024-01-02T03:04:05.123456"], ["2024-01-02T03:04:05Z"]),
    ],
    ids=str,
)
def test_string_patterns_accept_exactly_the_values(
    dtype: DataType, good: list[str], bad: list[str]
) -> None:
    pattern = to_json_schema(Schema("s", (Field("f", dtype),)))["properties"]["f"]["pattern"]
    assert all(re.search(pattern, v) for v in good)
    assert not any(re.search(pattern, v) for v in bad)


def test_foreign_schema_is_read_with_reasonable_types() -> None:
    foreign: dict[str, Any] = {
        "$schema": DRAFT,
        "title": "A person",
        "type": "object",
        "$defs": {"address": {"type": "object", "properties": {"city": {"type": "string"}}}},
        "properties": {
            "id": {"type": "integer"},
            "age": {"type": "integer", "minimum": 0, "maximum": 200},
            "name": {"type": "string"},
            "born": {"type": "string", "format": "date"},
            "seen": {"anyOf": [{"type": "string", "format": "date-time"}, {"type": "null"}]},
            "home": {"$ref": "#/$defs/address"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "attrs": {"type": "object", "additionalProperties": {"type": "number"}},
            "extra": {},
            "blob": {"type": "string", "format": "byte"},
            "state": {"enum": ["on", "off"]},
            "either": {"type": ["string", "integer"]},
        },
        "required": ["id", "name", "tags"],
    }
    schema = from_json_schema(foreign, name="person")
    assert schema == Schema(
        "person",
        (
            Field("id", t.int64(), False),
            Field("age", t.int16()),
            Field("name", t.string(), False),
            Field("born", t.date()),
            Field("seen", t.timestamp("UTC")),
            Field("home", t.struct(Field("city", t.string()))),
            Field("tags", t.array(t.string(), False), False),
            Field("attrs", t.map_of(t.float64(), False)),
            Field("extra", t.json()),
            Field("blob", t.binary()),
            Field("state", t.enum("on", "off")),
            Field("either", t.json()),
        ),
    )


@pytest.mark.parametrize(
    "js",
    [
        {"type": "array", "items": {"type": "string"}},
        {"type": "object", "properties": {"a": {"$ref": "https://example.org/a.json"}}},
        {"type": "object", "properties": {"a": {"$ref": "#"}}},
    ],
    ids=str,
)
def test_what_cannot_be_read_is_refused(js: dict[str, Any]) -> None:
    with pytest.raises(TypeError):
        from_json_schema(js, name="x")


@settings(max_examples=100, deadline=None)
@given(schemas())
def test_random_schemas_round_trip(schema: Schema) -> None:
    js = to_json_schema(schema)
    assert from_json_schema(json.loads(json.dumps(js)), name="other") == schema

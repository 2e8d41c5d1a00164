"""Avro schema resolution rules behind the registry's compatibility modes."""

from __future__ import annotations

import pytest

from omconnect.runtime.state.schema_registry import (
    CompatibilityMode,
    incompatibilities,
    reader_problems,
)


def rec(*fields: dict, name: str = "r") -> dict:
    return {"type": "record", "name": name, "fields": list(fields)}


@pytest.mark.parametrize(
    ("writer", "reader"),
    [
        ("int", "long"),
        ("int", "double"),
        ("long", "float"),
        ("float", "double"),
        ("string", "bytes"),
        ("long", ["null", "long"]),
        (["null", "int"], ["null", "long"]),
        (
            {"type": "enum", "name": "e", "symbols": ["A"]},
            {"type": "enum", "name": "e", "symbols": ["A", "B"]},
        ),
        ({"type": "array", "items": "int"}, {"type": "array", "items": "long"}),
        ({"type": "map", "values": "int"}, {"type": "map", "values": "double"}),
    ],
)
def test_readable(writer, reader) -> None:
    assert (
        reader_problems(rec({"name": "f", "type": reader}), rec({"name": "f", "type": writer}))
        == []
    )


@pytest.mark.parametrize(
    ("writer", "reader", "words"),
    [
        ("long", "int", "long cannot be read as int"),
        ("double", "float", "double cannot be read as float"),
        (["null", "long"], "long", "null cannot be read as long"),
        (
            {"type": "enum", "name": "e", "symbols": ["A", "B"]},
            {"type": "enum", "name": "e", "symbols": ["A"]},
            "['B']",
        ),
        (
            {"type": "bytes", "logicalType": "decimal", "precision": 10, "scale": 2},
            {"type": "bytes", "logicalType": "decimal", "precision": 10, "scale": 3},
            "scale",
        ),
        (
            rec({"name": "x", "type": "int"}, name="a"),
            rec({"name": "x", "type": "int"}, name="b"),
            "name",
        ),
    ],
)
def test_unreadable_names_the_field(writer, reader, words) -> None:
    problems = reader_problems(
        rec({"name": "f", "type": reader}), rec({"name": "f", "type": writer})
    )
    assert problems and "r.f" in problems[0] and words in problems[0]


def test_new_field_needs_a_default_and_removed_fields_are_fine() -> None:
    old = rec({"name": "a", "type": "long"}, {"name": "b", "type": "string"})
    assert reader_problems(rec({"name": "a", "type": "long"}), old) == []
    added = rec({"name": "a", "type": "long"}, {"name": "c", "type": "int"})
    assert "r.c" in reader_problems(added, old)[0]
    defaulted = rec({"name": "a", "type": "long"}, {"name": "c", "type": "int", "default": 0})
    assert reader_problems(defaulted, old) == []


def test_modes_choose_direction_and_history() -> None:
    v1 = rec({"name": "a", "type": "long"})
    v2 = rec({"name": "a", "type": "long"}, {"name": "b", "type": "int", "default": 0})
    v3 = rec({"name": "a", "type": "long"}, {"name": "b", "type": "int"})
    history = [(1, v1), (2, v2)]
    assert incompatibilities(CompatibilityMode.BACKWARD, v3, history) == []
    assert incompatibilities(CompatibilityMode.BACKWARD_TRANSITIVE, v3, history)
    assert incompatibilities(CompatibilityMode.FORWARD, v1, [(1, v3)])
    assert incompatibilities(CompatibilityMode.FULL, v2, [(1, v1)]) == []
    assert incompatibilities(CompatibilityMode.NONE, {"type": "string"}, history) == []


def test_named_references_are_resolved_when_checking() -> None:
    from omconnect.schemas import types as t
    from omconnect.schemas.avro import to_avro_schema
    from omconnect.schemas.schema import Schema
    from omconnect.schemas.types import Field

    def envelope(*value_fields: Field) -> dict:
        value = t.struct(Field("id", t.int64(), False), *value_fields, name="Value")
        schema = Schema("db.items", (Field("before", value), Field("after", value)))
        return to_avro_schema(schema)

    old = envelope()
    assert old["fields"][1]["type"] == ["null", "db.Value"]
    added = envelope(Field("note", t.string()))
    required = envelope(Field("qty", t.int64(), False))
    assert incompatibilities(CompatibilityMode.FULL, added, [(1, old)]) == []
    problems = incompatibilities(CompatibilityMode.BACKWARD, required, [(1, old)])
    assert len(problems) == 2  # before and after, each through the reference
    assert all("qty" in p for p in problems)

"""The JSON Schema of pipeline files covers the model and every registered plugin."""

from __future__ import annotations

import json
from typing import Any

from omconnect.connectors.api import registrations
from omconnect.runtime.config import pipeline_json_schema


def refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [ref for value in node.values() for ref in refs(value)]
    if isinstance(node, list):
        return [ref for item in node for ref in refs(item)]
    return []


def test_schema_is_draft_07_and_self_contained() -> None:
    schema = pipeline_json_schema()
    json.dumps(schema)  # serialisable as is
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert schema["type"] == "object" and schema["additionalProperties"] is False
    assert "$defs" not in json.dumps(schema)
    for ref in refs(schema):
        assert ref.startswith("#/definitions/")
        assert ref.removeprefix("#/definitions/") in schema["definitions"]
    assert schema["required"] == ["name"]
    assert schema["properties"]["format"]["enum"] == ["avro", "json", "cloudevents", "raw"]
    linger = schema["definitions"]["BatchingConfig"]["properties"]["linger"]
    assert {"type": "number", "minimum": 0} in linger["anyOf"]


def test_blocks_are_one_of_registered_plugins_by_name() -> None:
    schema = pipeline_json_schema()
    sources = schema["properties"]["source"]["oneOf"]
    names = [s["properties"]["connector"]["const"] for s in sources if s.get("type") == "object"]
    assert names == [r.name for r in registrations("source")]
    assert {"type": "null"} in sources
    test_src = next(s for s in sources if s.get("title") == "test-src (source)")
    assert test_src["required"] == ["connector", "path"]
    assert test_src["additionalProperties"] is False
    assert test_src["properties"]["password"]["anyOf"][0]["format"] == "password"
    assert test_src["description"] == "Reads nothing; exists for its spec."
    s3 = test_src["properties"]["s3"]["anyOf"][0]["$ref"]
    assert s3 == "#/definitions/source-test-src-S3Options"
    items = schema["properties"]["transforms"]["items"]["oneOf"]
    rename = next(i for i in items if i["properties"]["type"]["const"] == "test-rename")
    assert rename["required"] == ["type", "fields"]
    sinks = schema["properties"]["sink"]["oneOf"]
    assert any(s.get("title") == "test-sink (sink)" for s in sinks)

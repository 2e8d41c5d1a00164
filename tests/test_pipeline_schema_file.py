"""The committed JSON Schema for pipeline files matches the specs it is generated from."""

from __future__ import annotations

import json
from pathlib import Path

from omconnect.runtime.cli.schema_cmd import render_pipeline_schema

SCHEMA_FILE = Path(__file__).resolve().parents[1] / "docs" / "pipeline.schema.json"


def test_committed_schema_is_current() -> None:
    assert SCHEMA_FILE.read_text() == render_pipeline_schema(), (
        "docs/pipeline.schema.json is stale: run omconnect schema --out docs/pipeline.schema.json"
    )


def test_schema_offers_every_file_connector_for_source_and_sink() -> None:
    text = json.loads(SCHEMA_FILE.read_text())
    dumped = json.dumps(text)
    for name in ("csv", "jsonl", "parquet", "avro"):
        assert f'"const": "{name}"' in dumped, name
    assert text["$schema"].startswith("http://json-schema.org/draft-07")

"""The committed JSON Schema for pipeline files matches the specs it is generated from."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCHEMA_FILE = Path(__file__).resolve().parents[1] / "docs" / "pipeline.schema.json"


def test_committed_schema_is_current() -> None:
    # A fresh process: other tests register fake plugins in this one.
    rendered = subprocess.run(
        [sys.executable, "-m", "omconnect.runtime.cli.main", "schema"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert SCHEMA_FILE.read_text() == rendered, (
        "docs/pipeline.schema.json is stale: run omconnect schema --out docs/pipeline.schema.json"
    )


def test_schema_offers_every_file_connector_for_source_and_sink() -> None:
    text = json.loads(SCHEMA_FILE.read_text())
    dumped = json.dumps(text)
    for name in ("csv", "jsonl", "parquet", "avro"):
        assert f'"const": "{name}"' in dumped, name
    assert text["$schema"].startswith("http://json-schema.org/draft-07")

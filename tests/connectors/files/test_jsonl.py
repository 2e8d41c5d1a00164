"""The jsonl source and sink: the conformance kit, then jsonl specifics."""

from __future__ import annotations

import json
import re
from pathlib import Path

from omconnect.connectors.api import ConnectorError
from omconnect.runtime.testing import SourceDriver, ids_of
from tests.support.file_conformance import FileSinkTests, FileSourceTests


class TestJsonlSource(FileSourceTests):
    connector = "jsonl"


class TestJsonlSink(FileSinkTests):
    connector = "jsonl"


def test_fields_missing_from_some_lines_are_null(tmp_path: Path) -> None:
    lines = [{"id": 1, "tag": "a"}, {"id": 2}, {"id": 3, "tag": None}]
    (tmp_path / "a.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    (batch,) = SourceDriver("jsonl", {"path": str(tmp_path / "a.jsonl")}).read_to_end()
    assert batch.values.to_pydict() == {"id": [1, 2, 3], "tag": ["a", None, None]}


def test_parse_error_names_the_file_and_line(tmp_path: Path) -> None:
    good = "".join(json.dumps({"id": i}) + "\n" for i in range(20))
    (tmp_path / "broken.jsonl").write_text(good + '{"id": 20,\n')
    source = SourceDriver("jsonl", {"path": str(tmp_path / "broken.jsonl")})
    assert ids_of(source.read_to_end()) == list(range(20))
    (bad,) = source.errors.raw_reports
    assert isinstance(bad.error, ConnectorError)
    assert re.search(r"broken\.jsonl: line 21: ", str(bad.error))
    assert bad.payload == b'{"id": 20,'


def test_empty_file_has_no_rows(tmp_path: Path) -> None:
    (tmp_path / "empty.jsonl").write_text("")
    assert SourceDriver("jsonl", {"path": str(tmp_path / "empty.jsonl")}).read_to_end() == []

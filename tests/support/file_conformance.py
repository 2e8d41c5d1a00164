"""The conformance kit set up for the file connectors, whose format name is their extension.

A file connector's test module names the format and inherits the rest::

    class TestCsvSource(FileSourceTests):
        connector = "csv"
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa

from omconnect.runtime.testing import SinkConnectorTests, SourceConnectorTests
from tests.support.file_formats import read_back, write_avro, write_csv, write_jsonl, write_parquet

WRITERS: dict[str, Callable[[Path, pa.Table], None]] = {
    "csv": write_csv,
    "jsonl": write_jsonl,
    "parquet": write_parquet,
    "avro": write_avro,
}


class FileSourceTests(SourceConnectorTests):
    """Input is files ``*.<connector>`` under the data directory; offsets count rows."""

    def make_config(self, root: Path) -> dict[str, Any]:
        return {"path": f"{root}/*.{self.connector}"}

    def write_rows(self, root: Path, rows: pa.Table) -> None:
        WRITERS[self.connector](root, rows)

    def offset_order(self, offset: Mapping[str, Any]) -> Any:
        return offset["row"]


class FileSinkTests(SinkConnectorTests):
    """Output is the published ``*.<connector>`` files of the target directory; deletes are
    skipped (the file sinks' default)."""

    deletes = "skip"

    def make_config(self, root: Path) -> dict[str, Any]:
        return {"path": str(root)}

    def read_back(self, config: dict[str, Any]) -> pa.Table:
        return read_back(Path(config["path"]), self.connector)

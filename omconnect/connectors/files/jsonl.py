"""The ``jsonl`` source and sink: JSON Lines files, one JSON object per line.

Reading streams blocks through Arrow's JSON reader; the fields and types of a file come from
its first block (or from ``columns``). JSON has no timestamp or decimal type: such values
stay strings and numbers unless ``columns`` says what they are. Writing encodes whole
batches with Arrow compute (see ``_jsonl_encoder``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pyarrow as pa
import pyarrow.json as arrow_json

from omconnect.connectors.api import ConnectorSpec, register
from omconnect.connectors.files._column_types import arrow_column_types
from omconnect.connectors.files._file_cursor import skip_rows
from omconnect.connectors.files._jsonl_encoder import encode_jsonl
from omconnect.connectors.files._line_blocks import line_block_size
from omconnect.connectors.files._rolling_writer import FormatWriter
from omconnect.connectors.files._sink_task import FileSinkConnector, FileSinkSpec, FileSinkTask
from omconnect.connectors.files._source_connector import FileSourceConnector, TypedColumnsSpec
from omconnect.connectors.files._source_task import FileSourceTask


class JsonlSourceSpec(TypedColumnsSpec):
    """Options of the ``jsonl`` source."""


class JsonlSourceTask(FileSourceTask):
    """Streams a JSON Lines file through Arrow's block reader."""

    def read_blocks(self, path: Path, start_row: int) -> Iterator[pa.RecordBatch]:
        config = self.config
        assert isinstance(config, JsonlSourceSpec)
        if path.stat().st_size == 0:
            return
        explicit = arrow_column_types(config.columns or {})
        parse_options = arrow_json.ParseOptions(
            explicit_schema=pa.schema(list(explicit.items())) if explicit else None,
            unexpected_field_behavior="infer",
        )
        read_options = arrow_json.ReadOptions(block_size=line_block_size(path, config.batch_size))
        reader = arrow_json.open_json(path, read_options=read_options, parse_options=parse_options)
        yield from skip_rows(iter(reader), start_row)


class JsonlSource(FileSourceConnector):
    """Reads JSON Lines files (a file, a directory or a glob)."""

    name = "jsonl"
    spec: ClassVar[type[ConnectorSpec]] = JsonlSourceSpec
    task_class = JsonlSourceTask
    description = "Read JSON Lines files from a path, a directory or a glob."


class JsonlSinkSpec(FileSinkSpec):
    """Options of the ``jsonl`` sink."""


class _JsonlFormat:
    def __init__(self, sink: pa.NativeFile) -> None:
        self._sink = sink

    def write(self, batch: pa.RecordBatch) -> None:
        self._sink.write(encode_jsonl(batch))

    def buffered_bytes(self) -> int:
        return 0

    def close(self) -> None:
        """JSON Lines has no footer."""


class JsonlSinkTask(FileSinkTask):
    extension = "jsonl"

    def open_format(self, sink: pa.NativeFile, schema: pa.Schema) -> FormatWriter:
        return _JsonlFormat(sink)


class JsonlSink(FileSinkConnector):
    """Writes each topic partition into rolling JSON Lines files in a directory."""

    name = "jsonl"
    spec: ClassVar[type[ConnectorSpec]] = JsonlSinkSpec
    task_class = JsonlSinkTask
    description = "Write JSON Lines files into a directory, one rolling series per partition."


register(JsonlSource)
register(JsonlSink)

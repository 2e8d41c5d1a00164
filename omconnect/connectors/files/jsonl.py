"""The ``jsonl`` source and sink: JSON Lines files, one JSON object per line.

Reading parses blocks of whole lines with Arrow's JSON reader; the fields and types of a file
come from its first block (or from ``columns``); a bad line goes to the dead letter topic.
JSON has no timestamp or decimal type: such values stay strings and numbers unless
``columns`` says what they are. Writing encodes whole batches with Arrow compute (see
``omconnect.codecs.json_text``); decimals are written as exact JSON numbers.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

import pyarrow as pa
import pyarrow.json as arrow_json

from omconnect.codecs.json_text import json_lines
from omconnect.connectors.api import ConnectorSpec, register
from omconnect.connectors.files._file_store import OpenFile
from omconnect.connectors.files._line_blocks import line_block_size, line_chunks
from omconnect.connectors.files._read_range import ReadRange
from omconnect.connectors.files._record_blocks import BlockParser, blocks_of, parsed_batches
from omconnect.connectors.files._rolling_writer import FormatWriter
from omconnect.connectors.files._sink_spec import FileSinkConnector, FileSinkSpec
from omconnect.connectors.files._sink_task import FileSinkTask
from omconnect.connectors.files._source_connector import (
    FileSourceConnector,
    TypedColumnsSpec,
    arrow_column_types,
)
from omconnect.connectors.files._source_task import FileSourceTask


class JsonlSourceSpec(TypedColumnsSpec):
    """Options of the ``jsonl`` source."""

    @classmethod
    def reads(cls, arrow_type: pa.DataType) -> bool:
        """Arrow's JSON reader parses scalars, lists and structs, not maps, dictionaries
        (enums), JSON or UUIDs, at any depth."""
        if isinstance(arrow_type, pa.BaseExtensionType) or pa.types.is_dictionary(arrow_type):
            return False
        if pa.types.is_map(arrow_type):
            return False
        return all(cls.reads(arrow_type.field(i).type) for i in range(arrow_type.num_fields))


class JsonlSourceTask(FileSourceTask):
    """Reads a JSON Lines file in blocks of whole lines, each parsed by Arrow in one call; a
    line that is not a JSON object, or does not fit the types of the file, is a bad record."""

    def read_blocks(self, file: OpenFile, where: ReadRange) -> Iterator[pa.RecordBatch]:
        config = self.config
        assert isinstance(config, JsonlSourceSpec)
        size = line_block_size(file, config.batch_size)
        blocks = blocks_of(line_chunks(file, where, size), size, None, where.first_line)
        configured = {**where.types, **arrow_column_types(config.columns or {})}
        parser = BlockParser(_parse, _settle, configured, None, replace_bad_utf8=False)

        def report(
            payloads: list[bytes], reasons: list[Exception], places: list[Mapping[str, Any]]
        ) -> None:
            self.context.errors.report_raw(payloads, reasons, places, stage="read")

        yield from parsed_batches(blocks, parser, where.skip_rows, report, file.name)


def _parse(data: bytes, types: dict[str, pa.DataType]) -> pa.Table:
    """The rows of ``data`` (whole lines) in one Arrow call; fields not in ``types`` are
    inferred."""
    return arrow_json.read_json(
        pa.BufferReader(data),
        read_options=arrow_json.ReadOptions(block_size=len(data) + 1),
        parse_options=arrow_json.ParseOptions(
            explicit_schema=pa.schema(list(types.items())) if types else None,
            unexpected_field_behavior="infer",
        ),
    )


def _settle(first: pa.Table, data: bytes) -> dict[str, pa.DataType]:
    """The types of the later blocks: the first block's, but a field null in all its rows is
    left to each block (the file cursor reads it as strings)."""
    return {f.name: f.type for f in first.schema if not pa.types.is_null(f.type)}


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
        self._sink.write(json_lines(batch, decimals="number"))

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
    description = (
        "Write JSON Lines files into a directory or an S3 prefix, one rolling series per partition."
    )


register(JsonlSource)
register(JsonlSink)

"""The ``csv`` source and sink: delimited text files, read and written by Arrow's CSV engine.

Nulls: an unquoted empty field is null and a quoted empty field (``""``) is an empty string,
the convention of PostgreSQL's ``COPY ... CSV``; the sink writes nulls and empty strings that
way, so files round-trip. ``null_values`` replaces the spellings of null when reading.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar, Literal

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as arrow_csv
from pydantic import Field

from omconnect.connectors.api import ConnectorSpec, register
from omconnect.connectors.files._file_store import OpenFile
from omconnect.connectors.files._line_blocks import line_block_size, line_chunks
from omconnect.connectors.files._read_range import ReadRange
from omconnect.connectors.files._record_blocks import (
    BlockParser,
    RawBlock,
    blocks_of,
    parsed_batches,
    record_ends,
    utf8_chunks,
)
from omconnect.connectors.files._rolling_writer import FormatWriter
from omconnect.connectors.files._sink_spec import FileSinkConnector, FileSinkSpec
from omconnect.connectors.files._sink_task import FileSinkTask
from omconnect.connectors.files._source_connector import (
    FileSourceConnector,
    TypedColumnsSpec,
    arrow_column_types,
)
from omconnect.connectors.files._source_task import FileSourceTask


class CsvSourceSpec(TypedColumnsSpec):
    """Options of the ``csv`` source."""

    @classmethod
    def reads(cls, arrow_type: pa.DataType) -> bool:
        """Arrow's CSV reader parses scalars and dictionaries (enums), not nested values, JSON
        or UUIDs."""
        return not (pa.types.is_nested(arrow_type) or isinstance(arrow_type, pa.BaseExtensionType))

    delimiter: str = Field(
        default=",", min_length=1, max_length=1, description="The character between fields."
    )
    header: bool = Field(
        default=True,
        description=(
            "Whether the first line holds the column names. Without a header the columns are "
            "named by `columns` (in order) or else `f0`, `f1`, ..."
        ),
    )
    newlines_in_values: bool = Field(
        default=False,
        description=(
            "Not needed any more, kept so that pipelines that set it still load: line breaks "
            "inside quoted values are found file by file (such a file takes the slower "
            "quote-aware path, other files the fast one) whatever this says."
        ),
    )
    encoding: str = Field(default="utf8", description="The character encoding of the files.")
    encoding_errors: Literal["strict", "replace"] = Field(
        default="strict",
        description=(
            "What text that is not valid in `encoding` does: `strict` makes its row a bad row "
            "(the dead letter topic under `errors.tolerance: all`, else the run stops); "
            "`replace` replaces each invalid byte sequence with U+FFFD and keeps the row."
        ),
    )
    null_values: list[str] = Field(
        default_factory=lambda: [""],
        description=(
            "Unquoted field values that mean null, for example `['', 'NULL', 'NA']`. By "
            'default only an empty unquoted field is null; a quoted empty field (`""`) is '
            "always an empty string."
        ),
    )


class CsvSourceTask(FileSourceTask):
    """Reads a CSV file in blocks of whole records, each parsed by Arrow in one call; the
    types come from the first block (see ``_record_blocks``)."""

    def read_blocks(self, file: OpenFile, where: ReadRange) -> Iterator[pa.RecordBatch]:
        config = self.config
        assert isinstance(config, CsvSourceSpec)
        size = line_block_size(file, config.batch_size)
        chunks = line_chunks(
            file, where, size, header=config.header, quote='"', encoding=config.encoding
        )
        # A pass that starts past the header reads the header first, as the line before.
        first_line = where.first_line - (1 if config.header and where.start > 0 else 0)
        utf8 = utf8_chunks(chunks, config.encoding, config.encoding_errors)
        blocks = blocks_of(utf8, size, _QUOTE, first_line)
        names, blocks = _column_names(blocks, config)
        reader = _CsvBlocks(config, names, where.types)
        parser = BlockParser(
            reader.parse,
            reader.settle,
            reader.configured,
            _QUOTE,
            replace_bad_utf8=config.encoding_errors == "replace",
        )

        def report(
            payloads: list[bytes], reasons: list[Exception], places: list[Mapping[str, Any]]
        ) -> None:
            self.context.errors.report_raw(payloads, reasons, places, stage="read")

        yield from parsed_batches(blocks, parser, where.skip_rows, report, file.name)


_QUOTE = b'"'

# Text that an integer or a float type would not give back as it was: a sign "+", leading
# zeros ("08123"), a negative zero.
_CHANGED_BY_NUMBER = r"^(\+|-?0[0-9]|-0$|-0\.0*$)"
# More significant digits than a float keeps exactly (15); such text must equal the float's
# shortest spelling (as written by a program from a float) to stay a float.
_BEYOND_FLOAT = r"[1-9](\.?[0-9]){15}"


def _column_names(
    blocks: Iterator[RawBlock], config: CsvSourceSpec
) -> tuple[list[str] | None, Iterator[RawBlock]]:
    """The file's column names (from its header, ``columns`` or None for Arrow's ``f0``,
    ``f1``, ...) and its blocks after the header."""
    columns = list(config.columns or {})
    if not config.header:
        return (columns or None), blocks
    first = next(blocks, None)
    if first is None:
        return columns, iter(())
    ends = record_ends(first.data, _QUOTE)
    end = int(ends[0]) if ends.size else len(first.data)
    header = arrow_csv.read_csv(
        pa.py_buffer(first.data[:end]),
        parse_options=arrow_csv.ParseOptions(delimiter=config.delimiter),
    )
    rest = RawBlock(first.data[end:], first.first_line + 1, first.quote_aware)
    following = itertools.chain([rest] if rest.data else [], blocks)
    return header.column_names, following


class _CsvBlocks:
    """Arrow's options for the blocks of one CSV file, and how its first block settles the
    types of the others."""

    def __init__(
        self, config: CsvSourceSpec, names: list[str] | None, known: Mapping[str, pa.DataType]
    ) -> None:
        # Types the file's first rows were read with (a pass past them) keep their columns.
        self.configured = {**known, **arrow_column_types(config.columns or {})}
        self._read = dict(column_names=names, autogenerate_column_names=names is None)
        self._parse_options = arrow_csv.ParseOptions(
            delimiter=config.delimiter, newlines_in_values=True
        )
        self._null_values = config.null_values

    def parse(self, data: bytes, types: dict[str, pa.DataType]) -> pa.Table:
        """The rows of ``data`` (whole records) in one Arrow call: one parse block, so that a
        line break inside a quoted value never splits a record."""
        return arrow_csv.read_csv(
            pa.py_buffer(data),
            read_options=arrow_csv.ReadOptions(block_size=len(data) + 1, **self._read),
            parse_options=self._parse_options,
            convert_options=arrow_csv.ConvertOptions(
                column_types=types,
                null_values=self._null_values,
                strings_can_be_null=True,
                quoted_strings_can_be_null=False,
            ),
        )

    def settle(self, first: pa.Table, data: bytes) -> dict[str, pa.DataType]:
        """The types of every column from the first block: an all-null column and one with
        invalid UTF-8 (which Arrow reads as binary) are strings, and so is a number column
        whose text a number would change. Arrow reads every timestamp in nanoseconds; one
        whose values are all whole microseconds (what almost every writer produces) is read in
        microseconds, omconnect's usual unit, and only finer text keeps nanoseconds."""
        types: dict[str, pa.DataType] = {}
        numbers: list[str] = []
        for column in first.schema:
            kind = column.type
            if column.name in self.configured:
                kind = self.configured[column.name]
            elif pa.types.is_null(kind) or pa.types.is_binary(kind):
                kind = pa.string()
            elif pa.types.is_integer(kind) or pa.types.is_floating(kind):
                numbers.append(column.name)
            elif isinstance(kind, pa.TimestampType) and _whole_microseconds(first[column.name]):
                kind = pa.timestamp("us", kind.tz)
            types[column.name] = kind
        if numbers:
            text = self.parse(data, dict.fromkeys(numbers, pa.string()))
            for name in numbers:
                if _changed_by(first[name], text[name]):
                    types[name] = pa.string()
        return types


def _whole_microseconds(values: pa.ChunkedArray) -> bool:
    """Whether a timestamp column in nanoseconds holds whole microseconds only."""
    assert isinstance(values.type, pa.TimestampType)
    if values.type.unit != "ns":
        return False
    ticks = values.cast(pa.int64())
    return bool(pc.all(pc.equal(pc.multiply(pc.divide(ticks, 1000), 1000), ticks)).as_py())


def _changed_by(values: pa.ChunkedArray, text: pa.ChunkedArray) -> bool:
    """Whether some value of a number column reads back as other text than it came from."""
    if pc.any(pc.match_substring_regex(text, _CHANGED_BY_NUMBER)).as_py():
        return True
    if not pa.types.is_floating(values.type):
        return False
    long = pc.match_substring_regex(text, _BEYOND_FLOAT)
    spelled = pc.cast(values, pa.string())
    return bool(pc.any(pc.and_(long, pc.not_equal(spelled, text))).as_py())


class CsvSource(FileSourceConnector):
    """Reads CSV files (a file, a directory or a glob), one batch of rows at a time."""

    name = "csv"
    spec: ClassVar[type[ConnectorSpec]] = CsvSourceSpec
    task_class = CsvSourceTask
    description = "Read CSV files from a path, a directory or a glob."


class CsvSinkSpec(FileSinkSpec):
    """Options of the ``csv`` sink."""

    delimiter: str = Field(
        default=",", min_length=1, max_length=1, description="The character between fields."
    )
    header: bool = Field(
        default=True, description="Whether each file starts with a line of column names."
    )


class _CsvFormat:
    """Arrow's CSV writer; nested columns (structs, lists, maps) cannot be written."""

    def __init__(self, sink: pa.NativeFile, schema: pa.Schema, config: CsvSinkSpec) -> None:
        options = arrow_csv.WriteOptions(include_header=config.header, delimiter=config.delimiter)
        self._writer = arrow_csv.CSVWriter(sink, schema, write_options=options)

    def write(self, batch: pa.RecordBatch) -> None:
        self._writer.write_batch(batch)

    def buffered_bytes(self) -> int:
        return 0

    def close(self) -> None:
        self._writer.close()


class CsvSinkTask(FileSinkTask):
    extension = "csv"

    def open_format(self, sink: pa.NativeFile, schema: pa.Schema) -> FormatWriter:
        assert isinstance(self.config, CsvSinkSpec)
        return _CsvFormat(sink, schema, self.config)


class CsvSink(FileSinkConnector):
    """Writes each topic partition into rolling CSV files in a directory."""

    name = "csv"
    spec: ClassVar[type[ConnectorSpec]] = CsvSinkSpec
    task_class = CsvSinkTask
    description = (
        "Write CSV files into a directory or an S3 prefix, one rolling series per partition."
    )


register(CsvSource)
register(CsvSink)

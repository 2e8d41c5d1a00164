"""The ``csv`` source and sink: delimited text files, read and written by Arrow's CSV engine.

Nulls: an unquoted empty field is null and a quoted empty field (``""``) is an empty string,
the convention of PostgreSQL's ``COPY ... CSV``; the sink writes nulls and empty strings that
way, so files round-trip. ``null_values`` replaces the spellings of null when reading.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import ClassVar

import pyarrow as pa
import pyarrow.csv as arrow_csv
from pydantic import Field

from omconnect.connectors.api import ConnectorError, ConnectorSpec, register
from omconnect.connectors.files._column_types import arrow_column_types
from omconnect.connectors.files._file_cursor import skip_rows
from omconnect.connectors.files._line_blocks import line_block_size
from omconnect.connectors.files._rolling_writer import FormatWriter
from omconnect.connectors.files._sink_task import FileSinkConnector, FileSinkSpec, FileSinkTask
from omconnect.connectors.files._source_connector import FileSourceConnector, TypedColumnsSpec
from omconnect.connectors.files._source_task import FileSourceTask


class CsvSourceSpec(TypedColumnsSpec):
    """Options of the ``csv`` source."""

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
            "Allow line breaks inside quoted values. Reading is slower with it, so it is off "
            "unless a file needs it (the error then names the file and the row)."
        ),
    )
    encoding: str = Field(default="utf8", description="The character encoding of the files.")
    null_values: list[str] = Field(
        default_factory=lambda: [""],
        description=(
            "Unquoted field values that mean null, for example `['', 'NULL', 'NA']`. By "
            'default only an empty unquoted field is null; a quoted empty field (`""`) is '
            "always an empty string."
        ),
    )


class CsvSourceTask(FileSourceTask):
    """Streams a CSV file through Arrow's block reader; types come from the first block."""

    def read_blocks(self, path: Path, start_row: int) -> Iterator[pa.RecordBatch]:
        config = self.config
        assert isinstance(config, CsvSourceSpec)
        columns = config.columns or {}
        column_names = list(columns) if columns and not config.header else None
        read_options = arrow_csv.ReadOptions(
            block_size=line_block_size(path, config.batch_size),
            column_names=column_names,
            autogenerate_column_names=not config.header and not column_names,
            encoding=config.encoding,
        )
        parse_options = arrow_csv.ParseOptions(
            delimiter=config.delimiter, newlines_in_values=config.newlines_in_values
        )
        convert_options = arrow_csv.ConvertOptions(
            column_types=arrow_column_types(columns),
            null_values=config.null_values,
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,
        )

        def open_reader() -> arrow_csv.CSVStreamingReader:
            return arrow_csv.open_csv(
                path,
                read_options=read_options,
                parse_options=parse_options,
                convert_options=convert_options,
            )

        yield from skip_rows(_located_errors(open_reader, path, config), start_row)


_WRONG_FIELD_COUNT = re.compile(r"Expected \d+ columns, got \d+: (.*)$", re.DOTALL)
_BAD_VALUE = re.compile(r"In CSV column #(\d+): .*invalid value '(.*)'$", re.DOTALL)


def _located_errors(
    open_reader: Callable[[], arrow_csv.CSVStreamingReader], path: Path, config: CsvSourceSpec
) -> Iterator[pa.RecordBatch]:
    """The reader's blocks; a parse error gets the line number of the bad line added (the
    reader parses its first block when opened, so opening is inside the check too)."""
    rows = 0
    try:
        for block in open_reader():
            rows += block.num_rows
            yield block
    except pa.ArrowInvalid as err:
        line = _bad_line_number(path, config, str(err), rows)
        where = f"line {line}" if line is not None else f"after row {rows}"
        raise ConnectorError(f"{path}: {where}: {err}") from err


def _bad_line_number(path: Path, config: CsvSourceSpec, message: str, rows: int) -> int | None:
    """The line of ``path`` that Arrow's ``message`` complains about, found by scanning the
    lines after the ``rows`` good ones (the error path only; quoted line breaks and empty lines
    can throw the count off, so it is a hint)."""
    wrong_count = _WRONG_FIELD_COUNT.search(message)
    bad_value = _BAD_VALUE.search(message)
    if wrong_count is None and bad_value is None:
        return None
    first_data_line = 2 if config.header else 1
    with path.open(encoding=config.encoding, errors="replace", newline="") as file:
        for number, text in enumerate(file, start=1):
            if number < first_data_line + rows:
                continue
            line = text.rstrip("\r\n")
            if wrong_count is not None and line == wrong_count.group(1).rstrip("\r\n"):
                return number
            if bad_value is not None:
                fields = line.split(config.delimiter)
                column = int(bad_value.group(1))
                if column < len(fields) and fields[column].strip('"') == bad_value.group(2):
                    return number
    return None


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
    description = "Write CSV files into a directory, one rolling file series per partition."


register(CsvSource)
register(CsvSink)

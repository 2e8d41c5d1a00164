"""The ``parquet`` source and sink.

Reading iterates a file's row groups in batches; resuming inside a file starts at the row group
holding the next row (found from the footer), so it costs no decoding of the rows before it.
Writing buffers rows into row groups of ``row_group_size`` and keeps the omconnect schema
(name, version, key fields) in the file's metadata, so reading the files back gives the same
schema.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar, Literal

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import Field

from omconnect.connectors.api import ConnectorSpec, register
from omconnect.connectors.files._read_range import ReadRange
from omconnect.connectors.files._rolling_writer import FormatWriter
from omconnect.connectors.files._sink_task import FileSinkConnector, FileSinkSpec, FileSinkTask
from omconnect.connectors.files._source_connector import FileSourceConnector, FileSourceSpec
from omconnect.connectors.files._source_task import FileSourceTask


class ParquetSourceSpec(FileSourceSpec):
    """Options of the ``parquet`` source."""


class ParquetSourceTask(FileSourceTask):
    """Reads a Parquet file's row groups as batches, skipping committed row groups unread."""

    lines = False

    def read_blocks(self, path: Path, where: ReadRange) -> Iterator[pa.RecordBatch]:
        with pq.ParquetFile(path) as file:
            metadata = file.metadata
            first_group, skip = 0, where.skip_rows
            while first_group < metadata.num_row_groups:
                rows = metadata.row_group(first_group).num_rows
                if skip < rows:
                    break
                skip -= rows
                first_group += 1
            groups = list(range(first_group, metadata.num_row_groups))
            if not groups:
                return
            batches = file.iter_batches(batch_size=self.config.batch_size, row_groups=groups)
            for batch in batches:
                if skip >= batch.num_rows:
                    skip -= batch.num_rows
                    continue
                yield batch.slice(skip) if skip else batch
                skip = 0

    def unfinished(self, path: Path, error: Exception) -> bool:
        """A Parquet file starts with its magic bytes and ends with its footer and them
        again: one that starts so and does not end so is not complete yet (or cut short)."""
        with path.open("rb") as file:
            start = file.read(len(_MAGIC))
            if len(start) < len(_MAGIC):
                return _MAGIC.startswith(start)
            size = file.seek(0, 2)
            file.seek(max(size - len(_MAGIC), len(_MAGIC)))
            return start == _MAGIC and file.read(len(_MAGIC)) != _MAGIC


_MAGIC = b"PAR1"


class ParquetSource(FileSourceConnector):
    """Reads Parquet files (a file, a directory or a glob)."""

    name = "parquet"
    spec: ClassVar[type[ConnectorSpec]] = ParquetSourceSpec
    task_class = ParquetSourceTask
    description = "Read Parquet files from a path, a directory or a glob."


class ParquetSinkSpec(FileSinkSpec):
    """Options of the ``parquet`` sink."""

    compression: Literal["zstd", "snappy", "gzip", "lz4", "brotli", "none"] = Field(
        default="zstd", description="The compression codec of the column chunks."
    )
    row_group_size: int = Field(
        default=131_072,
        ge=1,
        description=(
            "Rows per row group. Rows are buffered in memory until a row group is full, so "
            "this bounds the memory a sink task uses per open file."
        ),
    )


class _ParquetFormat:
    """A ``ParquetWriter`` that writes whole row groups of ``row_group_size`` rows."""

    def __init__(self, sink: pa.NativeFile, schema: pa.Schema, config: ParquetSinkSpec) -> None:
        self._writer = pq.ParquetWriter(sink, schema, compression=config.compression)
        self._row_group_size = config.row_group_size
        self._pending: list[pa.RecordBatch] = []
        self._pending_rows = 0
        self._pending_bytes = 0

    def write(self, batch: pa.RecordBatch) -> None:
        self._pending.append(batch)
        self._pending_rows += batch.num_rows
        self._pending_bytes += batch.nbytes
        if self._pending_rows >= self._row_group_size:
            self._write_pending(whole_groups_only=True)

    def buffered_bytes(self) -> int:
        return self._pending_bytes

    def close(self) -> None:
        self._write_pending(whole_groups_only=False)
        self._writer.close()

    def _write_pending(self, whole_groups_only: bool) -> None:
        """Write the buffered rows; with ``whole_groups_only`` keep the rows that do not fill
        a whole row group buffered, so every row group but the last has the full size."""
        if not self._pending:
            return
        table = pa.Table.from_batches(self._pending)
        size = self._row_group_size
        ready = (table.num_rows // size) * size if whole_groups_only else table.num_rows
        self._writer.write_table(table.slice(0, ready), row_group_size=size)
        rest = table.slice(ready)
        self._pending = rest.to_batches() if rest.num_rows else []
        self._pending_rows = rest.num_rows
        self._pending_bytes = rest.nbytes


class ParquetSinkTask(FileSinkTask):
    extension = "parquet"

    def open_format(self, sink: pa.NativeFile, schema: pa.Schema) -> FormatWriter:
        assert isinstance(self.config, ParquetSinkSpec)
        return _ParquetFormat(sink, schema, self.config)


class ParquetSink(FileSinkConnector):
    """Writes each topic partition into rolling Parquet files in a directory."""

    name = "parquet"
    spec: ClassVar[type[ConnectorSpec]] = ParquetSinkSpec
    task_class = ParquetSinkTask
    description = "Write Parquet files into a directory, one rolling series per partition."


register(ParquetSource)
register(ParquetSink)

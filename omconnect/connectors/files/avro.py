"""The ``avro`` source and sink: Avro object container files, through fastavro.

Reading decodes fastavro's blocks into Python records and converts them to Arrow a batch at a
time; resuming inside a file skips whole blocks by their record counts without decoding them.
Writing turns each batch into Python records for fastavro's writer. Both convert one Python
dict per row: Avro files are not the bulk path (prefer Parquet for that).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar, Literal

import fastavro
import pyarrow as pa
from fastavro.write import Writer
from pydantic import Field

from omconnect.connectors.api import ConnectorError, ConnectorSpec, register
from omconnect.connectors.files._avro_arrow import (
    arrow_schema_of_avro,
    avro_schema_of_arrow,
    without_uuid_logical_type,
)
from omconnect.connectors.files._read_range import ReadRange
from omconnect.connectors.files._rolling_writer import FormatWriter
from omconnect.connectors.files._sink_task import FileSinkConnector, FileSinkSpec, FileSinkTask
from omconnect.connectors.files._source_connector import FileSourceConnector, FileSourceSpec
from omconnect.connectors.files._source_task import FileSourceTask
from omconnect.schemas.arrow import SCHEMA_KEY, from_arrow_schema


class AvroSourceSpec(FileSourceSpec):
    """Options of the ``avro`` source."""


class AvroSourceTask(FileSourceTask):
    """Reads an Avro container file block by block."""

    lines = False

    def read_blocks(self, path: Path, where: ReadRange) -> Iterator[pa.RecordBatch]:
        with path.open("rb") as file:
            probe = fastavro.block_reader(file)
            writer_schema = probe.writer_schema
            if not isinstance(writer_schema, dict) or writer_schema.get("type") != "record":
                raise ConnectorError(f"{path}: the file's records are not Avro records")
            arrow_schema = arrow_schema_of_avro(writer_schema)
            file.seek(0)
            blocks = fastavro.block_reader(
                file, reader_schema=without_uuid_logical_type(writer_schema)
            )
            pending: list[dict[str, Any]] = []
            skip = where.skip_rows
            for block in blocks:
                if skip >= block.num_records:
                    skip -= block.num_records
                    continue
                records: list[dict[str, Any]] = list(block)  # type: ignore[arg-type]
                pending.extend(records[skip:] if skip else records)
                skip = 0
                if len(pending) >= self.config.batch_size:
                    yield pa.RecordBatch.from_pylist(pending, schema=arrow_schema)
                    pending = []
            if pending:
                yield pa.RecordBatch.from_pylist(pending, schema=arrow_schema)

    def unfinished(self, path: Path, error: Exception) -> bool:
        """An Avro file is written header first, then block by block: one that ends inside
        a block, or inside its header, is not complete yet (or cut short)."""
        if isinstance(error, EOFError):
            return True
        with path.open("rb") as file:
            start = file.read(len(_MAGIC))
        if len(start) < len(_MAGIC):
            return _MAGIC.startswith(start)
        return start == _MAGIC and "header" in str(error)


_MAGIC = b"Obj\x01"


class AvroSource(FileSourceConnector):
    """Reads Avro object container files (a file, a directory or a glob)."""

    name = "avro"
    spec: ClassVar[type[ConnectorSpec]] = AvroSourceSpec
    task_class = AvroSourceTask
    description = "Read Avro container files from a path, a directory or a glob."


class AvroSinkSpec(FileSinkSpec):
    """Options of the ``avro`` sink."""

    compression: Literal["deflate", "snappy", "null"] = Field(
        default="deflate",
        description="The codec of the file's blocks (`null` writes them uncompressed).",
    )


class _AvroFormat:
    """fastavro's container writer; the record name is the omconnect schema's name."""

    def __init__(self, sink: pa.NativeFile, schema: pa.Schema, config: AvroSinkSpec) -> None:
        name = "record"
        if schema.metadata and SCHEMA_KEY in schema.metadata:
            name = from_arrow_schema(schema, name).name
        try:
            avro_schema = fastavro.parse_schema(avro_schema_of_arrow(schema, name))
        except (TypeError, fastavro.schema.SchemaParseException) as err:
            raise ConnectorError(f"cannot write Avro: {err}") from err
        self._map_columns = [f.name for f in schema if pa.types.is_map(f.type)]
        self._writer = Writer(sink, avro_schema, codec=config.compression)

    def write(self, batch: pa.RecordBatch) -> None:
        records = batch.to_pylist()
        for name in self._map_columns:
            # Arrow gives maps as lists of pairs; fastavro wants dicts.
            for record in records:
                if record[name] is not None:
                    record[name] = dict(record[name])
        for record in records:
            self._writer.write(record)

    def buffered_bytes(self) -> int:
        return 0

    def close(self) -> None:
        self._writer.flush()


class AvroSinkTask(FileSinkTask):
    extension = "avro"

    def open_format(self, sink: pa.NativeFile, schema: pa.Schema) -> FormatWriter:
        assert isinstance(self.config, AvroSinkSpec)
        return _AvroFormat(sink, schema, self.config)


class AvroSink(FileSinkConnector):
    """Writes each topic partition into rolling Avro container files in a directory."""

    name = "avro"
    spec: ClassVar[type[ConnectorSpec]] = AvroSinkSpec
    task_class = AvroSinkTask
    description = "Write Avro container files into a directory, one rolling series per partition."


register(AvroSource)
register(AvroSink)

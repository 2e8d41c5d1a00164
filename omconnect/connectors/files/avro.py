"""The ``avro`` source and sink: Avro object container files.

Reading parses the header, skips whole blocks by their record counts when resuming inside a
file, and decodes the blocks a few megabytes at a time with the vectorised codec
(``omconnect.codecs.avro.container``), into the Arrow types of the writer schema as
``omconnect.schemas`` maps them (the same types the ``avro`` converter reads). Writing is the
reverse: each batch is encoded by the vectorised codec (``encode_batch``, one body per row,
no Python object per row) against the Avro schema ``omconnect.schemas`` maps its schema to,
and the bodies are written as blocks of about ``BLOCK_BYTES`` by ``ContainerWriter``, straight
to the file: nothing is buffered, so a batch that fails to encode leaves the file as it was.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar, Literal

import pyarrow as pa
from pydantic import Field

from omconnect.codecs.avro import AvroType, encode_batch
from omconnect.codecs.avro.container import (
    MAGIC,
    Block,
    ContainerWriter,
    decode_blocks,
    read_blocks,
    read_header,
)
from omconnect.connectors.api import ConnectorError, ConnectorSpec, register
from omconnect.connectors.files._file_store import OpenFile
from omconnect.connectors.files._read_range import ReadRange
from omconnect.connectors.files._rolling_writer import FormatWriter
from omconnect.connectors.files._sink_spec import FileSinkConnector, FileSinkSpec
from omconnect.connectors.files._sink_task import FileSinkTask
from omconnect.connectors.files._source_connector import FileSourceConnector, FileSourceSpec
from omconnect.connectors.files._source_task import FileSourceTask
from omconnect.schemas.arrow import from_arrow_schema, to_arrow_schema
from omconnect.schemas.avro import from_avro_schema, to_avro_schema

_CHUNK_BYTES = 8 << 20
"""About how many bytes of (compressed) blocks are decoded together: many blocks side by side
make the codec's steps long, and a few megabytes keep memory bounded."""


class AvroSourceSpec(FileSourceSpec):
    """Options of the ``avro`` source."""


class AvroSourceTask(FileSourceTask):
    """Reads an Avro container file block by block."""

    lines = False

    def read_blocks(self, opened: OpenFile, where: ReadRange) -> Iterator[pa.RecordBatch]:
        with opened.stream() as file:
            header = read_header(file)
            if not isinstance(header.schema, dict) or header.schema.get("type") != "record":
                raise ConnectorError(f"{opened.name}: the file's records are not Avro records")
            arrow_schema = to_arrow_schema(from_avro_schema(header.schema))
            pending: list[Block] = []
            pending_bytes = 0
            skip = where.skip_rows
            blocks = read_blocks(file, header)
            while True:
                try:
                    block = next(blocks, None)
                except (EOFError, ValueError):
                    # The whole blocks before a broken or unfinished one are delivered first.
                    if pending:
                        yield decode_blocks(pending, header.codec, header.schema, arrow_schema)[
                            skip:
                        ]
                    raise
                if block is None:
                    break
                if skip >= block.count and not pending:
                    skip -= block.count
                    continue
                pending.append(block)
                pending_bytes += len(block.data)
                if pending_bytes >= _CHUNK_BYTES:
                    yield decode_blocks(pending, header.codec, header.schema, arrow_schema)[skip:]
                    pending, pending_bytes, skip = [], 0, 0
            if pending:
                yield decode_blocks(pending, header.codec, header.schema, arrow_schema)[skip:]

    def unfinished(self, file: OpenFile, error: Exception) -> bool:
        """An Avro file is written header first, then block by block: one that ends inside
        a block, or inside its header, is not complete yet (or cut short)."""
        if isinstance(error, EOFError):
            return True
        start = file.read_at(0, len(MAGIC))
        if len(start) < len(MAGIC):
            return MAGIC.startswith(start)
        return start == MAGIC and "header" in str(error)


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
    """An Avro container file of one schema; the record name is the omconnect schema's name."""

    def __init__(self, sink: pa.NativeFile, schema: pa.Schema, config: AvroSinkSpec) -> None:
        try:
            self._avro_schema: AvroType = to_avro_schema(from_arrow_schema(schema, "record"))
        except TypeError as err:
            raise ConnectorError(f"cannot write Avro: {err}") from err
        self._writer = ContainerWriter(sink, self._avro_schema, config.compression)

    def write(self, batch: pa.RecordBatch) -> None:
        """Encode the rows and write them as blocks; raises ``UnencodableRowsError`` (a
        ``ValueError`` naming the rows) before writing anything when some rows cannot be
        encoded."""
        self._writer.write_blocks(encode_batch(batch, self._avro_schema))

    def buffered_bytes(self) -> int:
        return 0

    def close(self) -> None:
        """Nothing to add: an Avro container file has no footer, and no block is pending."""


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
    description = (
        "Write Avro container files into a directory or an S3 prefix, one rolling series per "
        "partition."
    )


register(AvroSource)
register(AvroSink)

"""The writing task every file sink shares; a format only says how to write one file.

How the sink learns offsets: each mark of a batch names a topic partition and the offset
after the rows it closes (``{"offset": n}`` means "every message before n"). The rows between
the previous mark (or the batch start) and a mark belong to that mark's partition. For the
first rows of a partition after ``start`` the first offset is the mark's offset minus those
rows; afterwards it is the previous mark's offset for the partition, so files are named
correctly even when rows were dropped (sent to the dead letter topic) on the way.

The task claims its directory on start (``TaskContext.claim_directory``): the runtime locks
it for the run, so two pipelines (or two runs of one) never write one directory, and a second
one is refused with a message naming the first. Before the first rows of a partition are
written, the partition's published files from that first offset on and its temporary files
are deleted: they are what a crashed run wrote but never had committed, and the replay now
writes them again under the same names. Temporary files carry their writer's pid and a
token; without the directory lock (a file system that cannot lock) only those of dead
writers are deleted.

Assignment: ``close(partitions)`` drops the open file of each revoked partition (its
temporary file is deleted, never published) and forgets where the partition stood; files
already published stay, and the partition's next owner deletes those it replays. ``flush``
publishes every open file, so every position it is given is durable, except those of
partitions closed since (their rows were dropped).

Deletes (tombstone rows) follow the ``deletes`` option (see ``_delete_rows``); they count as
messages for the offsets either way, so file names stay the offsets of the messages.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np
import pyarrow as pa
from pydantic import Field

from omconnect.connectors.api import (
    ConfigError,
    ConnectorError,
    ConnectorSpec,
    Position,
    RecordBatch,
    SinkConnector,
    SinkTask,
    TaskContext,
    TopicPartition,
)
from omconnect.connectors.files._delete_rows import DeleteMode, marked_rows
from omconnect.connectors.files._rolling_writer import (
    FormatWriter,
    RollingFileWriter,
    RollLimits,
    writer_token,
)
from omconnect.schemas.arrow import to_arrow_schema


class FileSinkSpec(ConnectorSpec):
    """Options of every file sink (csv, jsonl, parquet, avro)."""

    path: str = Field(
        description=(
            "The directory to write into (created if missing). Each topic partition gets its "
            "own files, named `<topic>-<partition>-<first offset, 20 digits>.<ext>`; files "
            "being written are hidden (`.<name>.<writer>.tmp`) until they are complete. One "
            "pipeline at a time writes a directory: a second one is refused (the lock is "
            "`.omconnect.lock` in the directory)."
        )
    )
    max_rows: int = Field(
        default=1_000_000, ge=1, description="Start a new file after this many rows."
    )
    max_bytes: int = Field(
        default=256 * 1024 * 1024,
        ge=1,
        description="Start a new file once the open one holds about this many bytes.",
    )
    max_age: float = Field(
        default=300.0,
        gt=0,
        description=(
            "Start a new file when the open one is older than this many seconds (checked "
            "when rows arrive). Every flush of the pipeline also completes the open files."
        ),
    )
    deletes: DeleteMode = Field(
        default="skip",
        description=(
            "What a delete (a tombstone: a message with a key and no value) becomes. `skip`: "
            "it is not written; each flush logs how many were skipped. `mark`: it is written "
            "as a row with the key columns set and every other column null, and every row "
            "gets a boolean `__deleted` column, true for deletes and false for the other rows "
            "(Debezium's delete rewrite); the columns other than the key are then nullable. "
            "A delete without a key cannot be marked and goes to the dead letter topic."
        ),
    )


class FileSinkConnector(SinkConnector):
    """A file sink: checks that ``path`` can be a directory; one task per pipeline."""

    spec: ClassVar[type[ConnectorSpec]] = FileSinkSpec

    def validate(self) -> None:
        config = self.config
        assert isinstance(config, FileSinkSpec)
        path = Path(config.path)
        if path.exists() and not path.is_dir():
            raise ConfigError(f"{config.path!r} is a file, not a directory", key="path")


class FileSinkTask(SinkTask):
    """Writes each topic partition into rolling files; subclasses write one format."""

    extension: ClassVar[str]
    config: FileSinkSpec

    @abstractmethod
    def open_format(self, sink: pa.NativeFile, schema: pa.Schema) -> FormatWriter:
        """A writer of this format for a new file. ``schema`` carries the omconnect schema in
        its metadata (``omconnect.schemas.arrow``) for formats that can keep it."""

    def start(self, config: ConnectorSpec, context: TaskContext) -> None:
        """Create the directory and claim it for this run; nothing is deleted until a
        partition's first rows arrive.

        Raises:
            ConnectorError: another pipeline, or another run of this one, writes there.
        """
        assert isinstance(config, FileSinkSpec)
        self.config = config
        self.context = context
        self._directory = Path(config.path)
        self._directory.mkdir(parents=True, exist_ok=True)
        self._exclusive = context.claim_directory(self._directory)
        self._writer = writer_token()
        self._limits = RollLimits(config.max_rows, config.max_bytes, config.max_age)
        self._writers: dict[TopicPartition, RollingFileWriter] = {}
        self._next_offsets: dict[TopicPartition, int] = {}
        self._closed: set[TopicPartition] = set()
        self._skipped_deletes = 0

    def open(self, partitions: Sequence[TopicPartition]) -> None:
        """Nothing to open yet: a partition's writer starts with its first rows, whose offset
        names the file and tells which leftovers to delete."""
        self._closed.difference_update(_topic_partitions(partitions))

    def close(self, partitions: Sequence[TopicPartition]) -> None:
        """Drop the open files of ``partitions`` without publishing them (their temporary
        files are deleted; other partitions' files are not touched)."""
        for key in _topic_partitions(partitions):
            writer = self._writers.pop(key, None)
            if writer is not None:
                writer.abort()
            self._next_offsets.pop(key, None)
            self._closed.add(key)

    def put(self, batch: RecordBatch) -> None:
        """Write the rows of ``batch`` into the open file of their topic partition; asks for
        a commit when a file was rolled on the way.

        Raises:
            ConnectorError: the batch has rows after its last mark (their offsets are
                unknown), a mark is not a topic-partition position, or the format cannot
                hold the rows.
        """
        if batch.num_rows == 0:
            return
        marks = batch.marks
        if not marks or marks[-1].end_row < batch.num_rows:
            raise ConnectorError(
                "file sinks need a position mark after the last row of every batch"
            )
        values, keep = self._rows_to_write(batch)
        start = 0
        rolled = 0
        for mark in marks:
            rows = mark.end_row - start
            end_offset = _offset_of(mark.position)
            key = _topic_partition(mark.position)
            first_offset = self._next_offsets.get(key, end_offset - rows)
            if rows > 0:
                writer = self._writers.get(key) or self._open_partition(key, first_offset)
                segment = values.slice(start, rows)
                if keep is not None:
                    segment = segment.filter(keep[start : mark.end_row])
                rolled += writer.write(segment, first_offset, end_offset)
            self._next_offsets[key] = end_offset
            start = mark.end_row
        if rolled:
            self.context.request_commit()

    def flush(self, positions: Sequence[Position]) -> list[Position]:
        """Publish every open file (footer, fsync, rename, fsync of the directory).

        Returns ``positions`` except those of partitions closed since they were put: every
        row put for the others is now in a published file.
        """
        for writer in self._writers.values():
            writer.publish()
        if self._skipped_deletes:
            self.context.logger.info(
                "%s: skipped %d delete(s) (tombstones) since the last flush (deletes: skip)",
                self.config.path,
                self._skipped_deletes,
            )
            self._skipped_deletes = 0
        return [p for p in positions if _partition_or_none(p) not in self._closed]

    def stop(self) -> None:
        """Drop the files being written; their rows are redelivered after the last commit."""
        for writer in self._writers.values():
            writer.abort()
        self._writers.clear()

    def _rows_to_write(self, batch: RecordBatch) -> tuple[pa.RecordBatch, np.ndarray | None]:
        """The rows of ``batch`` as they are written (with the schema in their metadata),
        and which of them to keep (None: all)."""
        deleted = batch.delete_mask()
        keep = None
        values, schema = batch.values, batch.schema
        if self.config.deletes == "skip":
            if deleted.any():
                self._skipped_deletes += int(deleted.sum())
                keep = ~deleted
        else:
            if deleted.any() and batch.key_columns() is None:
                error = ConnectorError("deletes: mark: a delete (tombstone) without a key")
                self.context.errors.report(batch, np.flatnonzero(deleted).tolist(), error, "sink")
                keep = ~deleted
            values, schema = marked_rows(batch, deleted)
        values = values.replace_schema_metadata(to_arrow_schema(schema).metadata)
        return values, keep

    def _open_partition(self, key: TopicPartition, first_offset: int) -> RollingFileWriter:
        topic, partition = key
        writer = RollingFileWriter(
            self._directory,
            topic,
            partition,
            self.extension,
            self.open_format,
            self._limits,
            self._writer,
        )
        removed = writer.remove_leftovers(first_offset, self._exclusive)
        if removed:
            self.context.logger.info(
                "%s: removed %d uncommitted file(s) of %s-%d from offset %d on",
                self.config.path,
                len(removed),
                topic,
                partition,
                first_offset,
            )
        self._writers[key] = writer
        self._closed.discard(key)
        return writer


def _topic_partitions(partitions: Sequence[TopicPartition]) -> list[TopicPartition]:
    return [TopicPartition(str(topic), int(partition)) for topic, partition in partitions]


def _topic_partition(position: Position) -> TopicPartition:
    try:
        return TopicPartition(
            str(position.partition["topic"]), int(position.partition["partition"])
        )
    except (KeyError, TypeError, ValueError) as err:
        raise ConnectorError(
            f"a sink mark must name {{'topic', 'partition'}}, got {dict(position.partition)}"
        ) from err


def _partition_or_none(position: Position) -> TopicPartition | None:
    try:
        return _topic_partition(position)
    except ConnectorError:
        return None


def _offset_of(position: Position) -> int:
    try:
        return int(position.offset["offset"])
    except (KeyError, TypeError, ValueError) as err:
        raise ConnectorError(
            f"a sink mark must carry {{'offset': n}}, got {dict(position.offset)}"
        ) from err

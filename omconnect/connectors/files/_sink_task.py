"""The writing task every file sink shares; a format only says how to write one file.

How the sink learns offsets: each mark of a batch names a topic partition and the offset
after the rows it closes (``{"offset": n}`` means "every message before n"). The rows between
the previous mark (or the batch start) and a mark belong to that mark's partition. For the
first rows of a partition after ``start`` the first offset is the mark's offset minus those
rows; afterwards it is the previous mark's offset for the partition, so files are named
correctly even when rows were dropped (sent to the dead letter topic) on the way. Each row
gets the offset of its message, and a file is named by its first row's.

Where files go: ``path`` is a local directory or ``s3://bucket/prefix``; the task, the
partitioning, the rolling and the names are the same for both, only how a finished file
becomes visible differs (``_local_destination``: rename of a hidden temporary file;
``_s3_destination``: completion of an upload). With ``partition_by`` (``_partitioning``)
each batch is split into Hive-style directories by Arrow compute, and each directory of each
topic partition has its own rolling file.

A local directory is claimed on start (``TaskContext.claim_directory``): the runtime locks
it for the run, so two pipelines (or two runs of one) never write one directory, and a second
one is refused with a message naming the first. On S3 a lock object does that job
(``_s3_destination``). Before the first rows of a partition are written, the partition's published
files from that first offset on, in every directory, and its unpublished files (temporary
files, incomplete uploads) are deleted: they are what a crashed run wrote but never had
committed, and the replay now writes them again under the same names. Temporary files carry
their writer's pid and a token; without the directory lock (a file system that cannot lock)
only those of dead writers are deleted.

Assignment: ``close(partitions)`` drops the open files of each revoked partition (never
published) and forgets where the partition stood; files already published stay, and the
partition's next owner deletes those it replays. ``flush`` publishes every open file, so
every position it is given is durable, except those of partitions closed since (their rows
were dropped).

Deletes (tombstone rows) follow the ``deletes`` option (see ``_delete_rows``); they count as
messages for the offsets either way, so file names stay the offsets of the messages.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from omconnect.connectors.api import (
    ConnectorError,
    ConnectorSpec,
    Position,
    RecordBatch,
    SinkTask,
    TaskContext,
    TopicPartition,
)
from omconnect.connectors.files._delete_rows import marked_rows
from omconnect.connectors.files._local_destination import LocalDirectory
from omconnect.connectors.files._partitioning import Partitioner, group_rows
from omconnect.connectors.files._rolling_writer import (
    FileDestination,
    FileNames,
    FormatWriter,
    Offsets,
    RollingFileWriter,
    RollLimits,
    writer_token,
)
from omconnect.connectors.files._s3 import S3Location, S3Options, is_s3_path
from omconnect.connectors.files._s3_destination import S3Prefix
from omconnect.connectors.files._sink_spec import FileSinkSpec
from omconnect.schemas.arrow import to_arrow_schema


class FileSinkTask(SinkTask):
    """Writes each topic partition into rolling files; subclasses write one format."""

    extension: ClassVar[str]
    config: FileSinkSpec

    @abstractmethod
    def open_format(self, sink: pa.NativeFile, schema: pa.Schema) -> FormatWriter:
        """A writer of this format for a new file. ``schema`` carries the omconnect schema in
        its metadata (``omconnect.schemas.arrow``) for formats that can keep it."""

    def start(self, config: ConnectorSpec, context: TaskContext) -> None:
        """Claim the destination for this run: create and lock the local directory, or
        create the S3 lock object; nothing is deleted until a partition's first rows arrive.

        Raises:
            ConnectorError: another pipeline, or another run of this one, writes there; or
                the S3 location cannot be used (unreachable, credentials refused, no such
                bucket: the message names the path and what to check).
        """
        assert isinstance(config, FileSinkSpec)
        self.config = config
        self.context = context
        self._writer = writer_token()
        self._destination: FileDestination
        self._s3: S3Prefix | None = None
        if is_s3_path(config.path):
            store = (config.s3 or S3Options()).store()
            location = S3Location.parse(config.path)
            s3 = S3Prefix(store, location, config.upload_part_size, context.logger)
            self._exclusive = s3.claim(context.pipeline)
            self._destination = self._s3 = s3
        else:
            directory = Path(config.path)
            directory.mkdir(parents=True, exist_ok=True)
            self._exclusive = context.claim_directory(directory)
            self._destination = LocalDirectory(directory, self._writer)
        self._partitioner = (
            Partitioner(config.partition_by, config.path) if config.partition_by else None
        )
        self._limits = RollLimits(config.max_rows, config.max_bytes, config.max_age)
        self._writers: dict[TopicPartition, dict[str, RollingFileWriter]] = {}
        self._next_offsets: dict[TopicPartition, int] = {}
        self._closed: set[TopicPartition] = set()
        self._skipped_deletes = 0

    def open(self, partitions: Sequence[TopicPartition]) -> None:
        """Nothing to open yet: a partition's writer starts with its first rows, whose offset
        names the file and tells which leftovers to delete."""
        self._closed.difference_update(_topic_partitions(partitions))

    def close(self, partitions: Sequence[TopicPartition]) -> None:
        """Drop the open files of ``partitions`` without publishing them (their temporary
        files are deleted, their uploads aborted; other partitions' files are not
        touched)."""
        for key in _topic_partitions(partitions):
            for writer in self._writers.pop(key, {}).values():
                writer.abort()
            self._next_offsets.pop(key, None)
            self._closed.add(key)

    def put(self, batch: RecordBatch) -> None:
        """Write the rows of ``batch`` into the open files of their topic partitions (and
        partition directories); asks for a commit when a file was completed on the way.

        Raises:
            ConnectorError: the batch has rows after its last mark (their offsets are
                unknown), a mark is not a topic-partition position, a ``partition_by`` field
                is missing or cannot partition, or the format cannot hold the rows.
        """
        if batch.num_rows == 0:
            return
        marks = batch.marks
        if not marks or marks[-1].end_row < batch.num_rows:
            raise ConnectorError(
                "file sinks need a position mark after the last row of every batch"
            )
        values, keep, key_columns = self._rows_to_write(batch)
        partitions, row_partitions, offsets = self._row_positions(batch)
        if keep is not None:
            values, offsets = values.filter(keep), offsets[keep]
            row_partitions = row_partitions[keep]
            key_columns = [column.filter(keep) for column in key_columns]
        if values.num_rows == 0:
            return
        if len(partitions) > 1:
            key_columns = [pa.array(row_partitions), *key_columns]
        rolled = 0
        if not key_columns:
            rolled += self._writer_of(partitions[0], "").write(values, offsets)
        for group, indices in group_rows(key_columns) if key_columns else []:
            partition = partitions[group[0]] if len(partitions) > 1 else partitions[0]
            directory_values = group[1:] if len(partitions) > 1 else group
            directory = self._partitioner.directory(directory_values) if self._partitioner else ""
            writer = self._writer_of(partition, directory)
            rolled += writer.write(values.take(pa.array(indices)), offsets[indices])
        rolled += self._complete_least_recent()
        if rolled:
            self.context.request_commit()

    def _row_positions(
        self, batch: RecordBatch
    ) -> tuple[list[TopicPartition], npt.NDArray[np.int32], Offsets]:
        """The topic partitions of ``batch`` with rows, and each row's: the index of its
        partition in that list, and its message's offset. A partition's first rows since
        ``start`` (or since it was reopened) first delete its leftovers."""
        partitions: list[TopicPartition] = []
        row_partitions = np.zeros(batch.num_rows, np.int32)
        offsets = np.zeros(batch.num_rows, np.int64)
        # Kept aside until every partition is open: a put retried after a failed cleanup
        # must find the offsets as they were.
        next_offsets: dict[TopicPartition, int] = {}
        start = 0
        for mark in batch.marks:
            rows = mark.end_row - start
            end_offset = _offset_of(mark.position)
            key = _topic_partition(mark.position)
            first_offset = next_offsets.get(key, self._next_offsets.get(key, end_offset - rows))
            if rows > 0:
                if key not in self._writers:
                    self._open_partition(key, first_offset)
                if key not in partitions:
                    partitions.append(key)
                row_partitions[start : mark.end_row] = partitions.index(key)
                offsets[start : mark.end_row] = np.arange(first_offset, first_offset + rows)
            next_offsets[key] = end_offset
            start = mark.end_row
        self._next_offsets.update(next_offsets)
        return partitions, row_partitions, offsets

    def flush(self, positions: Sequence[Position]) -> list[Position]:
        """Publish every open file (locally: footer, fsync, rename, fsync of the directory;
        on S3: footer, last part, completion of the upload).

        Returns ``positions`` except those of partitions closed since they were put: every
        row put for the others is now in a published file.
        """
        for writers in self._writers.values():
            for writer in writers.values():
                writer.publish()
            writers.clear()
        if self._skipped_deletes:
            self.context.logger.info(
                "%s: skipped %d delete(s) (tombstones) since the last flush (deletes: skip)",
                self.config.path,
                self._skipped_deletes,
            )
            self._skipped_deletes = 0
        return [p for p in positions if _partition_or_none(p) not in self._closed]

    def stop(self) -> None:
        """Drop the files being written (their rows are redelivered after the last commit)
        and give the S3 lock object up."""
        for writers in self._writers.values():
            for writer in writers.values():
                writer.abort()
        self._writers.clear()
        if self._s3 is not None:
            self._s3.release()

    def _rows_to_write(
        self, batch: RecordBatch
    ) -> tuple[pa.RecordBatch, np.ndarray | None, list[pa.Array]]:
        """The rows of ``batch`` as they are written (with the schema in their metadata,
        without the columns of value partitions), which of them to keep (None: all), and
        the ``partition_by`` key columns of all rows."""
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
        key_columns: list[pa.Array] = []
        if self._partitioner is not None:
            key_columns = self._partitioner.key_columns(values)
            dropped = set(self._partitioner.value_fields)
            values = values.drop_columns([n for n in values.schema.names if n in dropped])
            schema = schema.with_fields([f for f in schema.fields if f.name not in dropped])
        values = values.replace_schema_metadata(to_arrow_schema(schema).metadata)
        return values, keep, key_columns

    def _open_partition(self, key: TopicPartition, first_offset: int) -> None:
        """Start writing ``key``: delete what a crashed run left of it from ``first_offset``."""
        topic, partition = key
        names = FileNames(topic, partition, self.extension)
        removed = self._destination.remove_leftovers(names, first_offset, self._exclusive)
        if removed:
            self.context.logger.info(
                "%s: removed %d uncommitted file(s) of %s-%d from offset %d on",
                self.config.path,
                len(removed),
                topic,
                partition,
                first_offset,
            )
        self._writers[key] = {}
        self._closed.discard(key)

    def _writer_of(self, key: TopicPartition, directory: str) -> RollingFileWriter:
        writers = self._writers[key]
        writer = writers.get(directory)
        if writer is None:
            topic, partition = key
            writer = writers[directory] = RollingFileWriter(
                self._destination,
                topic,
                partition,
                self.extension,
                self.open_format,
                self._limits,
                self._writer,
                directory,
            )
        return writer

    def _complete_least_recent(self) -> int:
        """Publish the least recently written files past ``max_open_files``; how many."""
        open_writers = [
            w for writers in self._writers.values() for w in writers.values() if w.is_open
        ]
        excess = len(open_writers) - self.config.max_open_files
        if excess <= 0:
            return 0
        for writer in sorted(open_writers, key=lambda w: w.last_write)[:excess]:
            writer.publish()
        return excess


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

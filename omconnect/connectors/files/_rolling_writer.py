"""The files of one topic partition in one directory: rolled by size and age, published whole.

A file is named by the offset of the first message it holds,
``<topic>-<partition>-<first offset, 20 digits>.<ext>``, so that a replay after a crash
writes the same names again and overwrites instead of duplicating. Where a file goes while
it is written and how it becomes visible is the destination's business (a ``FileDestination``:
a local directory renames a hidden temporary file, an S3 prefix completes an upload); a final
name never shows a torn file either way.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from omconnect.connectors.api import ConnectorError

_OFFSET_DIGITS = 20

Offsets = npt.NDArray[np.int64]
"""The offset of the message of each row."""


class FormatWriter(Protocol):
    """Writes the rows of one open file in one format."""

    def write(self, batch: pa.RecordBatch) -> None:
        """Append rows (all batches of a file share its schema)."""
        ...

    def buffered_bytes(self) -> int:
        """Bytes accepted but not yet handed to the file (a row group being built)."""
        ...

    def close(self) -> None:
        """Write what is buffered and the footer. Must not close the file itself."""
        ...


OpenFormat = Callable[[pa.NativeFile, pa.Schema], FormatWriter]


class PendingFile(Protocol):
    """A file being written, invisible to readers until ``publish``."""

    @property
    def sink(self) -> pa.NativeFile:
        """Where the format writes the file's bytes."""
        ...

    @property
    def location(self) -> str | Path:
        """Where the file becomes visible: its path, or its ``s3://`` URL."""
        ...

    def publish(self) -> None:
        """Close ``sink`` and make the file visible under its final name, durably."""
        ...

    def abort(self) -> None:
        """Close ``sink`` and drop what was written; the final name is not touched."""
        ...


class FileDestination(Protocol):
    """Where a file sink's finished files go: a local directory or an S3 prefix."""

    def open(self, directory: str, name: str) -> PendingFile:
        """Start the file ``name`` in ``directory`` (relative, ``""`` for the top)."""
        ...

    def remove_leftovers(
        self, names: FileNames, from_offset: int, exclusive: bool
    ) -> list[str | Path]:
        """Delete, under every directory, the published files of ``names`` from
        ``from_offset`` on and what unpublished writes of them left (what a crashed run wrote
        but never had committed). ``exclusive``: no other writer uses the destination now.
        Returns what was deleted."""
        ...


@dataclass(frozen=True)
class RollLimits:
    """When an open file is published and the next one started."""

    max_rows: int
    max_bytes: int
    max_age: float


def final_name(topic: str, partition: int, first_offset: int, extension: str) -> str:
    """The published name of the file of ``topic``/``partition`` starting at ``first_offset``."""
    return f"{_name_prefix(topic, partition)}{first_offset:0{_OFFSET_DIGITS}d}.{extension}"


# File names stay under the usual 255-byte limit with the offset, the extension and the
# temporary suffix added: a longer topic keeps its first characters and a digest of the rest.
_TOPIC_NAME_BYTES = 160


def _name_prefix(topic: str, partition: int) -> str:
    safe_topic = topic.replace("/", "_").replace(os.sep, "_")
    if len(safe_topic.encode()) > _TOPIC_NAME_BYTES:
        digest = hashlib.blake2b(topic.encode(), digest_size=8).hexdigest()
        safe_topic = f"{safe_topic[: _TOPIC_NAME_BYTES - 17]}~{digest}"
    return f"{safe_topic}-{partition}-"


class FileNames:
    """The published file names of one topic partition in one format."""

    def __init__(self, topic: str, partition: int, extension: str) -> None:
        self.topic = topic
        self.partition = partition
        self.extension = extension
        self.pattern = re.compile(
            re.escape(_name_prefix(topic, partition))
            + rf"(\d{{{_OFFSET_DIGITS}}})\."
            + re.escape(extension)
        )
        """Matches a published name; its group 1 is the first offset."""

    def final(self, first_offset: int) -> str:
        return final_name(self.topic, self.partition, first_offset, self.extension)

    def offset_of(self, name: str) -> int | None:
        """The first offset of the published file ``name``, None for another name."""
        found = self.pattern.fullmatch(name)
        return int(found.group(1)) if found else None


def sync_directory(directory: Path) -> None:
    """Make renames and deletions in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def writer_token() -> str:
    """Names one writer in its temporary files: ``<pid>-<random hex>``."""
    return f"{os.getpid()}-{secrets.token_hex(4)}"


class _OpenFile:
    def __init__(
        self, name: str, pending: PendingFile, schema: pa.Schema, opener: OpenFormat
    ) -> None:
        self.name = name
        self.pending = pending
        self.schema = schema
        try:
            self.format = opener(pending.sink, schema)
        except BaseException:
            pending.abort()
            raise
        self.rows = 0
        self.opened_at = time.monotonic()

    def size(self) -> int:
        return self.pending.sink.tell() + self.format.buffered_bytes()


class RollingFileWriter:
    """Writes one topic partition's rows into a sequence of files in one directory.

    Args:
        destination: where the files go: a local directory (exists), or a destination such
            as an S3 prefix.
        topic: the topic the rows come from.
        partition: the topic partition.
        extension: the file name extension (``parquet``, ``csv`` ...).
        open_format: makes the format writer of a new file.
        limits: when to publish the open file and start another.
        writer: this writer's name in its temporary files (``writer_token()``).
        directory: the directory under ``destination`` (a Hive-style partition path such as
            ``region=eu``), ``""`` for the top.

    Attributes:
        published: how many files this writer has published so far.
        last_write: when rows were last written (``time.monotonic()``).
    """

    def __init__(
        self,
        destination: Path | FileDestination,
        topic: str,
        partition: int,
        extension: str,
        open_format: OpenFormat,
        limits: RollLimits,
        writer: str | None = None,
        directory: str = "",
    ) -> None:
        self.writer = writer or writer_token()
        if isinstance(destination, Path):
            # Imported here: _local_destination builds on this module's names.
            from omconnect.connectors.files._local_destination import LocalDirectory

            destination = LocalDirectory(destination, self.writer)
        self.destination = destination
        self.names = FileNames(topic, partition, extension)
        self.directory = directory
        self._open_format = open_format
        self._limits = limits
        self._file: _OpenFile | None = None
        self.published = 0
        self.last_write = time.monotonic()

    @property
    def is_open(self) -> bool:
        """Whether a file is being written (rows not yet published)."""
        return self._file is not None

    def remove_leftovers(self, from_offset: int, exclusive: bool = True) -> list[str | Path]:
        """Delete this partition's published files starting at ``from_offset`` or later, and
        what unpublished writes left (see ``FileDestination.remove_leftovers``)."""
        return self.destination.remove_leftovers(self.names, from_offset, exclusive)

    def write(
        self, values: pa.RecordBatch, first_offset: int | Offsets, end_offset: int | None = None
    ) -> int:
        """Write rows; returns how many files were published (rolled) on the way.

        ``first_offset`` is the offset of each row's message, or, for rows of consecutive
        messages, the first one's (``end_offset``, the offset after them, is then implied).
        A file is named by the offset of its first row.

        A change of schema, ``max_rows``, ``max_bytes`` and ``max_age`` publish the open file
        first; a batch larger than the room left is split across files.

        Raises:
            ConnectorError: the format cannot hold the rows (naming the file).
        """
        published_before = self.published
        self.last_write = time.monotonic()
        start = 0
        while start < values.num_rows:
            offset = (
                first_offset + start if isinstance(first_offset, int) else int(first_offset[start])
            )
            file = self._file_for(values.schema, offset)
            take = min(values.num_rows - start, self._limits.max_rows - file.rows)
            try:
                file.format.write(values.slice(start, take))
            except (pa.ArrowException, ValueError, TypeError, OverflowError) as err:
                raise ConnectorError(f"{file.name}: cannot write rows: {err}") from err
            file.rows += take
            start += take
            if file.rows >= self._limits.max_rows or file.size() >= self._limits.max_bytes:
                self.publish()
        return self.published - published_before

    def publish(self) -> str | Path | None:
        """Complete the open file and make it visible under its final name (if one is open);
        returns where it is."""
        file = self._file
        if file is None:
            return None
        self._file = None
        try:
            file.format.close()
        except BaseException:
            file.pending.abort()
            raise
        file.pending.publish()
        self.published += 1
        return file.pending.location

    def abort(self) -> None:
        """Drop the open file without publishing it (its rows were never committed)."""
        file = self._file
        self._file = None
        if file is not None:
            # The format writer still owns buffers that point at the file: close it first
            # (its output is thrown away with the file).
            with contextlib.suppress(Exception):
                file.format.close()
            file.pending.abort()

    def _file_for(self, schema: pa.Schema, first_offset: int) -> _OpenFile:
        file = self._file
        if file is not None and (
            not file.schema.equals(schema, check_metadata=False)
            or time.monotonic() - file.opened_at >= self._limits.max_age
        ):
            self.publish()
            file = None
        if file is None:
            name = self.names.final(first_offset)
            pending = self.destination.open(self.directory, name)
            # Errors name the file as it is under the sink's path: `region=eu/t-0-....csv`.
            where = f"{self.directory}/{name}" if self.directory else name
            file = self._file = _OpenFile(where, pending, schema, self._open_format)
        return file

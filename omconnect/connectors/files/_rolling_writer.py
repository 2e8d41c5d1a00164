"""The files of one topic partition: written under a temporary name, published atomically.

A file is named by the first message offset it holds,
``<topic>-<partition>-<first offset, 20 digits>.<ext>``, so that a replay after a crash
writes the same names again and overwrites instead of duplicating. While it is written it is
``.<final name>.<writer>.tmp`` (hidden: sources and readers skip it), where ``<writer>`` is
the writing process's pid and a random token: a writer only ever renames or deletes its own
temporary files, and deletes another's only when it knows that writer is gone (it holds the
directory's lock, or the pid is dead). Publishing a file closes its
format writer (the footer), fsyncs it, renames it to its final name and fsyncs the directory,
so a final name never shows a torn file, even after a power loss.
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

import pyarrow as pa

from omconnect.connectors.api import ConnectorError

_OFFSET_DIGITS = 20


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


def _writer_is_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    return True


class _OpenFile:
    def __init__(
        self, directory: Path, name: str, writer: str, schema: pa.Schema, opener: OpenFormat
    ) -> None:
        self.final = directory / name
        self.temp = directory / f".{name}.{writer}.tmp"
        self.schema = schema
        self.sink = pa.OSFile(str(self.temp), "wb")
        self.format = opener(self.sink, schema)
        self.rows = 0
        self.opened_at = time.monotonic()

    def size(self) -> int:
        return self.sink.tell() + self.format.buffered_bytes()


class RollingFileWriter:
    """Writes one topic partition's rows into a sequence of files in ``directory``.

    Args:
        directory: where the files go (exists).
        topic: the topic the rows come from.
        partition: the topic partition.
        extension: the file name extension (``parquet``, ``csv`` ...).
        open_format: makes the format writer of a new file.
        limits: when to publish the open file and start another.
        writer: this writer's name in its temporary files (``writer_token()``).

    Attributes:
        published: how many files this writer has published so far.
    """

    def __init__(
        self,
        directory: Path,
        topic: str,
        partition: int,
        extension: str,
        open_format: OpenFormat,
        limits: RollLimits,
        writer: str | None = None,
    ) -> None:
        self.directory = directory
        self.topic = topic
        self.partition = partition
        self.extension = extension
        self._open_format = open_format
        self._limits = limits
        self.writer = writer or writer_token()
        self._file: _OpenFile | None = None
        self._next_offset = 0
        self.published = 0
        prefix = _name_prefix(topic, partition)
        self._finished = re.compile(
            re.escape(prefix) + rf"(\d{{{_OFFSET_DIGITS}}})\." + re.escape(extension)
        )
        # Without the writer part: a temporary file of an older version.
        self._temp = re.compile(r"\." + self._finished.pattern + r"(?:\.(\d+)-[0-9a-f]+)?\.tmp")

    def remove_leftovers(self, from_offset: int, exclusive: bool = True) -> list[Path]:
        """Delete this partition's published files starting at ``from_offset`` or later, and
        its temporary files: what a crashed run wrote but never had committed.

        ``exclusive`` says that no other writer uses the directory now (this run holds its
        lock); otherwise only temporary files whose writer's pid is dead are deleted.

        Returns the deleted paths.
        """
        removed = []
        for entry in self.directory.iterdir():
            found = self._finished.fullmatch(entry.name)
            stale_published = found is not None and int(found.group(1)) >= from_offset
            temp = self._temp.fullmatch(entry.name)
            stale_temp = temp is not None and (
                exclusive or temp.group(2) is None or not _writer_is_alive(int(temp.group(2)))
            )
            if stale_published or stale_temp:
                entry.unlink(missing_ok=True)
                removed.append(entry)
        if removed:
            sync_directory(self.directory)
        return removed

    def write(self, values: pa.RecordBatch, first_offset: int, end_offset: int) -> int:
        """Write rows holding the messages ``[first_offset, end_offset)``; returns how many
        files were published (rolled) on the way.

        A change of schema, ``max_rows``, ``max_bytes`` and ``max_age`` publish the open file
        first; a batch larger than the room left is split across files.

        Raises:
            ConnectorError: the format cannot hold the rows (naming the file).
        """
        published_before = self.published
        self._next_offset = first_offset
        start = 0
        while start < values.num_rows:
            file = self._file_for(values.schema)
            take = min(values.num_rows - start, self._limits.max_rows - file.rows)
            try:
                file.format.write(values.slice(start, take))
            except (pa.ArrowException, ValueError, TypeError, OverflowError) as err:
                raise ConnectorError(f"{file.final.name}: cannot write rows: {err}") from err
            file.rows += take
            start += take
            self._next_offset += take
            if file.rows >= self._limits.max_rows or file.size() >= self._limits.max_bytes:
                self.publish()
        self._next_offset = end_offset
        return self.published - published_before

    def publish(self) -> Path | None:
        """Close the open file, make it durable and give it its final name (if one is open)."""
        file = self._file
        if file is None:
            return None
        self._file = None
        file.format.close()
        file.sink.close()
        fd = os.open(file.temp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(file.temp, file.final)
        sync_directory(self.directory)
        self.published += 1
        return file.final

    def abort(self) -> None:
        """Drop the open file without publishing it (its rows were never committed). Only
        this writer's own temporary file is deleted."""
        file = self._file
        self._file = None
        if file is not None:
            # The format writer still owns buffers that point at the file: close it first
            # (its output is thrown away with the file).
            with contextlib.suppress(Exception):
                file.format.close()
            file.sink.close()
            file.temp.unlink(missing_ok=True)

    def _file_for(self, schema: pa.Schema) -> _OpenFile:
        file = self._file
        if file is not None and (
            not file.schema.equals(schema, check_metadata=False)
            or time.monotonic() - file.opened_at >= self._limits.max_age
        ):
            self.publish()
            file = None
        if file is None:
            name = final_name(self.topic, self.partition, self._next_offset, self.extension)
            file = self._file = _OpenFile(
                self.directory, name, self.writer, schema, self._open_format
            )
        return file

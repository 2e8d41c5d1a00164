"""Where a file source's files live: a local directory tree or an S3 bucket.

A ``FileStore`` is what the reading task knows of a place that holds files: it lists the files
``path`` names (``StoredFile``: partition string, size, modification time, ETag), opens one
for reading (``OpenFile``: positional reads for the line formats and fingerprints, a random
access Arrow file for Parquet, a buffered stream for Avro) and says whether an access failure
is the store's problem (a network or permission error, which stops or retries the task)
rather than the file's (which sends the file to the dead letter topic). Pass planning,
positions, fingerprints and parsing are the same for every store; only listing and opening
differ. ``LocalFileStore`` is the local implementation; ``_s3_objects.S3ObjectStore`` the S3 one.
"""

from __future__ import annotations

import io
import os
import re
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, ClassVar

import pyarrow as pa

from omconnect.connectors.api import ConfigError, ConnectorError
from omconnect.connectors.files._glob import is_glob, match_files, search_root
from omconnect.connectors.files._s3 import S3Options, is_s3_path

# Read-ahead of the stream a format reads sequentially (Avro): one read of the store each.
STREAM_BUFFER_BYTES = 4 << 20


@dataclass(frozen=True, order=True)
class StoredFile:
    """One file of a store as listed (or as opened). Ordered by ``name``, the reading order.

    Attributes:
        name: the partition string: the local path spelled like the ``path`` option, or
            ``s3://bucket/key``.
        location: where the store opens it (a local path, an object key).
        size: its size in bytes.
        mtime_ns: its modification time (S3: whole seconds).
        etag: the object's ETag (S3); None for local files.
    """

    name: str
    location: str = field(compare=False)
    size: int = field(compare=False)
    mtime_ns: int = field(compare=False)
    etag: str | None = field(default=None, compare=False)


class OpenFile:
    """One file opened for reading, as it was when opened; closed by whoever opened it.

    Reads at a byte offset are safe from several threads at once (a line format's parse
    thread reads while the task plans).
    """

    def __init__(self, stored: StoredFile, native: pa.NativeFile, read_ahead: int = 0) -> None:
        """``read_ahead``: when not 0, a positional read shorter than it fetches that many
        bytes from its start, and the reads that follow within them are served from memory
        (the last two such windows are kept)."""
        self.stored = stored
        self._native = native
        self._read_ahead = read_ahead
        self._windows: list[tuple[int, bytes]] = []
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        """The file's partition string."""
        return self.stored.name

    @property
    def size(self) -> int:
        """The file's size when opened."""
        return self.stored.size

    def read_at(self, start: int, size: int) -> bytes:
        """Up to ``size`` bytes from byte ``start`` (fewer at the file's end)."""
        if size <= 0:
            return b""
        if not 0 < size < self._read_ahead:
            return self._native.read_at(size, start)
        with self._lock:
            for begin, data in self._windows:
                if begin <= start and start + size <= begin + len(data):
                    return data[start - begin : start - begin + size]
            data = self._native.read_at(self._read_ahead, start)
            self._windows = [*self._windows[-1:], (start, data)]
        return data[:size]

    def arrow_file(self) -> pa.NativeFile:
        """The file as an Arrow random access file (for Parquet)."""
        return self._native

    def stream(self) -> IO[bytes]:
        """The file from its start as a buffered, seekable stream (for Avro). Closing the
        stream leaves the file open."""
        self._native.seek(0)
        return io.BufferedReader(_Borrowed(self._native), STREAM_BUFFER_BYTES)

    def close(self) -> None:
        self._native.close()

    def __enter__(self) -> OpenFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Borrowed(io.RawIOBase):
    """An Arrow file as a raw Python stream that does not close it."""

    def __init__(self, native: pa.NativeFile) -> None:
        self._native = native

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        return int(self._native.readinto(buffer))

    def seek(self, offset: int, whence: int = 0) -> int:
        return int(self._native.seek(offset, whence))

    def tell(self) -> int:
        return int(self._native.tell())


class FileStore(ABC):
    """The files a file source's ``path`` names, where they live.

    Attributes:
        path: the ``path`` option.
        whole_when_listed: whether a file is complete once it can be listed (S3 objects
            appear whole): a last line without a line break, or a Parquet file without its
            footer, is then not waited for.
    """

    whole_when_listed: ClassVar[bool] = False

    def __init__(self, path: str) -> None:
        self.path = path

    @abstractmethod
    def list(self) -> list[StoredFile]:
        """The files ``path`` names now, sorted by name (empty when there are none)."""

    @abstractmethod
    def open(self, file: StoredFile) -> OpenFile:
        """``file`` opened for reading, with its size (and ETag) as it is now.

        Raises:
            FileNotFoundError: it is gone.
        """

    @abstractmethod
    def stat(self, file: StoredFile) -> StoredFile | None:
        """``file`` as it is now; None when it is gone."""

    @abstractmethod
    def check(self) -> None:
        """Refuse a ``path`` that can never name a file (``ConfigError``). Called by
        ``validate()``; a store that cannot be reached now is left to the task."""

    @abstractmethod
    def schema_name(self) -> str:
        """A record name for what ``path`` reads, stable across its files."""

    def access_error(self, error: BaseException) -> ConnectorError | None:
        """The error to stop (or retry) the task with when reading a file failed with
        ``error`` because the store could not be read, not the file parsed; None: the
        file's own problem."""
        return None


class LocalFileStore(FileStore):
    """Files on the local file system: a file, a directory's files or a glob."""

    def list(self) -> list[StoredFile]:
        found = []
        for matched in match_files(self.path):
            try:
                stat = matched.path.stat()
            except FileNotFoundError:
                continue
            found.append(
                StoredFile(matched.name, str(matched.path), stat.st_size, stat.st_mtime_ns)
            )
        return found

    def open(self, file: StoredFile) -> OpenFile:
        native = pa.OSFile(file.location, "r")
        stat = os.fstat(native.fileno())
        return OpenFile(replace(file, size=stat.st_size, mtime_ns=stat.st_mtime_ns), native)

    def stat(self, file: StoredFile) -> StoredFile | None:
        try:
            stat = os.stat(file.location)
        except FileNotFoundError:
            return None
        return replace(file, size=stat.st_size, mtime_ns=stat.st_mtime_ns)

    def check(self) -> None:
        """Refuse a ``path`` whose directory does not exist; an existing directory with no
        matching file is fine: there is nothing to read yet."""
        if match_files(self.path):
            return
        root = search_root(self.path)
        if not root.is_dir():
            what = "directory" if is_glob(self.path) or self.path.endswith("/") else "path"
            raise ConfigError(
                f"no files match {self.path!r}: the {what} {str(root)!r} does not exist",
                key="path",
            )

    def schema_name(self) -> str:
        """The file's stem for a single file (``orders.csv`` -> ``orders``), else the name of
        the directory searched (``data/orders/*.csv`` -> ``orders``)."""
        pattern = self.path
        if not is_glob(pattern) and not Path(pattern).is_dir():
            return record_name(Path(pattern).stem)
        return record_name(search_root(pattern).resolve().name)


_NOT_IDENTIFIER = re.compile(r"[^A-Za-z0-9_]")


def record_name(stem: str) -> str:
    """``stem`` as a record name: only letters, digits and ``_`` remain, so that it is also a
    valid Avro record name."""
    name = _NOT_IDENTIFIER.sub("_", stem) or "records"
    return f"_{name}" if name[0].isdigit() else name


def file_store(path: str, s3: S3Options | None) -> FileStore:
    """The store of a file source's ``path`` and ``s3`` options.

    Raises:
        ConfigError: ``s3`` options with a local ``path``, or an ``s3://`` path without a
            bucket.
    """
    if is_s3_path(path):
        from omconnect.connectors.files._s3_objects import S3ObjectStore

        return S3ObjectStore(path, s3 or S3Options())
    if s3 is not None:
        raise ConfigError(
            f"s3 options are given but path {path!r} is local: write path as "
            "s3://BUCKET/PREFIX, or leave out the s3 options",
            key="s3",
        )
    return LocalFileStore(path)

"""The reading task every file source shares; a format only says how to read one file.

Files are read one after the other in sorted order. On start the task asks the offsets of
each file: a file whose offset says ``complete`` is not reopened, any other resumes after the
committed ``row``. Under ``run --once`` the task reads the files there at start and then
returns None; running continuously it scans ``path`` again every ``poll_interval`` seconds
and reads the files it has not seen (files that grow after being read are not read again).
"""

from __future__ import annotations

import time
from abc import abstractmethod
from collections import deque
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa

from omconnect.connectors.api import ConnectorSpec, PollResult, SourceTask, TaskContext
from omconnect.connectors.files._file_cursor import FileCursor
from omconnect.connectors.files._glob import MatchedFile, match_files
from omconnect.connectors.files._source_connector import FileSourceSpec, schema_name_of

# How long one poll may wait for new files, so that an idle source does not spin.
_IDLE_WAIT_SECONDS = 0.5


class FileSourceTask(SourceTask):
    """Reads the files of a file source's ``path``; subclasses read one file's format."""

    config: FileSourceSpec

    @abstractmethod
    def read_blocks(self, path: Path, start_row: int) -> Iterator[pa.RecordBatch]:
        """The rows of the file at ``path`` from row ``start_row`` on, as record batches.

        Called on the polling thread. Blocks may hold any number of rows (the task slices
        them to ``batch_size``); the first block's schema is the file's schema. Errors raised
        while iterating are reported with the file's name and the row reached.
        """

    def start(self, config: ConnectorSpec, context: TaskContext) -> None:
        """Find the files to read and which of them the committed offsets already cover."""
        assert isinstance(config, FileSourceSpec)
        self.config = config
        self.context = context
        self._schema_name = schema_name_of(config.path)
        self._queue: deque[MatchedFile] = deque()
        self._seen: set[str] = set()
        self._cursor: FileCursor | None = None
        self._last_scan = 0.0
        self._scan()

    def poll(self) -> PollResult:
        """The next batch of the current file, opening the next file when one ends."""
        while True:
            if self._cursor is None:
                self._cursor = self._open_next()
                if self._cursor is None:
                    self._wait_for_new_files()
                    return None
            batch = self._cursor.next_batch()
            if batch is not None:
                return batch
            self._cursor = None

    def stop(self) -> None:
        self._cursor = None
        self._queue.clear()

    def _scan(self) -> None:
        self._last_scan = time.monotonic()
        for file in match_files(self.config.path):
            if file.name not in self._seen:
                self._seen.add(file.name)
                self._queue.append(file)

    def _open_next(self) -> FileCursor | None:
        while self._queue:
            file = self._queue.popleft()
            committed = self.context.offsets.get({"file": file.name}) or {}
            if committed.get("complete"):
                continue
            start_row = int(committed.get("row", 0))
            return FileCursor(
                file,
                self.read_blocks(file.path, start_row),
                start_row,
                self.config.batch_size,
                self._schema_name,
                self.config.key,
            )
        return None

    def _wait_for_new_files(self) -> None:
        """Running continuously, scan ``path`` again once ``poll_interval`` has passed."""
        if self.context.once:
            return
        wait = self._last_scan + self.config.poll_interval - time.monotonic()
        if wait > 0:
            time.sleep(min(wait, _IDLE_WAIT_SECONDS))
            if time.monotonic() < self._last_scan + self.config.poll_interval:
                return
        self._scan()

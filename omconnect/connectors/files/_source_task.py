"""The reading task every file source shares; a format only says how to read one file.

Files live in a store (``_file_store``: local files, or S3 objects), the same code reads
both. Files are read in sorted order, each in *passes*. On start, and under ``run --once``
only then, the task lists ``path``; running continuously it lists it again every
``poll_interval`` seconds. A listed file is read when it holds something its position (see
``_file_position``) does not cover; what a pass reads (a new file from its start, a grown line
file on from where the last pass stopped, a changed file per ``on_file_change``) is planned by
``_pass_plan``.

A file whose size and modification time (and ETag) did not change since its position was
taken is not opened at all.

A file that cannot be read (an unparsable Parquet or Avro file, a first block that fails, a
block that does not fit the file's types) goes to the dead letter topic as a whole, or from
where reading failed, with its name and the reason (``ErrorReporter.report_raw``; under
``errors.tolerance: none`` that stops the run, after what was delivered before it is
committed). Its position is then committed as done, with its fingerprint, so it is not
tried again until it changes. A Parquet or Avro file that is empty or cut short (a writer
not done yet) is not broken but not ready: it is left for a later scan or run, until it has
not changed for ``SETTLE_SECONDS``.

A store that cannot be read (S3 unreachable, access denied) is not the file's fault: the task
fails with the store's error (retried by the runtime when it may pass) and reads the file
again, on from the rows it delivered, when it is called again.
"""

from __future__ import annotations

import time
from abc import abstractmethod
from collections import deque
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

import pyarrow as pa

from omconnect.connectors.api import (
    ConfigError,
    ConnectorError,
    ConnectorSpec,
    PollResult,
    RecordBatch,
    SourceTask,
    TaskContext,
)
from omconnect.connectors.files._file_cursor import position_only
from omconnect.connectors.files._file_position import FilePosition
from omconnect.connectors.files._file_store import OpenFile, StoredFile, file_store
from omconnect.connectors.files._line_blocks import encoded
from omconnect.connectors.files._pass_plan import SETTLE_SECONDS, Pass, PassPlanner
from omconnect.connectors.files._read_range import ReadRange
from omconnect.connectors.files._source_connector import FileSourceSpec

# How long one poll may wait for new files, so that an idle source does not spin.
_IDLE_WAIT_SECONDS = 0.5


class FileSourceTask(PassPlanner, SourceTask):
    """Reads the files of a file source's ``path``; subclasses read one file's format.

    Attributes:
        lines: whether the format is made of lines that writers append to (csv, jsonl);
            otherwise files are read whole (parquet, avro).
    """

    config: FileSourceSpec
    lines: ClassVar[bool] = True

    @abstractmethod
    def read_blocks(self, file: OpenFile, where: ReadRange) -> Iterator[pa.RecordBatch]:
        """The rows of the part ``where`` of ``file``, as record batches.

        Called on the polling thread; ``file`` stays open until the pass ends. Read it in
        parts (``read_at``, ``stream``, ``arrow_file``), never whole. Blocks may hold any
        number of rows (the task slices them to ``batch_size``); the first block's schema
        is the file's schema. A line
        format reads with ``_line_blocks.line_chunks``, which sets ``where.reached``. Errors
        raised while iterating are reported with the file's name and the row reached.
        """

    def unfinished(self, file: OpenFile, error: Exception) -> bool:
        """Whether a file that failed with ``error`` looks like one still being written (a
        Parquet file without its footer). Only files of whole-file formats are asked."""
        return False

    def start(self, config: ConnectorSpec, context: TaskContext) -> None:
        """List the files to read; the committed offsets say what they cover."""
        assert isinstance(config, FileSourceSpec)
        self.config = config
        self.context = context
        self._store = file_store(config.path, config.s3)
        self._schema_name = self._store.schema_name()
        self._queue: deque[StoredFile] = deque()
        self._queued: set[str] = set()
        # The offset each file seen has reached (emitted, maybe not committed yet).
        self._reached: dict[str, Mapping[str, Any]] = {}
        # The Arrow schema of the first block of each line file read.
        self._types: dict[str, pa.Schema] = {}
        self._ready: deque[RecordBatch] = deque()
        self._pass: Pass | None = None
        self._newline = encoded("\n", getattr(config, "encoding", "utf8"))
        self._last_scan = 0.0
        self._scan()

    def poll(self) -> PollResult:
        """The next batch of the current pass, planning the next pass when one ends."""
        while True:
            if self._ready:
                return self._take(self._ready.popleft())
            if self._pass is None:
                self._pass = self._open_next()
                if self._pass is None:
                    if self._ready:
                        continue
                    self._wait_for_new_files()
                    return None
            batch = self._pass.cursor.next_batch()
            if batch is not None:
                return self._take(batch)
            ended, self._pass = self._pass, None
            self._pass_ended(ended)

    def stop(self) -> None:
        if self._pass is not None:
            self._pass.file.close()
        self._pass = None
        self._queue.clear()
        self._queued.clear()
        self._ready.clear()

    def _take(self, batch: RecordBatch) -> RecordBatch:
        for position in batch.positions:
            self._reached[position.partition["file"]] = position.offset
        return batch

    def _scan(self) -> None:
        self._last_scan = time.monotonic()
        for file in self._store.list():
            if file.name in self._queued or self._unchanged(file):
                continue
            self._queued.add(file.name)
            self._queue.append(file)

    def _position(self, name: str) -> FilePosition | None:
        """The position reached in file ``name``: this task's, else the committed one."""
        offset = self._reached.get(name)
        if offset is None:
            offset = self.context.offsets.get({"file": name})
            if offset is None:
                return None
            self._reached[name] = offset
        try:
            return FilePosition.from_offset(offset)
        except ValueError as err:
            raise ConnectorError(
                f"{name}: the committed offset {dict(offset)} is unusable: {err}"
            ) from err

    def _unchanged(self, file: StoredFile) -> bool:
        """Whether ``file`` as listed surely holds nothing new: its size, modification time
        (and ETag) are those its position was taken at, and the position covers the whole
        file."""
        position = self._position(file.name)
        if position is None or position.head is None or position.mtime_ns is None:
            return False
        if file.mtime_ns != position.mtime_ns or file.etag != position.etag:
            return False
        if self.lines:
            return position.skip == 0 and file.size == position.byte
        return position.complete and file.size == position.size

    def _open_next(self) -> Pass | None:
        while self._queue:
            listed = self._queue.popleft()
            self._queued.discard(listed.name)
            try:
                file = self._store.open(listed)
            except FileNotFoundError:
                continue
            except ConnectorError:
                self._retry_later(listed)
                raise
            try:
                position = self._position(file.name)
                if self.lines:
                    planned = self._plan_lines(file, position)
                else:
                    planned = self._plan_whole(file, position)
            except Exception as error:
                file.close()
                access = self._store.access_error(error)
                if access is None:
                    raise
                self._retry_later(listed)
                raise access from None
            if planned is not None:
                return planned
            file.close()
        return None

    def _retry_later(self, file: StoredFile) -> None:
        """Read ``file`` first when the task is called again (after a store failure)."""
        if file.name not in self._queued:
            self._queued.add(file.name)
            self._queue.appendleft(file)

    def _pass_ended(self, ended: Pass) -> None:
        """After a pass: remember the file's types; a pass that failed goes to the dead
        letter topic (or is left for later, when the file is not finished yet), unless the
        store failed: then the task fails, to read the file on when called again."""
        try:
            self._after_pass(ended)
        finally:
            ended.file.close()

    def _after_pass(self, ended: Pass) -> None:
        cursor, file = ended.cursor, ended.file
        if cursor.first_types is not None and self.lines:
            self._types[file.name] = cursor.first_types
        error = cursor.error
        if error is None:
            return
        if isinstance(error, ConfigError):
            raise error
        access = self._store.access_error(error)
        if access is not None:
            self._retry_later(file.stored)
            raise access from None
        now = self._store.stat(file.stored)
        if now is None:
            return  # gone
        if not self.lines and not self._settled(now) and self._not_finished(file, error):
            self.context.logger.info(
                "%s is not complete yet (%s): it is read when it is",
                file.name,
                error.__cause__ or error,
            )
            return
        place: dict[str, Any] = {"file": file.name}
        if cursor.rows > 0:
            place["row"] = cursor.rows
        self.context.errors.report_raw([b""], error, place, stage="read")
        offset = self._dead_letter_offset(ended)
        self._ready.append(position_only(file.name, offset, self._schema_name))

    def _not_finished(self, file: OpenFile, error: Exception) -> bool:
        cause = error.__cause__ if isinstance(error.__cause__, Exception) else error
        return file.size == 0 or self.unfinished(file, cause)

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


__all__ = ["SETTLE_SECONDS", "FileSourceTask", "ReadRange"]

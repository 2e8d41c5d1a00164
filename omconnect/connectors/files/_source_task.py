"""The reading task every file source shares; a format only says how to read one file.

Files are read in sorted order, each in *passes*. On start, and under ``run --once`` only
then, the task lists ``path``; running continuously it lists it again every
``poll_interval`` seconds. A listed file is read when it holds something its position (see
``_file_position``) does not cover:

- a new file is read from its start;
- a CSV or JSON Lines file whose fingerprinted bytes are unchanged and that grew is read on
  from where the last pass stopped; only whole lines are read: a last line without its line
  break waits for it, unless the file has not changed for ``SETTLE_SECONDS`` (its writer is
  done and never ended it). Should such a line go on later after all, it is delivered again,
  whole: a duplicate with a cut value rather than a lost value;
- a file that was replaced, rewritten or truncated is handled per ``on_file_change`` (read
  again, refused, or left as it is), always with a warning;
- a Parquet or Avro file is read once; if it changes later it counts as replaced.

A file whose size and modification time did not change since its position was taken is not
opened at all.

A file that cannot be read (an unparsable Parquet or Avro file, a first block that fails, a
block that does not fit the file's types) goes to the dead letter topic as a whole, or from
where reading failed, with its name and the reason (``ErrorReporter.report_raw``; under
``errors.tolerance: none`` that stops the run, after what was delivered before it is
committed). Its position is then committed as done, with its fingerprint, so it is not
tried again until it changes. A Parquet or Avro file that is empty or cut short (a writer
not done yet) is not broken but not ready: it is left for a later scan or run, until it has
not changed for ``SETTLE_SECONDS``.
"""

from __future__ import annotations

import os
import time
from abc import abstractmethod
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

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
from omconnect.connectors.files._file_cursor import FileCursor, OffsetAt, position_only
from omconnect.connectors.files._file_position import FilePosition, change_since, fingerprint
from omconnect.connectors.files._glob import MatchedFile, match_files
from omconnect.connectors.files._line_blocks import count_lines, encoded, last_line_end
from omconnect.connectors.files._read_range import ReadRange
from omconnect.connectors.files._source_connector import FileSourceSpec, schema_name_of

# How long one poll may wait for new files, so that an idle source does not spin.
_IDLE_WAIT_SECONDS = 0.5
# How long a file must stay unchanged to be taken as its writer left it: a last line without
# a line break is then read, a Parquet or Avro file cut short is then broken.
SETTLE_SECONDS = 60.0


class FileSourceTask(SourceTask):
    """Reads the files of a file source's ``path``; subclasses read one file's format.

    Attributes:
        lines: whether the format is made of lines that writers append to (csv, jsonl);
            otherwise files are read whole (parquet, avro).
    """

    config: FileSourceSpec
    lines: ClassVar[bool] = True

    @abstractmethod
    def read_blocks(self, path: Path, where: ReadRange) -> Iterator[pa.RecordBatch]:
        """The rows of the part ``where`` of the file at ``path``, as record batches.

        Called on the polling thread. Blocks may hold any number of rows (the task slices
        them to ``batch_size``); the first block's schema is the file's schema. A line
        format reads with ``_line_blocks.line_chunks``, which sets ``where.reached``. Errors
        raised while iterating are reported with the file's name and the row reached.
        """

    def unfinished(self, path: Path, error: Exception) -> bool:
        """Whether a file that failed with ``error`` looks like one still being written (a
        Parquet file without its footer). Only files of whole-file formats are asked."""
        return False

    def start(self, config: ConnectorSpec, context: TaskContext) -> None:
        """List the files to read; the committed offsets say what they cover."""
        assert isinstance(config, FileSourceSpec)
        self.config = config
        self.context = context
        self._schema_name = schema_name_of(config.path)
        self._queue: deque[MatchedFile] = deque()
        self._queued: set[str] = set()
        # The offset each file seen has reached (emitted, maybe not committed yet).
        self._reached: dict[str, Mapping[str, Any]] = {}
        # The Arrow schema of the first block of each line file read.
        self._types: dict[str, pa.Schema] = {}
        self._ready: deque[RecordBatch] = deque()
        self._pass: _Pass | None = None
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
        for file in match_files(self.config.path):
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

    def _unchanged(self, file: MatchedFile) -> bool:
        """Whether ``file`` surely holds nothing new: its size and modification time are
        those its position was taken at, and the position covers the whole file."""
        position = self._position(file.name)
        if position is None or position.head is None or position.mtime_ns is None:
            return False
        try:
            stat = file.path.stat()
        except OSError:
            return True  # gone: nothing to read
        if stat.st_mtime_ns != position.mtime_ns:
            return False
        if self.lines:
            return position.skip == 0 and stat.st_size == position.byte
        return position.complete and stat.st_size == position.size

    def _open_next(self) -> _Pass | None:
        while self._queue:
            file = self._queue.popleft()
            self._queued.discard(file.name)
            try:
                handle = file.path.open("rb")
            except FileNotFoundError:
                continue
            with handle:
                stat = os.fstat(handle.fileno())
                position = self._position(file.name)
                if self.lines:
                    planned = self._plan_lines(file, handle, stat, position)
                else:
                    planned = self._plan_whole(file, handle, stat, position)
            if planned is not None:
                return planned
        return None

    def _plan_lines(
        self,
        file: MatchedFile,
        handle: BinaryIO,
        stat: os.stat_result,
        position: FilePosition | None,
    ) -> _Pass | None:
        """The pass that reads what ``file`` holds beyond ``position``, if anything."""
        begin = position or FilePosition()
        change = change_since(begin, handle, stat.st_size, lines=True)
        if change is not None:
            again = self._changed(file, handle, stat, begin, change)
            if again is None:
                return None
            begin = again
            self._types.pop(file.name, None)
        elif stat.st_size > begin.byte and self._line_went_on(handle, begin.byte):
            self.context.logger.warning(
                "%s: its last line, read without a line break because the file did not change "
                "for %.0fs, went on since: delivering it again, whole",
                file.name,
                SETTLE_SECONDS,
            )
            start = last_line_end(handle, 0, begin.byte, self._newline)
            head, tail = fingerprint(handle, start)
            begin = replace(begin, byte=start, skip=0, head=head, tail=tail)
        end = last_line_end(handle, begin.byte, stat.st_size, self._newline)
        if end < stat.st_size and self._settled(stat):
            end = stat.st_size  # its writer is done and never ended the last line
        if end == begin.byte:
            return None
        known = self._types.get(file.name)
        if begin.byte > 0 and known is None:
            known = self._first_block_types(file, end)
        where = ReadRange(
            skip_rows=begin.skip,
            start=begin.byte,
            end=end,
            first_line=begin.line,
            types={f.name: f.type for f in known or () if not pa.types.is_null(f.type)},
        )
        # Checked by change_since; a new file or one read again starts with no byte read.
        start_head, start_tail = (
            (begin.head, begin.tail) if begin.head is not None else fingerprint(handle, 0)
        )

        def offset_at(rows: int, at_end: bool) -> dict[str, Any]:
            if not at_end:
                return replace(
                    begin,
                    row=rows,
                    skip=rows - begin.rows_before_byte,
                    head=start_head,
                    tail=start_tail,
                    mtime_ns=stat.st_mtime_ns,
                    dead_letter=False,
                ).to_offset(lines=True)
            reached = where.reached if where.reached is not None else end
            line = where.reached_line
            return self._line_offset(file, rows, reached, line, stat, begin)

        return self._start_pass(file, where, begin, offset_at, known)

    def _line_went_on(self, handle: BinaryIO, byte: int) -> bool:
        """Whether a pass stopped at ``byte`` after a last line without a line break, and
        what follows does not start with one (the line was not complete)."""
        size = len(self._newline)
        if byte < size:
            return False
        before = os.pread(handle.fileno(), size, byte - size)
        return before != self._newline and os.pread(handle.fileno(), size, byte) != self._newline

    def _line_offset(
        self,
        file: MatchedFile,
        rows: int,
        byte: int,
        line: int | None,
        stat: os.stat_result,
        begin: FilePosition,
        dead_letter: bool = False,
    ) -> dict[str, Any]:
        """The offset of a line file read to ``byte`` (at line ``line``, None: count it)."""
        with file.path.open("rb") as handle:
            if line is None:
                line = begin.line + count_lines(handle, begin.byte, byte, self._newline)
            position = FilePosition.taken(
                handle, byte, stat.st_mtime_ns, True, row=rows, line=line, dead_letter=dead_letter
            )
        return position.to_offset(lines=True)

    def _plan_whole(
        self,
        file: MatchedFile,
        handle: BinaryIO,
        stat: os.stat_result,
        position: FilePosition | None,
    ) -> _Pass | None:
        """The pass that reads the rows of a Parquet or Avro ``file`` that ``position`` does
        not cover, if any."""
        begin = position or FilePosition()
        change = change_since(begin, handle, stat.st_size, lines=False)
        if change is None and begin.complete and begin.head is not None:
            return None
        current = FilePosition.taken(handle, stat.st_size, stat.st_mtime_ns, False)
        if change is not None:
            if self._changed(file, handle, stat, begin, change) is None:
                return None
            begin = FilePosition()
        elif begin.complete:
            # Complete by an offset of an earlier version: take the file as it is now.
            upgraded = replace(current, row=begin.row, complete=True)
            self._ready.append(self._position_batch(file, upgraded))
            return None

        def offset_at(rows: int, at_end: bool) -> dict[str, Any]:
            return replace(current, row=rows, complete=at_end).to_offset(lines=False)

        return self._start_pass(file, ReadRange(skip_rows=begin.row), begin, offset_at, None)

    def _start_pass(
        self,
        file: MatchedFile,
        where: ReadRange,
        begin: FilePosition,
        offset_at: OffsetAt,
        known: pa.Schema | None,
    ) -> _Pass:
        cursor = FileCursor(
            file,
            self.read_blocks(file.path, where),
            start_offset=self._reached.get(file.name),
            start_row=begin.row,
            offset_at=offset_at,
            batch_size=self.config.batch_size,
            schema_name=self._schema_name,
            key_fields=self.config.key,
            known_types=known,
        )
        return _Pass(cursor, where, begin)

    def _changed(
        self,
        file: MatchedFile,
        handle: BinaryIO,
        stat: os.stat_result,
        position: FilePosition,
        change: str,
    ) -> FilePosition | None:
        """Apply ``on_file_change`` to a file that changed since ``position``: the position
        to read it from (its start), or None to read nothing of it now.

        Raises:
            ConnectorError: ``on_file_change`` is ``fail``.
        """
        log = self.context.logger
        if position.dead_letter:
            log.warning(
                "%s changed since it went to the dead letter topic (%s): reading it again",
                file.name,
                change,
            )
            return FilePosition()
        policy = self.config.on_file_change
        if policy == "fail":
            raise ConnectorError(
                f"{file.name} changed since it was read: {change}; on_file_change is fail "
                "(set it to reread to read the file again, or to skip to leave it)"
            )
        if policy == "reread":
            log.warning(
                "%s changed since it was read: %s; reading it again from its start "
                "(on_file_change: reread)",
                file.name,
                change,
            )
            return FilePosition()
        log.warning(
            "%s changed since it was read: %s; leaving what it holds now unread "
            "(on_file_change: skip)",
            file.name,
            change,
        )
        self._types.pop(file.name, None)
        if self.lines:
            end = last_line_end(handle, 0, stat.st_size, self._newline)
            line = 1 + count_lines(handle, 0, end, self._newline)
            now = FilePosition.taken(handle, end, stat.st_mtime_ns, True, line=line)
        else:
            now = FilePosition.taken(handle, stat.st_size, stat.st_mtime_ns, False, complete=True)
        self._ready.append(self._position_batch(file, now))
        return None

    def _position_batch(self, file: MatchedFile, position: FilePosition) -> RecordBatch:
        return position_only(file.name, position.to_offset(self.lines), self._schema_name)

    def _pass_ended(self, ended: _Pass) -> None:
        """After a pass: remember the file's types; a pass that failed goes to the dead
        letter topic (or is left for later, when the file is not finished yet)."""
        cursor, file = ended.cursor, ended.cursor.file
        if cursor.first_types is not None and self.lines:
            self._types[file.name] = cursor.first_types
        error = cursor.error
        if error is None:
            return
        if isinstance(error, ConfigError):
            raise error
        try:
            stat = file.path.stat()
        except FileNotFoundError:
            return
        if not self.lines and not self._settled(stat) and self._not_finished(file.path, error):
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
        if self.lines:
            end = ended.where.end if ended.where.end is not None else stat.st_size
            offset = self._line_offset(file, cursor.rows, end, None, stat, ended.begin, True)
        else:
            with file.path.open("rb") as handle:
                done = FilePosition.taken(
                    handle,
                    stat.st_size,
                    stat.st_mtime_ns,
                    False,
                    row=cursor.rows,
                    complete=True,
                    dead_letter=True,
                )
            offset = done.to_offset(lines=False)
        self._ready.append(position_only(file.name, offset, self._schema_name))

    def _not_finished(self, path: Path, error: Exception) -> bool:
        cause = error.__cause__ if isinstance(error.__cause__, Exception) else error
        try:
            empty = path.stat().st_size == 0
        except OSError:
            return False
        return empty or self.unfinished(path, cause)

    def _settled(self, stat: os.stat_result) -> bool:
        """Whether the file has not been modified for ``SETTLE_SECONDS``."""
        return time.time() - stat.st_mtime >= SETTLE_SECONDS

    def _first_block_types(self, file: MatchedFile, end: int) -> pa.Schema | None:
        """The types of the first block of a line file (read again, after a restart, for a
        pass that starts past it). Bad lines it holds were reported by the pass that
        delivered them: not again."""
        context = self.context
        self.context = replace(context, errors=_Unreported())
        try:
            blocks = self.read_blocks(file.path, ReadRange(end=end))
            try:
                first = next(blocks, None)
            finally:
                close = getattr(blocks, "close", None)
                if close is not None:
                    close()
        except Exception:  # the pass itself reports what is wrong with the file
            return None
        finally:
            self.context = context
        return first.schema if first is not None else None

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


@dataclass
class _Pass:
    """A pass being read: its cursor, what it covers and where it started."""

    cursor: FileCursor
    where: ReadRange
    begin: FilePosition


class _Unreported:
    """An error reporter that drops reports (for reading a block a second time)."""

    def report(self, *args: Any, **kwargs: Any) -> None:
        pass

    def report_raw(self, *args: Any, **kwargs: Any) -> None:
        pass


__all__ = ["FileSourceTask", "ReadRange"]

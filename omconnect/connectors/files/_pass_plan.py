"""Planning a pass: what the next read of one file covers, given the position it reached.

A file source reads each file in *passes* (see ``_source_task``). Before a pass opens the file,
its plan compares the file with its position (see ``_file_position``):

- a new file is read from its start;
- a CSV or JSON Lines file whose fingerprinted bytes are unchanged and that grew is read on
  from where the last pass stopped; only whole lines are read: a last line without its line
  break waits for it, unless the file has not changed for ``SETTLE_SECONDS`` (its writer is
  done and never ended it). Should such a line go on later after all, it is delivered again,
  whole: a duplicate with a cut value rather than a lost value;
- a file that was replaced, rewritten or truncated is handled per ``on_file_change`` (read
  again, refused, or left as it is), always with a warning; one that went to the dead letter
  topic is read again;
- a Parquet or Avro file is read once; if it changes later it counts as replaced;
- an S3 object is never changed in place: one whose ETag changed was replaced, and one
  listed is complete (its last line is read, line break or not).

A plan is a ``Pass``: the file opened (see ``_file_store``), its cursor, the range it reads
and the offset each of its batches carries; the pass reads the file it planned with. A file
that only needs its position moved (skipped, or complete by an offset of an earlier version)
gets a position-only batch and no pass. A pass that failed
ends with the offset that marks the file done and dead-lettered, so that it is not tried
again until it changes.
"""

from __future__ import annotations

import time
from abc import abstractmethod
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import pyarrow as pa

from omconnect.connectors.api import ConnectorError, RecordBatch, TaskContext
from omconnect.connectors.files._file_cursor import FileCursor, OffsetAt, position_only
from omconnect.connectors.files._file_position import FilePosition, change_since, fingerprint
from omconnect.connectors.files._file_store import FileStore, OpenFile, StoredFile
from omconnect.connectors.files._line_blocks import count_lines, last_line_end
from omconnect.connectors.files._read_range import ReadRange
from omconnect.connectors.files._source_connector import FileSourceSpec

# How long a file must stay unchanged to be taken as its writer left it: a last line without
# a line break is then read, a Parquet or Avro file cut short is then broken.
SETTLE_SECONDS = 60.0


@dataclass
class Pass:
    """A pass being read: the file, its cursor, what it covers and where it started."""

    file: OpenFile
    cursor: FileCursor
    where: ReadRange
    begin: FilePosition


class PassPlanner:
    """The planning half of ``FileSourceTask``: it plans passes from the task's state.

    Attributes:
        lines: whether the format is made of lines that writers append to (csv, jsonl).
        _store: where the files live.
        _types: the Arrow schema of the first block of each line file read.
        _ready: position-only batches waiting to be delivered.
        _reached: the offset each file seen has reached.
        _newline: a line break in the files' encoding.
    """

    config: FileSourceSpec
    context: TaskContext
    lines: ClassVar[bool]
    _store: FileStore
    _schema_name: str
    _types: dict[str, pa.Schema]
    _ready: deque[RecordBatch]
    _reached: dict[str, Mapping[str, Any]]
    _newline: bytes

    @abstractmethod
    def read_blocks(self, file: OpenFile, where: ReadRange) -> Iterator[pa.RecordBatch]:
        """The rows of the part ``where`` of ``file`` (see ``FileSourceTask``)."""

    def _plan_lines(self, file: OpenFile, position: FilePosition | None) -> Pass | None:
        """The pass that reads what ``file`` holds beyond ``position``, if anything."""
        begin = position or FilePosition()
        size = file.size
        change = change_since(begin, file, lines=True)
        if change is not None:
            again = self._changed(file, begin, change)
            if again is None:
                return None
            begin = again
            self._types.pop(file.name, None)
        elif size > begin.byte and self._line_went_on(file, begin.byte):
            self.context.logger.warning(
                "%s: its last line, read without a line break because the file did not change "
                "for %.0fs, went on since: delivering it again, whole",
                file.name,
                SETTLE_SECONDS,
            )
            start = last_line_end(file, 0, begin.byte, self._newline)
            head, tail = fingerprint(file, start)
            begin = replace(begin, byte=start, skip=0, head=head, tail=tail)
        end = last_line_end(file, begin.byte, size, self._newline)
        if end < size and self._settled(file.stored):
            end = size  # its writer is done and never ended the last line
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
            (begin.head, begin.tail) if begin.head is not None else fingerprint(file, 0)
        )

        def offset_at(rows: int, at_end: bool) -> dict[str, Any]:
            if not at_end:
                return replace(
                    begin,
                    row=rows,
                    skip=rows - begin.rows_before_byte,
                    head=start_head,
                    tail=start_tail,
                    mtime_ns=file.stored.mtime_ns,
                    etag=file.stored.etag,
                    dead_letter=False,
                ).to_offset(lines=True)
            reached = where.reached if where.reached is not None else end
            line = where.reached_line
            return self._line_offset(file, rows, reached, line, begin)

        return self._start_pass(file, where, begin, offset_at, known)

    def _line_went_on(self, file: OpenFile, byte: int) -> bool:
        """Whether a pass stopped at ``byte`` after a last line without a line break, and
        what follows does not start with one (the line was not complete)."""
        size = len(self._newline)
        if byte < size:
            return False
        before = file.read_at(byte - size, size)
        return before != self._newline and file.read_at(byte, size) != self._newline

    def _line_offset(
        self,
        file: OpenFile,
        rows: int,
        byte: int,
        line: int | None,
        begin: FilePosition,
        dead_letter: bool = False,
    ) -> dict[str, Any]:
        """The offset of a line file read to ``byte`` (at line ``line``, None: count it)."""
        if line is None:
            line = begin.line + count_lines(file, begin.byte, byte, self._newline)
        position = FilePosition.taken(
            file, byte, True, row=rows, line=line, dead_letter=dead_letter
        )
        return position.to_offset(lines=True)

    def _plan_whole(self, file: OpenFile, position: FilePosition | None) -> Pass | None:
        """The pass that reads the rows of a Parquet or Avro ``file`` that ``position`` does
        not cover, if any."""
        begin = position or FilePosition()
        change = change_since(begin, file, lines=False)
        if change is None and begin.complete and begin.head is not None:
            return None
        current = FilePosition.taken(file, file.size, False)
        if change is not None:
            if self._changed(file, begin, change) is None:
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
        file: OpenFile,
        where: ReadRange,
        begin: FilePosition,
        offset_at: OffsetAt,
        known: pa.Schema | None,
    ) -> Pass:
        cursor = FileCursor(
            file.stored,
            self.read_blocks(file, where),
            start_offset=self._reached.get(file.name),
            start_row=begin.row,
            offset_at=offset_at,
            batch_size=self.config.batch_size,
            schema_name=self._schema_name,
            key_fields=self.config.key,
            known_types=known,
            inferred_types=self.lines,
        )
        return Pass(file, cursor, where, begin)

    def _changed(self, file: OpenFile, position: FilePosition, change: str) -> FilePosition | None:
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
            size = file.size
            end = last_line_end(file, 0, size, self._newline)
            if end < size and self._settled(file.stored):
                end = size
            line = 1 + count_lines(file, 0, end, self._newline)
            now = FilePosition.taken(file, end, True, line=line)
        else:
            now = FilePosition.taken(file, file.size, False, complete=True)
        self._ready.append(self._position_batch(file, now))
        return None

    def _position_batch(self, file: OpenFile, position: FilePosition) -> RecordBatch:
        return position_only(file.name, position.to_offset(self.lines), self._schema_name)

    def _dead_letter_offset(self, ended: Pass) -> dict[str, Any]:
        """The offset of a file whose pass ``ended`` failed and went to the dead letter topic:
        done as far as the pass was to read, so that it is not tried again until it changes."""
        file, rows = ended.file, ended.cursor.rows
        if self.lines:
            end = ended.where.end if ended.where.end is not None else file.size
            return self._line_offset(file, rows, end, None, ended.begin, True)
        done = FilePosition.taken(file, file.size, False, row=rows, complete=True, dead_letter=True)
        return done.to_offset(lines=False)

    def _settled(self, file: StoredFile) -> bool:
        """Whether ``file`` is as its writer left it: not modified for ``SETTLE_SECONDS``, or
        in a store whose files are whole once listed."""
        if self._store.whole_when_listed:
            return True
        return time.time() - file.mtime_ns / 1e9 >= SETTLE_SECONDS

    def _first_block_types(self, file: OpenFile, end: int) -> pa.Schema | None:
        """The types of the first block of a line file (read again, after a restart, for a
        pass that starts past it). Bad lines it holds were reported by the pass that
        delivered them: not again."""
        context = self.context
        self.context = replace(context, errors=_Unreported())
        try:
            blocks = self.read_blocks(file, ReadRange(end=end))
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


class _Unreported:
    """An error reporter that drops reports (for reading a block a second time)."""

    def report(self, *args: Any, **kwargs: Any) -> None:
        pass

    def report_raw(self, *args: Any, **kwargs: Any) -> None:
        pass

    def delivered(self) -> None:
        pass


__all__ = ["SETTLE_SECONDS", "Pass", "PassPlanner"]

"""Where a file source stands in one file, and how it knows the file again.

The offset committed for ``{"file": name}`` says how far the file was read and identifies
the bytes read so far by a fingerprint: a digest of the first ``FINGERPRINT_BYTES`` bytes
(``head``) and one of the ``FINGERPRINT_BYTES`` bytes before where reading stopped
(``tail``). A file whose fingerprinted bytes are still there, unchanged, is the file that was
read; appending keeps them, replacing or rewriting the file changes them (unless the new
file repeats those bytes exactly), truncating it cuts them off.

Line formats (csv, jsonl) can grow, so their offset says where to read on::

    {"row": rows delivered, "byte": where the next read starts (the start of a line),
     "line": the line number there, "skip": rows after "byte" already delivered,
     "head": ..., "tail": digest of the bytes before "byte", "mtime_ns": ...}

``skip`` is 0 once a pass read to its end; a pass stopped half way resumes from its start,
leaving out its first ``skip`` rows. Parquet and Avro files are immutable once complete::

    {"row": rows delivered, "complete": true once every row was, "size": the file's size,
     "head": ..., "tail": digest of the file's last bytes, "mtime_ns": ...}

``mtime_ns`` is the file's modification time when it was read: a file whose size and time
did not change since is not opened again. An S3 object's offset also holds its ``"etag"``:
objects are never changed in place, so the same ETag is the same object (nothing to check),
another one a replaced object, whatever its bytes. ``"dead_letter": true`` marks a file (or the rest
of one) that could not be read and went to the dead letter topic.

Offsets written before fingerprints (``{"row": N}``, ``{"row": N, "complete": true}``) are
kept: a line file is read once more from its start, leaving out its first N rows, so rows
appended since are delivered; a Parquet or Avro file resumes after row N, or, complete, is
taken as it is now. Either way the next offset carries a fingerprint.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from omconnect.connectors.files._file_store import OpenFile

FINGERPRINT_BYTES = 4096


@dataclass(frozen=True)
class FilePosition:
    """A file source's offset in one file (see the module docstring for the fields).

    ``head`` is None for an offset written before fingerprints: what it covers cannot be
    checked.
    """

    row: int = 0
    byte: int = 0
    line: int = 1
    skip: int = 0
    complete: bool = False
    size: int = 0
    head: str | None = None
    tail: str | None = None
    mtime_ns: int | None = None
    etag: str | None = None
    dead_letter: bool = False

    @property
    def rows_before_byte(self) -> int:
        return self.row - self.skip

    @classmethod
    def taken(cls, file: OpenFile, covered: int, lines: bool, **fields: Any) -> FilePosition:
        """The position of ``file`` as opened, read up to byte ``covered`` (a line format)
        or read whole, ``covered`` bytes, with its fingerprint, time and ETag."""
        head, tail = fingerprint(file, covered)
        stored = file.stored
        position = cls(head=head, tail=tail, mtime_ns=stored.mtime_ns, etag=stored.etag, **fields)
        return replace(position, byte=covered) if lines else replace(position, size=covered)

    @classmethod
    def from_offset(cls, offset: Mapping[str, Any]) -> FilePosition:
        """The position an offset stores.

        Raises:
            ValueError: a field is missing or of the wrong kind, naming it.
        """
        counts = {k: _count(offset, k, default) for k, default in _COUNTS.items()}
        if "byte" not in offset and "size" not in offset:
            # An offset of an earlier version: the first ``row`` rows were delivered.
            counts["skip"] = counts["row"]
        if counts["skip"] > counts["row"]:
            raise ValueError(f"skip {counts['skip']} is more than row {counts['row']}")
        head, tail = offset.get("head"), offset.get("tail")
        if (head is None) != (tail is None) or not all(
            d is None or isinstance(d, str) for d in (head, tail)
        ):
            raise ValueError("head and tail must both be digests (strings) or both be absent")
        mtime = offset.get("mtime_ns")
        if mtime is not None and (not isinstance(mtime, int) or isinstance(mtime, bool)):
            raise ValueError(f"mtime_ns must be an integer, not {mtime!r}")
        etag = offset.get("etag")
        if etag is not None and not isinstance(etag, str):
            raise ValueError(f"etag must be a string, not {etag!r}")
        return cls(
            **counts,
            complete=offset.get("complete") is True,
            head=head,
            tail=tail,
            mtime_ns=mtime,
            etag=etag,
            dead_letter=offset.get("dead_letter") is True,
        )

    def to_offset(self, lines: bool) -> dict[str, Any]:
        """The offset to commit; ``lines`` for a line format, else for a whole-file one."""
        offset: dict[str, Any] = {"row": self.row}
        if lines:
            offset.update(byte=self.byte, line=self.line, skip=self.skip)
        else:
            if self.complete:
                offset["complete"] = True
            offset["size"] = self.size
        offset.update(head=self.head, tail=self.tail, mtime_ns=self.mtime_ns)
        if self.etag is not None:
            offset["etag"] = self.etag
        if self.dead_letter:
            offset["dead_letter"] = True
        return offset


_COUNTS = {"row": 0, "byte": 0, "line": 1, "skip": 0, "size": 0}


def _count(offset: Mapping[str, Any], key: str, default: int) -> int:
    value = offset.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{key} must be a whole number of at least 0, not {value!r}")
    return value


def fingerprint(file: OpenFile, covered: int) -> tuple[str, str]:
    """The ``head`` and ``tail`` digests of the first ``covered`` bytes of ``file``."""
    head_end = min(FINGERPRINT_BYTES, covered)
    head = _digest(file, 0, head_end)
    tail_start = max(0, covered - FINGERPRINT_BYTES)
    tail = head if tail_start == 0 and head_end == covered else _digest(file, tail_start, covered)
    return head, tail


def change_since(position: FilePosition, file: OpenFile, lines: bool) -> str | None:
    """What changed in ``file`` since ``position`` was reached, as words for a log line, or
    None when the bytes it covers are still there (grown, for a line file). A position without
    a fingerprint cannot tell: None. An object with an ETag is the same object exactly when
    its ETag is."""
    if position.etag is not None and file.stored.etag is not None:
        if position.etag == file.stored.etag:
            return None
        return f"its ETag changed from {position.etag} to {file.stored.etag}: it was replaced"
    if position.head is None:
        return None
    size = file.size
    if lines:
        return _line_file_change(position, file, size)
    if not position.complete:
        # A file read in part may have been still written then: its start must be the same.
        seen = min(FINGERPRINT_BYTES, position.size)
        if size < seen or _digest(file, 0, seen) != position.head:
            return "its first bytes differ from those read before: it was replaced"
        return None
    if size != position.size:
        return f"its size changed from {position.size} to {size} bytes since it was read"
    if fingerprint(file, size) != (position.head, position.tail):
        return "its content changed since it was read (same size)"
    return None


def _line_file_change(position: FilePosition, file: OpenFile, size: int) -> str | None:
    if size < position.byte:
        return (
            f"it is shorter ({size} bytes) than where reading stopped (byte {position.byte}): "
            "it was truncated or replaced"
        )
    head, tail = fingerprint(file, position.byte)
    if head != position.head:
        return "its first bytes differ from those read before: it was replaced"
    if tail != position.tail:
        return (
            f"the bytes before byte {position.byte}, where reading stopped, differ from those "
            "read: it was rewritten"
        )
    return None


def _digest(file: OpenFile, start: int, end: int) -> str:
    data = file.read_at(start, end - start)
    return hashlib.blake2b(data, digest_size=8).hexdigest()

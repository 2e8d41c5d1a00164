"""Line-based formats (csv, jsonl): the bytes one pass reads, and the size of read blocks.

A file of lines is read in passes (see ``_source_task``). A pass reads the whole lines from
where the previous one stopped to the end of the last line break the file had when the pass
was planned, so a line still being written is left for a later pass, and a file that grew
is read on from where it stopped without parsing its start again. In CSV a line break inside
a quoted value ends no record: a pass whose end falls inside quotes (an odd number of quote
characters since its start) ends at the last record end before it instead.

A block is parsed by Arrow in one call and one block is parsed ahead, so blocks stay small
(at most 4 MiB: a few blocks in memory whatever the file size, and few enough calls that their
fixed cost stays small: 4 MiB read the 1M-row benchmark file with 15% less CPU than 1 MiB); the
file cursor joins blocks into batches of ``batch_size`` rows.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from omconnect.connectors.files._file_store import OpenFile
from omconnect.connectors.files._read_range import ReadRange

_SAMPLE_BYTES = 1 << 20
_MIN_BLOCK_BYTES = 64 << 10
_MAX_BLOCK_BYTES = 4 << 20
# How far back one read goes when looking for the last line break.
_SEARCH_BYTES = 64 << 10


def line_block_size(file: OpenFile, batch_size: int) -> int:
    """Bytes per read block: about ``batch_size`` lines, at most 4 MiB."""
    sample = file.read_at(0, min(_SAMPLE_BYTES, file.size))
    lines = max(sample.count(b"\n"), 1)
    estimate = len(sample) * batch_size // lines
    return max(_MIN_BLOCK_BYTES, min(_MAX_BLOCK_BYTES, estimate))


def encoded(text: str, encoding: str) -> bytes:
    """``text`` in ``encoding`` without a byte order mark (``"\\n"`` in UTF-16 is two bytes)."""
    once = text.encode(encoding)
    return (text * 2).encode(encoding)[len(once) :]


def last_line_end(file: OpenFile, start: int, limit: int, newline: bytes = b"\n") -> int:
    """The offset just after the last ``newline`` in the bytes ``[start, limit)`` of ``file``,
    or ``start`` when there is none."""
    stop = limit
    while stop > start:
        begin = max(start, stop - _SEARCH_BYTES)
        data = file.read_at(begin, stop - begin)
        found = data.rfind(newline)
        if found >= 0:
            return begin + found + len(newline)
        if begin == start:
            break
        stop = begin + len(newline) - 1
    return start


def count_lines(file: OpenFile, start: int, end: int, newline: bytes = b"\n") -> int:
    """How many ``newline`` the bytes ``[start, end)`` of ``file`` hold."""
    lines = 0
    position = start
    while position < end:
        data = file.read_at(position, min(_MAX_BLOCK_BYTES, end - position))
        if not data:
            break
        lines += _count(data, newline)
        position += len(data)
    return lines


def line_chunks(
    file: OpenFile,
    where: ReadRange,
    chunk_size: int,
    *,
    header: bool = False,
    quote: str | None = None,
    encoding: str = "utf8",
) -> Iterator[bytes]:
    """The bytes a pass parses, in chunks of at most ``chunk_size`` bytes (as in the file),
    each one read of the file: a large file is never held whole.

    When ``header`` and the pass starts after the first line, that line comes first, so the
    reader sees the column names as at the start of the file. Then the bytes
    ``[where.start, where.end)`` (to the file's end when ``end`` is None), but when ``quote``
    is given and ``end`` falls inside a quoted value, only to the last record end before it.
    At the end it sets ``where.reached`` and ``where.reached_line``.
    """
    newline = encoded("\n", encoding)
    quote_mark = encoded(quote, encoding) if quote is not None else None
    end = where.end if where.end is not None else file.size
    if end <= where.start:
        where.reached, where.reached_line = where.start, where.first_line
        return
    if header and where.start > 0:
        yield file.read_at(0, _first_line_end(file, newline))
    position, lines, quotes = where.start, 0, 0
    held = b""
    while position < end:
        chunk = file.read_at(position, min(chunk_size, end - position))
        if not chunk:
            break  # the file shrank while being read: what is there is all there is
        position += len(chunk)
        if quote_mark is not None:
            quotes += _count(chunk, quote_mark)
        if held:
            lines += _count(held, newline)
            yield held
        held = chunk
    if held and quote_mark is not None and quotes % 2:
        # The end is inside a quoted value (a record still being written): stop at the
        # last record end of the last chunk. One that ends in an earlier chunk is not
        # looked for: the reader then finds the record cut short.
        odd_before = (quotes - _count(held, quote_mark)) % 2 == 1
        cut = _last_record_end(held, newline, quote_mark, odd_before)
        if cut:
            position -= len(held) - cut
            held = held[:cut]
    lines += _count(held, newline)
    if held:
        yield held
    where.reached, where.reached_line = position, where.first_line + lines


def _first_line_end(file: OpenFile, newline: bytes) -> int:
    """Where the first line of ``file`` ends (its size when it has a single line)."""
    size = file.size
    position = 0
    while position < size:
        data = file.read_at(position, _SEARCH_BYTES)
        found = data.find(newline)
        if found >= 0:
            return position + found + len(newline)
        position += max(len(data) - len(newline) + 1, 1)
    return size


def _count(data: bytes, token: bytes) -> int:
    if len(token) == 1:
        return int(np.count_nonzero(np.frombuffer(data, np.uint8) == token[0]))
    return data.count(token)


def _last_record_end(data: bytes, newline: bytes, quote: bytes, odd_before: bool) -> int:
    """The offset just after the last line break of ``data`` outside quotes, given whether an
    odd number of quotes came before ``data``; 0 when there is none. Single-byte line breaks
    and quotes only (other encodings get 0)."""
    if len(newline) != 1 or len(quote) != 1:
        return 0
    buffer = np.frombuffer(data, np.uint8)
    newlines = np.flatnonzero(buffer == newline[0])
    quotes = np.flatnonzero(buffer == quote[0])
    outside = ((np.searchsorted(quotes, newlines) + int(odd_before)) & 1) == 0
    ends = newlines[outside]
    return int(ends[-1]) + 1 if ends.size else 0

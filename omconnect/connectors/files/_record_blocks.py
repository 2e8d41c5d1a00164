"""Parsing a line-based file (csv, jsonl) block by block, with its bad records set aside.

The file is read in blocks of whole records and Arrow parses each block in one call: the
good path is columnar, with no Python per row. A record ends at a line break; in CSV a line
break inside a quoted value does not end it. Cutting a block at its last line break is right
when the block holds an even number of quote characters before it (every block starts outside
quotes); otherwise the block needs the quote-aware cut, which finds the last line break with an
even number of quotes before it (numpy, over the block). A record longer than the block grows
the block until it holds the record.

Only when a block fails does the reader look at its records: it splits them in halves, parsed
with the same options, down to the records that fail alone. Those are the bad records (the
file, line, text and reason of each go to the dead letter topic); the good ones are parsed
again in one call. The first block also settles the types of the file: later blocks are parsed
with them, so a later value that does not fit is a bad record too.

Rows are counted as good rows, as before: the reader skips ``start_row`` good rows on resume
and reports only the bad records after them.
"""

from __future__ import annotations

import bisect
import codecs
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from omconnect.connectors.api import ConnectorError

# What Arrow raises for data it cannot parse or convert (not for I/O or memory failures).
PARSE_ERRORS = (pa.ArrowInvalid, pa.ArrowTypeError)

# Below this many records a failed piece is tried record by record instead of in halves.
_ONE_BY_ONE = 8

Types = dict[str, pa.DataType]


@dataclass
class RawBlock:
    """Whole records of a file, UTF-8.

    Attributes:
        data: the records, each with its line break (the file's last may lack it).
        first_line: the 1-based line number in the file of the first line of ``data``.
        quote_aware: whether the block needed the quote-aware cut (a value holds a line break).
    """

    data: bytes
    first_line: int
    quote_aware: bool = False


@dataclass
class BadRecord:
    """A record that failed alone: its bytes in the block and Arrow's reason."""

    start: int
    end: int
    error: Exception


@dataclass
class ParsedBlock:
    """What a block became: the rows of its good records and its bad records.

    ``data`` is the block as parsed (repaired when ``encoding_errors`` is ``replace``);
    ``good`` lists the good records' starts when some record was bad (else None: all good).
    """

    data: bytes
    table: pa.Table
    good: list[int] | None = None
    bad: list[BadRecord] = field(default_factory=list)


def blocks_of(
    chunks: Iterator[bytes], block_size: int, quote: bytes | None, first_line: int = 1
) -> Iterator[RawBlock]:
    """``chunks`` (UTF-8 bytes that start at a record start, line ``first_line``) as blocks
    of whole records of about ``block_size`` bytes (more when a record is longer)."""
    pending: list[bytes] = []
    pending_bytes = 0
    line = first_line
    want = block_size
    exhausted = False
    while True:
        while pending_bytes < want and not exhausted:
            chunk = next(chunks, None)
            if chunk is None:
                exhausted = True
            elif chunk:
                pending.append(chunk)
                pending_bytes += len(chunk)
        if not pending_bytes:
            return
        data = b"".join(pending) if len(pending) > 1 else pending[0]
        if exhausted:
            cut, aware = len(data), _holds_quoted_newline(data, quote)
        else:
            cut, aware = _last_record_end(data, quote)
        if cut == 0:
            # No whole record in the block: a value longer than the block. Grow it.
            pending, want = [data], want * 2
            continue
        yield RawBlock(data[:cut], line, aware)
        line += _count(data, b"\n", cut)
        rest = data[cut:]
        pending, pending_bytes, want = ([rest] if rest else []), len(rest), block_size


def utf8_chunks(chunks: Iterator[bytes], encoding: str, errors: str) -> Iterator[bytes]:
    """``chunks`` of text in ``encoding`` as UTF-8. Bytes invalid in ``encoding`` come through
    as they were (invalid UTF-8 then, so their record fails) unless ``errors`` is
    ``replace``."""
    if codecs.lookup(encoding).name == "utf-8":
        yield from chunks
        return
    errors = "replace" if errors == "replace" else "surrogateescape"
    decoder = codecs.getincrementaldecoder(encoding)(errors)
    for chunk in chunks:
        yield decoder.decode(chunk).encode(errors=errors)
    yield decoder.decode(b"", final=True).encode(errors=errors)


def _last_record_end(data: bytes, quote: bytes | None) -> tuple[int, bool]:
    """Where the last whole record of ``data`` ends (0: none) and whether finding it needed
    the quote-aware cut."""
    end = data.rfind(b"\n") + 1
    if end == 0 or quote is None or _count(data, quote, end) % 2 == 0:
        return end, False
    ends = record_ends(data, quote)
    return (ends[-1] if ends.size else 0), True


def _count(data: bytes, byte: bytes, end: int) -> int:
    """How often ``byte`` occurs in ``data[:end]`` (numpy counts several times faster than
    ``bytes.count``)."""
    return int(np.count_nonzero(np.frombuffer(data, np.uint8, end) == byte[0]))


def _holds_quoted_newline(data: bytes, quote: bytes | None) -> bool:
    if quote is None or quote not in data:
        return False
    return bool(record_ends(data, quote).size < _count(data, b"\n", len(data)))


def record_ends(data: bytes, quote: bytes | None) -> np.ndarray:
    """The offsets just after each line break of ``data`` that ends a record: every line break
    outside quotes (an even number of quote characters before it)."""
    buffer = np.frombuffer(data, np.uint8)
    newlines = np.flatnonzero(buffer == 10)
    if quote is not None:
        quotes = np.flatnonzero(buffer == quote[0])
        if quotes.size:
            newlines = newlines[(np.searchsorted(quotes, newlines) & 1) == 0]
    return newlines + 1


def record_spans(data: bytes, quote: bytes | None) -> list[tuple[int, int]]:
    """The records of ``data`` as (start, end) offsets, blank lines left out as Arrow skips
    them (in CSV an empty line, in JSON Lines one of white space). Used on the error path
    only."""
    blank = b"\r\n" if quote is not None else None
    ends = record_ends(data, quote).tolist()
    if not ends or ends[-1] != len(data):
        ends.append(len(data))
    spans = []
    start = 0
    for end in ends:
        if data[start:end].strip(blank):
            spans.append((start, end))
        start = end
    return spans


def _joined(data: bytes, spans: list[tuple[int, int]]) -> bytes:
    return b"".join(data[start:end] for start, end in spans)


class BlockParser:
    """Parses the blocks of one file with ``parse(data, types)`` (Arrow, one call a block).

    Args:
        parse: Arrow's reader for a block; ``types`` fixes the types of the columns it names
            and leaves the others to inference. Raises one of ``PARSE_ERRORS`` on bad data.
        settle: the types of the file from its first block's rows and records (whole,
            for every column): what later blocks are parsed with.
        configured: the types the ``columns`` option fixes.
        quote: CSV's quote character (None for jsonl).
        replace_bad_utf8: replace invalid UTF-8 (``encoding_errors: replace``) instead of
            making its record bad.
        settled: the types a read that starts after the file's first block starts from.
    """

    def __init__(
        self,
        parse: Callable[[bytes, Types], pa.Table],
        settle: Callable[[pa.Table, bytes], Types],
        configured: Types,
        quote: bytes | None,
        replace_bad_utf8: bool,
        settled: Types | None = None,
    ) -> None:
        self._parse = parse
        self._settle = settle
        self._types: Types = {**(settled or {}), **configured}
        self._settled = bool(settled)
        self._quote = quote
        self._replace = replace_bad_utf8

    @property
    def types(self) -> Types | None:
        """The types of every column once the first block settled them (for a later read of
        the file to start from), else None."""
        return dict(self._types) if self._settled else None

    def parse_block(self, data: bytes) -> ParsedBlock:
        """The rows of ``data`` and its bad records; the first block settles the types."""
        if self._replace and not self._settled:
            data = _valid_utf8(data)
        parsed = self._parse_records(data, None, self._types)
        if self._settled or parsed.table.num_rows == 0:
            return parsed
        self._settled = True
        good = self._good_spans(parsed)
        good_data = parsed.data if good is None else _joined(parsed.data, good)
        settled = self._settle(parsed.table, good_data)
        if settled == {f.name: f.type for f in parsed.table.schema}:
            self._types = settled
            return parsed
        self._types = settled
        again = self._parse_records(parsed.data, good, settled)
        again.bad = sorted([*parsed.bad, *again.bad], key=lambda bad: bad.start)
        return again

    def _parse_records(
        self, data: bytes, spans: list[tuple[int, int]] | None, types: Types
    ) -> ParsedBlock:
        whole = data if spans is None else _joined(data, spans)
        try:
            blank = not whole or whole.isspace()
            table = _empty(types) if blank else self._parse(whole, types)
            return ParsedBlock(data, table, None if spans is None else [s for s, _ in spans])
        except PARSE_ERRORS:
            pass
        if self._replace:
            repaired = _valid_utf8(data)
            if repaired is not data:
                return self._parse_records(repaired, None, types)
        if spans is None:
            spans = record_spans(data, self._quote)
        good: list[tuple[int, int]] = []
        bad: list[BadRecord] = []
        self._split(data, spans, types, good, bad, known_bad=True)
        table = self._parse_good(data, good, types, bad)
        return ParsedBlock(data, table, [start for start, _ in good], bad)

    def _split(
        self,
        data: bytes,
        spans: list[tuple[int, int]],
        types: Types,
        good: list[tuple[int, int]],
        bad: list[BadRecord],
        known_bad: bool = False,
    ) -> None:
        """Sort ``spans`` into good and bad records, in order."""
        if not spans:
            return
        if not known_bad:
            try:
                self._parse(_joined(data, spans), types)
            except PARSE_ERRORS as err:
                if len(spans) == 1:
                    bad.append(BadRecord(*spans[0], err))
                    return
            else:
                good.extend(spans)
                return
        if len(spans) <= _ONE_BY_ONE:
            for span in spans:
                self._split(data, [span], types, good, bad)
            return
        middle = len(spans) // 2
        self._split(data, spans[:middle], types, good, bad)
        self._split(data, spans[middle:], types, good, bad)

    def _parse_good(
        self,
        data: bytes,
        good: list[tuple[int, int]],
        types: Types,
        bad: list[BadRecord],
    ) -> pa.Table:
        """The rows of the good records in one table. While the types are not settled, the
        good records may still disagree with each other (a number, later a string, in JSON):
        then the longest run of first records that parses decides the types, and the records
        that do not fit them are bad too."""
        if not good:
            return _empty(types)
        try:
            return self._parse(_joined(data, good), types)
        except PARSE_ERRORS:
            if self._settled:
                raise
        fits = 1
        low, high = 1, len(good)
        while low <= high:
            middle = (low + high) // 2
            try:
                self._parse(_joined(data, good[:middle]), types)
            except PARSE_ERRORS:
                high = middle - 1
            else:
                fits, low = middle, middle + 1
        first = self._parse(_joined(data, good[:fits]), types)
        fixed = {**{f.name: f.type for f in first.schema}, **types}
        rest_good: list[tuple[int, int]] = []
        rest_bad: list[BadRecord] = []
        self._split(data, good[fits:], fixed, rest_good, rest_bad)
        bad[:] = sorted([*bad, *rest_bad], key=lambda b: b.start)
        good[fits:] = rest_good
        return self._parse(_joined(data, good), fixed)

    def _good_spans(self, parsed: ParsedBlock) -> list[tuple[int, int]] | None:
        if parsed.good is None:
            return None
        starts = set(parsed.good)
        return [span for span in record_spans(parsed.data, self._quote) if span[0] in starts]


def _empty(types: Types) -> pa.Table:
    return pa.schema(list(types.items())).empty_table()


def _valid_utf8(data: bytes) -> bytes:
    """``data``, or a copy with each invalid UTF-8 sequence replaced by U+FFFD."""
    try:
        data.decode()
    except UnicodeDecodeError:
        return data.decode(errors="replace").encode()
    return data


def parsed_batches(
    blocks: Iterator[RawBlock],
    parser: BlockParser,
    start_row: int,
    report: Callable[[list[bytes], list[Exception], list[Mapping[str, Any]]], None],
    file_name: str,
) -> Iterator[pa.RecordBatch]:
    """The good rows of ``blocks`` as record batches, from good row ``start_row`` on; the bad
    records after that row are reported (payload, reason, ``{"file", "line"}``) before the rows
    that follow them are yielded.

    One block is read and parsed ahead on a worker thread (Arrow parses without the GIL), so
    parsing overlaps with what the caller does with the rows; reports are made on the
    caller's thread.
    """

    def read_next() -> tuple[RawBlock, ParsedBlock] | None:
        block = next(blocks, None)
        return None if block is None else (block, parser.parse_block(block.data))

    rows = 0
    # The parse thread is never waited for when the pass is abandoned (a stop, a failure):
    # it finishes the block in hand and ends, and nothing can block the caller on it.
    worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="omconnect-parse")
    ahead = worker.submit(read_next)
    try:
        while (done := ahead.result()) is not None:
            ahead = worker.submit(read_next)
            block, parsed = done
            table = parsed.table
            first = rows
            rows += table.num_rows
            cut = min(max(start_row - first, 0), table.num_rows)
            if parsed.bad:
                # The good rows before the first bad record go first: under
                # ``errors.tolerance: none`` the report stops the pass, after them.
                assert parsed.good is not None
                bad_start = min(record.start for record in parsed.bad)
                before = bisect.bisect_left(parsed.good, bad_start)
                if before > cut:
                    yield from table.slice(cut, before - cut).to_batches()
                    cut = before
                _report_bad(block, parsed, first, start_row, report, file_name)
            if cut < table.num_rows:
                yield from table.slice(cut).to_batches()
    finally:
        ahead.cancel()
        worker.shutdown(wait=False, cancel_futures=True)


def _report_bad(
    block: RawBlock,
    parsed: ParsedBlock,
    rows_before: int,
    start_row: int,
    report: Callable[[list[bytes], list[Exception], list[Mapping[str, Any]]], None],
    file_name: str,
) -> None:
    """Report the bad records of ``parsed`` that come after good row ``start_row``."""
    assert parsed.good is not None
    payloads: list[bytes] = []
    reasons: list[Exception] = []
    places: list[Mapping[str, Any]] = []
    for record in parsed.bad:
        if rows_before + bisect.bisect_left(parsed.good, record.start) < start_row:
            continue  # reported by the run that delivered the rows after it
        text = parsed.data[record.start : record.end]
        line = block.first_line + parsed.data.count(b"\n", 0, record.start)
        payloads.append(text.rstrip(b"\r\n"))
        reasons.append(_located(record.error, file_name, line))
        places.append({"file": file_name, "line": line})
    if payloads:
        report(payloads, reasons, places)


def _located(error: Exception, file_name: str, line: int) -> ConnectorError:
    located = ConnectorError(f"{file_name}: line {line}: {error}")
    located.__cause__ = error
    return located

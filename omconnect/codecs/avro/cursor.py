"""A read cursor over many Avro bodies at once: one position per body into a shared buffer.

The bodies of a binary array are laid end to end in one data buffer. Decoding walks the
schema once, field by field, and for each field reads that field of every body (or of a
subset of rows, under a nullable union) by moving all their positions together. A body found
corrupt is recorded with the reason and its position pinned at its end, so it cannot drag
reads elsewhere; the walk goes on for the others.

Rows are given as ascending body indices, or as None for every body: the common case (no
nulls above the field) then reads and moves the positions without gathering them first.

Byte spans (Avro strings and bytes) become an Arrow binary array by describing the buffer as
spans and gaps, alternately, and letting Arrow's ``take`` copy every other value; spans that
all have one length are gathered as fixed-size items instead, which is faster.
"""

from __future__ import annotations

import io
from collections.abc import Iterator

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from omconnect.codecs.avro.errors import InvalidAvroValue
from omconnect.codecs.avro.varints import decode_varints, unaligned_values

U8 = npt.NDArray[np.uint8]
I64 = npt.NDArray[np.int64]
Mask = npt.NDArray[np.bool_]
Rows = I64 | None
"""Ascending body indices, or None for all bodies."""

_INT32_LIMIT = 2**31 - 1
_HIGH_BITS = 0x8080808080808080
# The most items of no bytes (nulls) one array block may claim: a handful of corrupt bytes
# must not make the reader allocate without bound.
_EMPTY_ITEMS_LIMIT = 1 << 24

# Zero bytes around the data, so fixed-size windows (varints, doubles, decimals, UUID text)
# can be read at any position, or ending at any position, unchecked.
_PADDING = 64


class BodyCursor:
    """Positions into the bodies of a binary array, and the bodies found corrupt so far.

    Attributes:
        padded: all bodies' bytes, with zero padding before and after.
        pos: per body, where the next field starts.
        end: per body, where it ends.
        bad: per body, True once found corrupt; ``reasons`` says why.
    """

    def __init__(self, bodies: pa.Array, skip: int) -> None:
        n = len(bodies)
        offset_type = (
            np.int64 if bodies.type in (pa.large_binary(), pa.large_string()) else np.int32
        )
        offsets = np.frombuffer(
            bodies.buffers()[1], dtype=offset_type, count=bodies.offset + n + 1
        )[bodies.offset :].astype(np.int64)
        first, last = (int(offsets[0]), int(offsets[-1])) if n else (0, 0)
        self.padded: U8 = np.empty(last - first + 2 * _PADDING, dtype=np.uint8)
        self.padded[:_PADDING] = 0
        self.padded[last - first + _PADDING :] = 0
        data = bodies.buffers()[2]
        if data is not None and last > first:
            self.padded[_PADDING : _PADDING + last - first] = np.frombuffer(data, dtype=np.uint8)[
                first:last
            ]
        offsets += _PADDING - first
        self.pos: I64 = offsets[:-1] + skip
        self.end: I64 = offsets[1:]
        self.bad: Mask = np.zeros(n, dtype=np.bool_)
        self.reasons: dict[int, Exception] = {}
        self._stream: io.BytesIO | None = None
        if bodies.null_count:
            valid = np.asarray(bodies.is_valid().to_numpy(zero_copy_only=False), dtype=np.bool_)
            self.fail(np.flatnonzero(~valid), "the message has no body (null)")
        self.fail(np.flatnonzero(self.pos > self.end), f"the body is shorter than {skip} bytes")

    @property
    def num_rows(self) -> int:
        return len(self.pos)

    def count(self, rows: Rows) -> int:
        """How many bodies ``rows`` names."""
        return self.num_rows if rows is None else len(rows)

    def indices(self, rows: Rows) -> I64:
        """``rows`` as body indices."""
        return np.arange(self.num_rows, dtype=np.int64) if rows is None else rows

    def starts(self, rows: Rows) -> I64:
        """Where the next field of each of ``rows`` starts (do not modify)."""
        return self.pos if rows is None else self.pos[rows]

    def fail(self, rows: I64, reason: str) -> None:
        """Record ``rows`` as corrupt (the first reason wins) and pin them at their end."""
        if not len(rows):
            return
        new = rows[~self.bad[rows]]
        if len(new):
            error = InvalidAvroValue(reason)  # one instance shared by the rows it concerns
            for row in new.tolist():
                self.reasons[row] = error
            self.bad[new] = True
        self.pos[rows] = self.end[rows]

    def fail_where(self, rows: Rows, broken: Mask, reason: str) -> None:
        """``fail`` the bodies among ``rows`` where ``broken`` (one flag per row) is True."""
        if broken.any():
            self.fail(np.flatnonzero(broken) if rows is None else rows[broken], reason)

    def varints(self, rows: Rows, path: str) -> I64:
        """Read one zigzag varint at each of ``rows`` and move past it."""
        starts = self.starts(rows)
        values, lengths, ok = decode_varints(self.padded, starts)
        after = starts + lengths
        broken = after > self._ends(rows)
        if ok is not None:
            broken |= ~ok
        self._move_to(rows, after)
        if broken.any():
            values = np.where(broken, 0, values)
            self.fail_where(rows, broken, f"{path}: truncated or overlong varint")
        return values

    def take_fixed(self, rows: Rows, width: int, path: str) -> I64:
        """Claim ``width`` bytes at each of ``rows`` and move past them; returns where they
        start. Rows without ``width`` bytes left are failed (their bytes are read anyway:
        the padding keeps that in bounds, and the rows are dropped)."""
        starts = self.starts(rows)
        after = starts + width
        broken = after > self._ends(rows)
        self._move_to(rows, after)
        self.fail_where(rows, broken, f"{path}: truncated value")
        return starts

    def take(self, rows: Rows, lengths: I64, path: str) -> tuple[I64, I64]:
        """Claim ``lengths`` bytes at each of ``rows`` and move past them.

        Returns:
            (starts, lengths) of the claimed spans; rows whose span would leave the body (or
            whose length is negative) are failed and get an empty span.
        """
        starts = self.starts(rows)
        after = starts + lengths
        broken = (lengths < 0) | (after > self._ends(rows))
        if broken.any():
            self.fail_where(rows, broken, f"{path}: length runs past the end of the body")
            lengths = np.where(broken, 0, lengths)
            starts = self.starts(rows)
            after = starts + lengths
        self._move_to(rows, after)
        return starts, lengths

    def item_steps(self, rows: Rows, item_size: int, path: str) -> Iterator[I64]:
        """Walk one Avro array or map at each of ``rows``, an item at a time.

        Yields ascending body indices whose next item starts at their position; the caller
        reads (or skips) exactly one item for each before taking the next step. Blocks are
        walked as Avro writes them: a count (negative: followed by the block's byte size),
        that many items, and a count of 0 to close. ``item_size`` is the fewest bytes an item
        takes: a count that cannot fit what is left of the body fails the body. Items of no
        bytes at all (``null``) come in a single step, the body repeated once per item.
        """
        active = self.indices(rows)
        while len(active):
            counts = self.varints(active, path)
            sized = counts < 0
            if sized.any():
                counts = np.abs(counts)
                self.varints(active[sized], path)  # the block's byte size: not needed
            left = self.end[active] - self.pos[active]
            too_many = counts > (left // item_size if item_size else _EMPTY_ITEMS_LIMIT)
            self.fail_where(active, too_many, f"{path}: block of more items than the body holds")
            going = (counts > 0) & ~too_many & ~self.bad[active]
            active, counts = active[going], counts[going]
            if not item_size and len(active):
                yield np.repeat(active, counts)
                continue
            for step in range(int(counts.max()) if len(counts) else 0):
                yield active if step == 0 else active[counts > step]

    def stream(self) -> io.BytesIO:
        """The bodies' bytes as a file, for the per-row fastavro path."""
        if self._stream is None:
            self._stream = io.BytesIO(self.padded.tobytes())
        return self._stream

    def check_all_consumed(self) -> None:
        """Fail every body with bytes left after the last field."""
        leftover = np.flatnonzero((self.pos != self.end) & ~self.bad)
        self.fail(leftover, "bytes left after the last field (wrong schema?)")

    def _ends(self, rows: Rows) -> I64:
        return self.end if rows is None else self.end[rows]

    def _move_to(self, rows: Rows, after: I64) -> None:
        if rows is None:
            self.pos = after
        else:
            self.pos[rows] = after


def binary_of_spans(buffer: U8, starts: I64, lengths: I64) -> pa.Array:
    """The bytes ``buffer[starts[i] : starts[i] + lengths[i]]`` as a binary array.

    Spans must be in buffer order and must not overlap (each starts at or after the end of
    the one before), which is how the fields of consecutive bodies lie.

    Raises:
        ValueError: the spans are out of order or overlap.
    """
    n = len(starts)
    if n and int(lengths.min()) == int(lengths.max()):
        return _binary_of_equal_spans(buffer, starts, int(lengths[0]))
    large = len(buffer) > _INT32_LIMIT
    index_type = np.int64 if large else np.int32
    # Offsets of 2n values: span 0, the gap after it, span 1, ..., the last span, then an
    # empty value. Spans are the even values.
    offsets = np.empty(2 * n + 1, dtype=index_type)
    offsets[0 : 2 * n : 2] = starts
    ends = starts + lengths
    offsets[1 : 2 * n : 2] = ends
    offsets[2 * n] = ends[-1] if n else 0
    if n and (np.diff(offsets) < 0).any():
        raise ValueError("byte spans are out of order or overlap")
    kind = pa.large_binary() if large else pa.binary()
    spans_and_gaps = pa.Array.from_buffers(
        kind, 2 * n, [None, pa.py_buffer(offsets), pa.py_buffer(buffer)]
    )
    return spans_and_gaps.take(pa.array(np.arange(0, 2 * n, 2, dtype=np.int64)))


def _binary_of_equal_spans(buffer: U8, starts: I64, length: int) -> pa.Array:
    """Spans of one ``length``: each copied as one opaque item of that size."""
    n = len(starts)
    if length == 0:
        data = np.zeros(0, dtype=np.uint8)
    else:
        data = unaligned_values(buffer, f"V{length}")[starts].view(np.uint8)
    large = n * length > _INT32_LIMIT
    offsets = np.arange(n + 1, dtype=np.int64) * length
    return pa.Array.from_buffers(
        pa.large_binary() if large else pa.binary(),
        n,
        [None, pa.py_buffer(offsets if large else offsets.astype(np.int32)), pa.py_buffer(data)],
    )


def all_ascii(binary: pa.Array) -> bool:
    """True when every byte of the values of a binary array is below 0x80 (ASCII text, which
    is valid UTF-8 as it is)."""
    if not len(binary):
        return True
    offset_type = np.int64 if binary.type == pa.large_binary() else np.int32
    offsets = np.frombuffer(binary.buffers()[1], dtype=offset_type)
    first, last = int(offsets[binary.offset]), int(offsets[binary.offset + len(binary)])
    if last == first:
        return True
    data = np.frombuffer(binary.buffers()[2], dtype=np.uint8)[first:last]
    whole = len(data) // 8 * 8
    # Eight bytes per step: OR everything together, then look at the high bits once.
    high = int(np.bitwise_or.reduce(data[:whole].view(np.uint64))) if whole else 0
    high |= int(np.bitwise_or.reduce(data[whole:])) if whole < len(data) else 0
    return high & _HIGH_BITS == 0

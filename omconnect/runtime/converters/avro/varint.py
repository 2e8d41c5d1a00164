"""Avro's zigzag varints (``int`` and ``long``), encoded and decoded for many values at once.

A varint stores 7 bits per byte, low groups first, the high bit of each byte saying "more
follows". Both directions work on a uint64 per value: the first 8 varint bytes are the 8 bytes
of that word, so spreading or gathering the 7-bit groups is a fixed set of shifts and masks
over whole columns. Varints of 9 or 10 bytes (magnitudes of 2**55 and more) take a short
second step.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view

U64 = npt.NDArray[np.uint64]
I64 = npt.NDArray[np.int64]
U8 = npt.NDArray[np.uint8]

MAX_VARINT_BYTES = 10
_HIGH_BITS = np.uint64(0x8080808080808080)
# First value that needs k + 1 bytes, for k = 1..9.
_LENGTH_THRESHOLDS = np.array([1 << (7 * k) for k in range(1, 10)], dtype=np.uint64)
# Continuation bits of a varint of length L within its first 8 bytes.
_CONTINUATION = np.array(
    [sum(0x80 << (8 * i) for i in range(min(length, 9) - 1) if i < 8) for length in range(11)],
    dtype=np.uint64,
)


def zigzag(values: I64) -> U64:
    """Signed -> unsigned so that small magnitudes of either sign stay small."""
    return ((values << 1) ^ (values >> 63)).view(np.uint64)


def encode_varints(values: I64) -> tuple[U8, I64]:
    """Zigzag varints of ``values``: a (n, w) byte matrix, row i's varint left-aligned, and
    each row's length in bytes (1..10). ``w`` is the longest length present."""
    n = len(values)
    zz = zigzag(values.astype(np.int64, copy=False))
    lengths = np.searchsorted(_LENGTH_THRESHOLDS, zz, side="right").astype(np.int64) + 1
    width = int(lengths.max()) if n else 1
    word = np.zeros(n, dtype=np.uint64)
    for group in range(min(width, 8)):
        word |= ((zz >> np.uint64(7 * group)) & np.uint64(0x7F)) << np.uint64(8 * group)
    word |= _CONTINUATION[lengths]
    first8 = word.view(np.uint8).reshape(n, 8)
    if width <= 8:
        return first8[:, :width], lengths
    matrix = np.zeros((n, width), dtype=np.uint8)
    matrix[:, :8] = first8
    matrix[:, 8] = ((zz >> np.uint64(56)) & np.uint64(0x7F)).astype(np.uint8)
    matrix[:, 8] |= np.where(lengths > 9, 0x80, 0).astype(np.uint8)
    if width > 9:
        matrix[:, 9] = (zz >> np.uint64(63)).astype(np.uint8)
    return matrix, lengths


def decode_varints(padded: U8, starts: I64) -> tuple[I64, I64, npt.NDArray[np.bool_]]:
    """Zigzag varints starting at ``starts`` in ``padded`` (a buffer followed by at least
    ``MAX_VARINT_BYTES`` zero bytes).

    Returns:
        (values, lengths, ok): ``ok`` is False where no varint ends within 10 bytes; those
        rows get value 0 and length 1 so a caller can keep going and report them.
    """
    n = len(starts)
    first = padded[starts]
    if not (first >= 0x80).any():  # all one byte: union branches, small ints, short lengths
        values = (first >> 1).astype(np.int64) ^ -(first & 1).astype(np.int64)
        return values, np.ones(n, dtype=np.int64), np.ones(n, dtype=np.bool_)
    word = np.ascontiguousarray(sliding_window_view(padded, 8)[starts]).view(np.uint64)
    word = word.reshape(n)
    stops = ~word & _HIGH_BITS
    lowest_stop = stops & (~stops + np.uint64(1))
    kept = (lowest_stop << np.uint64(1)) - np.uint64(1)
    lengths = (np.bitwise_count(kept) // 8).astype(np.int64)
    word &= kept
    zz = word & np.uint64(0x7F)
    for group in range(1, min(int(lengths.max()), 8)):
        zz |= ((word >> np.uint64(8 * group)) & np.uint64(0x7F)) << np.uint64(7 * group)
    ok = np.ones(n, dtype=np.bool_)
    long_rows = np.flatnonzero(stops == 0)
    if len(long_rows):
        zz[long_rows], lengths[long_rows], ok[long_rows] = _decode_long_tail(
            padded, starts[long_rows]
        )
    values = (zz >> np.uint64(1)) ^ (np.uint64(0) - (zz & np.uint64(1)))
    return values.view(np.int64), lengths, ok


def _decode_long_tail(padded: U8, starts: I64) -> tuple[U64, I64, npt.NDArray[np.bool_]]:
    """Varints whose first 8 bytes all say "more follows": 9 or 10 bytes, or corrupt."""
    window = sliding_window_view(padded, MAX_VARINT_BYTES)[starts]
    groups = (window & 0x7F).astype(np.uint64)
    more = window >= 0x80
    ok = ~more[:, 8] | ~more[:, 9]
    lengths = np.where(more[:, 8], 10, 9).astype(np.int64)
    zz = np.zeros(len(starts), dtype=np.uint64)
    for group in range(MAX_VARINT_BYTES):
        used = lengths > group
        zz |= np.where(used, groups[:, group] << np.uint64(7 * group), np.uint64(0))
    zz[~ok] = 0
    lengths[~ok] = 1
    return zz, lengths, ok

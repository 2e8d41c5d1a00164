"""Avro's zigzag varints (``int`` and ``long``), encoded and decoded for many values at once.

A varint stores 7 bits per byte, low groups first, the high bit of each byte saying "more
follows". Both directions work on a uint64 per value: the first 8 varint bytes are the 8 bytes
of that word, so spreading or gathering the 7-bit groups is three shift-and-mask steps (28-bit
halves, then 14-bit quarters, then 7-bit eighths) over whole columns. Varints of 9 or 10 bytes
(magnitudes of 2**55 and more) take a short second step. The words are read through
``unaligned_values``, a view with one item starting at every byte of a buffer, which the
decoder also uses for doubles.

Columns whose varints all have one length (timestamps, string lengths of fixed-size text) are
common, so the encoder says so and the assembler can treat them as fixed-width bytes.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

U64 = npt.NDArray[np.uint64]
I64 = npt.NDArray[np.int64]
U8 = npt.NDArray[np.uint8]

MAX_VARINT_BYTES = 10
_HIGH_BITS = np.uint64(0x8080808080808080)
_LOW_BITS = np.uint64(0x7F7F7F7F7F7F7F7F)
_LOW_56 = np.uint64((1 << 56) - 1)
# (mask of the bits that stay, mask of the bits that move once shifted, shift), from the
# widest step to the narrowest; a step is needed when the varint is longer than ``bytes``.
_SPREAD_STEPS = (
    (4, np.uint64(0x000000000FFFFFFF), np.uint64(0x00FFFFFFF0000000), np.uint64(4)),
    (2, np.uint64(0x00003FFF00003FFF), np.uint64(0x0FFFC0000FFFC000), np.uint64(2)),
    (1, np.uint64(0x007F007F007F007F), np.uint64(0x3F803F803F803F80), np.uint64(1)),
)
# The value of each one-byte varint.
_ONE_BYTE_VALUES = np.array([(b >> 1) ^ -(b & 1) for b in range(128)], dtype=np.int64)
# Continuation bits of a varint of length L within its first 8 bytes.
_CONTINUATION = np.array(
    [sum(0x80 << (8 * i) for i in range(min(length - 1, 8))) for length in range(11)],
    dtype=np.uint64,
)


def varint_length(zigzagged: int) -> int:
    """Bytes of the varint of one non-negative (already zigzagged) value."""
    return max(1, (zigzagged.bit_length() + 6) // 7)


def zigzag(values: I64) -> U64:
    """Signed -> unsigned so that small magnitudes of either sign stay small."""
    if len(values) and int(values.min()) >= 0:  # lengths, ids, timestamps: one pass
        return (values << 1).view(np.uint64)
    return ((values << 1) ^ (values >> 63)).view(np.uint64)


def encode_varints(values: I64) -> tuple[U8, I64 | None]:
    """Zigzag varints of ``values``: a (n, w) byte matrix, row i's varint left-aligned, and
    each row's length in bytes (1..10), or None when every varint is ``w`` bytes long.
    ``w`` is the longest length present."""
    n = len(values)
    if n == 0:
        return np.zeros((0, 1), dtype=np.uint8), None
    zz = zigzag(values.astype(np.int64, copy=False))
    shortest, longest = varint_length(int(zz.min())), varint_length(int(zz.max()))
    lengths: I64 | None = None
    if shortest != longest:
        lengths = np.full(n, shortest, dtype=np.int64)
        for length in range(shortest, longest):
            lengths += zz >= np.uint64(1 << (7 * length))
    # zz is a fresh array, spread in place unless its high bytes are still needed below.
    word = _spread(zz & _LOW_56 if longest > 8 else zz, min(longest, 8))
    word |= _CONTINUATION[lengths] if lengths is not None else _CONTINUATION[longest]
    first8 = word.view(np.uint8).reshape(n, 8)
    if longest <= 8:
        return first8[:, :longest], lengths
    assert lengths is not None or longest == 9 or longest == 10
    full = lengths if lengths is not None else np.full(n, longest, dtype=np.int64)
    matrix = np.zeros((n, longest), dtype=np.uint8)
    matrix[:, :8] = first8
    matrix[:, 8] = ((zz >> np.uint64(56)) & np.uint64(0x7F)).astype(np.uint8)
    matrix[:, 8] |= np.where(full > 9, 0x80, 0).astype(np.uint8)
    if longest > 9:
        matrix[:, 9] = (zz >> np.uint64(63)).astype(np.uint8)
    return matrix, lengths


def _spread(word: U64, longest: int) -> U64:
    """The 7-bit groups of ``word`` (< 2**56) moved to one byte each, in place."""
    moved = np.empty_like(word)
    for needed_above, stay, move, shift in _SPREAD_STEPS:
        if longest > needed_above:
            np.bitwise_and(word, move, out=moved)
            np.left_shift(moved, shift, out=moved)
            np.bitwise_and(word, stay, out=word)
            word |= moved
    return word


def _gather(word: U64, longest: int) -> U64:
    """The inverse of ``_spread``: one 7-bit group per byte -> a contiguous value, in place."""
    moved = np.empty_like(word)
    for needed_above, stay, move, shift in reversed(_SPREAD_STEPS):
        if longest > needed_above:
            np.right_shift(word, shift, out=moved)
            moved &= move
            word &= stay
            word |= moved
    return word


def decode_varints(padded: U8, starts: I64) -> tuple[I64, I64 | int, npt.NDArray[np.bool_] | None]:
    """Zigzag varints starting at ``starts`` in ``padded`` (a buffer followed by at least
    ``MAX_VARINT_BYTES`` zero bytes).

    Returns:
        (values, lengths, ok): ``lengths`` is one int when every varint has that length;
        ``ok`` is None when every varint is well formed, else False where no varint ends
        within 10 bytes; those rows get value 0 and length 1 so a caller can keep going and
        report them.
    """
    n = len(starts)
    first = padded[starts]
    if n == 0 or int(first.max()) < 0x80:  # all one byte: union branches, short lengths
        return np.take(_ONE_BYTE_VALUES, first), 1, None
    word: U64 = unaligned_values(padded, "<u8")[starts].view(np.uint64)
    # In-place steps: fresh temporaries of this size each cost page faults.
    stops = np.invert(word)
    stops &= _HIGH_BITS
    kept = np.negative(stops)
    kept &= stops  # the lowest stop bit ...
    kept <<= np.uint64(1)
    kept -= np.uint64(1)  # ... and every bit below it
    lengths = (np.bitwise_count(kept) >> 3).astype(np.int64)
    kept &= _LOW_BITS
    word &= kept
    zz = _gather(word, int(lengths.max()))
    ok = None
    long_rows = np.flatnonzero(stops == 0)
    if len(long_rows):
        ok = np.ones(n, dtype=np.bool_)
        zz[long_rows], lengths[long_rows], ok[long_rows] = _decode_long_tail(
            padded, starts[long_rows]
        )
    np.right_shift(zz, np.uint64(1), out=kept)
    zz &= np.uint64(1)
    np.negative(zz, out=zz)
    zz ^= kept  # zigzag back: (zz >> 1) ^ -(zz & 1)
    return zz.view(np.int64), lengths, ok


def _decode_long_tail(padded: U8, starts: I64) -> tuple[U64, I64, npt.NDArray[np.bool_]]:
    """Varints whose first 8 bytes all say "more follows": 9 or 10 bytes, or corrupt."""
    window = padded[starts[:, None] + np.arange(MAX_VARINT_BYTES)]
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


def zigzag_of_index(index: int) -> int:
    """The single varint byte that encodes a small union or enum index."""
    return (index << 1) ^ (index >> 63)


def unaligned_values(buffer: U8, dtype: npt.DTypeLike) -> npt.NDArray[np.generic]:
    """A read-only view of ``buffer`` as values of ``dtype`` starting at every byte: item i
    is the value whose first byte is ``buffer[i]``."""
    kind = np.dtype(dtype)
    view: npt.NDArray[np.generic] = np.ndarray(
        shape=(max(len(buffer) - kind.itemsize + 1, 0),),
        dtype=kind,
        buffer=buffer,
        strides=(1,),
    )
    view.flags.writeable = False
    return view

"""Avro ``decimal`` on ``bytes``: the unscaled value as big-endian two's complement.

uint64 travels as decimal(20,0) (omconnect's convention, see ``omconnect.schemas.avro``): its
values are widened to decimal128 words on the way out and narrowed back on the way in.

The byte count matches fastavro's writer exactly: ``(bit_length(|v|) + 8) // 8``, which is
minimal for positive values and can be one byte longer than minimal for some negatives
(-128 -> ``ff 80``). Arrow stores decimal128/256 as little-endian two's complement words, so
both directions are byte reversals plus sign handling over a (rows, width) matrix.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pyarrow as pa
from numpy.lib.stride_tricks import sliding_window_view

from omconnect.codecs.avro.bodies import MatrixPart

U8 = npt.NDArray[np.uint8]
I64 = npt.NDArray[np.int64]
Mask = npt.NDArray[np.bool_]

_BIT_LENGTH = np.array([int(b).bit_length() for b in range(256)], dtype=np.int64)


def arrow_decimal_width(kind: pa.DataType) -> int:
    """Bytes per value of an Arrow decimal type that this module reads and writes."""
    return 32 if pa.types.is_decimal256(kind) else 16


def _magnitude(words: U8) -> U8:
    """|v| of little-endian two's complement rows, as little-endian unsigned rows."""
    width = words.shape[1]
    limbs = np.ascontiguousarray(words).view("<u8").copy()
    negative = words[:, width - 1] >= 0x80
    negated = ~limbs[negative]
    carry = np.ones(len(negated), dtype=np.uint64)
    for limb in range(negated.shape[1]):
        negated[:, limb] += carry
        carry = carry & (negated[:, limb] == 0)
    limbs[negative] = negated
    return limbs.view(np.uint8).reshape(words.shape)


def _below_power_of_ten(magnitude: U8, precision: int) -> Mask:
    """Rows whose unsigned value is < 10**precision, i.e. fit ``precision`` digits."""
    width = magnitude.shape[1]
    bound = np.frombuffer((10**precision).to_bytes(width + 8, "little")[:width], dtype="<u8")
    if 10**precision >= 1 << (8 * width):
        return np.ones(len(magnitude), dtype=np.bool_)
    limbs = np.ascontiguousarray(magnitude).view("<u8")
    below = np.zeros(len(magnitude), dtype=np.bool_)
    equal = np.ones(len(magnitude), dtype=np.bool_)
    for limb in range(limbs.shape[1] - 1, -1, -1):
        below |= equal & (limbs[:, limb] < bound[limb])
        equal &= limbs[:, limb] == bound[limb]
    return below


def encode_decimals(array: pa.Array, precision: int) -> tuple[list[MatrixPart], Mask]:
    """Each value as varint(byte count) + big-endian bytes (two parts), and the rows whose
    value has more than ``precision`` digits (fastavro refuses those)."""
    width = arrow_decimal_width(array.type)
    n = len(array)
    raw = np.frombuffer(array.buffers()[1], dtype=np.uint8)
    words = raw[array.offset * width : (array.offset + n) * width].reshape(n, width)
    if precision <= _INT64_PRECISION and width == 16:
        return _encode_int64_decimals(words, precision)
    magnitude = _magnitude(words)
    nonzero = magnitude != 0
    top = width - 1 - np.argmax(nonzero[:, ::-1], axis=1)
    top_byte = magnitude[np.arange(n), top]
    bit_length = np.where(nonzero.any(axis=1), 8 * top + _BIT_LENGTH[top_byte], 0)
    byte_count = (bit_length + 8) // 8
    count_byte = (byte_count * 2).astype(np.uint8).reshape(n, 1)  # zigzag varint, < 128
    # Big-endian is the reversed word; a row's bytes are the last byte_count of it.
    big_endian = MatrixPart(words[:, ::-1], byte_count, right_aligned=True)
    too_wide = ~_below_power_of_ten(magnitude, precision)
    return [MatrixPart(count_byte, np.ones(n, dtype=np.int64)), big_endian], too_wide


# A precision of at most 18 digits keeps every valid value below 10**18 < 2**63 in magnitude:
# it is the low 64-bit limb of its decimal128 word, sign-extended, and at most 8 bytes in Avro.
# Such columns (numeric(12, 2) and the like: most money) take paths in int64 arithmetic: on
# 1M values they encode in half the time of the limb-wise path and decode in a third.
_INT64_PRECISION = 18
# A value of byte count k is below 2**(8k - 1) in magnitude: the count is 1 plus the number of
# these it reaches.
_BYTE_COUNT_STEPS = np.array([1 << (8 * k - 1) for k in range(1, 9)], dtype=np.uint64)


def _int64_magnitude(values: I64) -> npt.NDArray[np.uint64]:
    """|v| of int64 values as uint64 (-2**63 stays 2**63)."""
    return np.abs(values).view(np.uint64)


def _encode_int64_decimals(words: U8, precision: int) -> tuple[list[MatrixPart], Mask]:
    """``encode_decimals`` of decimal128 ``words`` whose valid values fit an int64."""
    limbs = np.ascontiguousarray(words).view("<i8")
    low = limbs[:, 0]
    magnitude = _int64_magnitude(low)
    too_wide = (limbs[:, 1] != (low >> 63)) | (magnitude >= np.uint64(10**precision))
    byte_count = np.searchsorted(_BYTE_COUNT_STEPS, magnitude, side="right") + 1
    byte_count[too_wide] = 1  # refused rows: any bytes, they are not written
    n = len(low)
    count_byte = (byte_count * 2).astype(np.uint8).reshape(n, 1)
    big_endian = low.astype(">i8").view(np.uint8).reshape(n, 8)
    return [
        MatrixPart(count_byte, np.ones(n, dtype=np.int64)),
        MatrixPart(big_endian, byte_count.astype(np.int64), right_aligned=True),
    ], too_wide


def decode_decimals(
    padded: U8, starts: I64, byte_counts: I64, kind: pa.DataType
) -> tuple[pa.Array, Mask]:
    """Big-endian two's complement values at ``starts`` -> an Arrow decimal array of ``kind``,
    and the rows that are corrupt (too many bytes for the type, or more digits than its
    precision). ``padded`` has at least 32 bytes before any start and after the data."""
    width = arrow_decimal_width(kind)
    if width == 16 and kind.precision <= _INT64_PRECISION and byte_counts.max(initial=0) <= 8:
        return _decode_int64_decimals(padded, starts, byte_counts, kind)
    too_long = byte_counts > width
    counts = np.where(too_long, 0, byte_counts)
    # The ``width`` bytes that end where the value ends, reversed: little-endian, with the
    # bytes before the value (beyond ``counts``) replaced by the sign.
    window = sliding_window_view(padded, width)[starts + counts - width][:, ::-1]
    negative = (padded[starts] >= 0x80) & (counts > 0)
    fill = np.where(negative, 0xFF, 0).astype(np.uint8)[:, None]
    words = np.where(np.arange(width) < counts[:, None], window, fill).astype(np.uint8)
    bad = too_long | ~_below_power_of_ten(_magnitude(words), kind.precision)
    words[bad] = 0
    array = pa.Array.from_buffers(kind, len(starts), [None, pa.py_buffer(words)])
    return array, bad


def _decode_int64_decimals(
    padded: U8, starts: I64, byte_counts: I64, kind: pa.DataType
) -> tuple[pa.Array, Mask]:
    """``decode_decimals`` of values of at most 8 bytes into a decimal128 of at most 18
    digits, in int64 arithmetic."""
    # The 8 bytes that end where a value ends, read big-endian: the value is their low
    # ``count`` bytes; shifting the bytes before it out to the left and back extends its sign.
    ends = starts + byte_counts
    word = np.ascontiguousarray(sliding_window_view(padded, 8)[ends - 8]).view(">i8").ravel()
    dropped = ((8 - byte_counts) * 8).clip(0, 63)
    values = np.where(byte_counts > 0, (word.astype(np.int64) << dropped) >> dropped, 0)
    bad = _int64_magnitude(values) >= np.uint64(10**kind.precision)
    values[bad] = 0
    words = np.empty((len(values), 2), dtype=np.int64)
    words[:, 0] = values
    words[:, 1] = values >> 63
    return pa.Array.from_buffers(kind, len(values), [None, pa.py_buffer(words)]), bad


def unsigned_as_decimal(array: pa.Array) -> pa.Array:
    """A uint64 array as decimal128(20,0) with the same values (nulls kept)."""
    n = len(array)
    words = np.zeros((n, 2), dtype="<u8")
    raw = np.frombuffer(array.buffers()[1], dtype="<u8", count=array.offset + n)
    words[:, 0] = raw[array.offset :]
    validity = array.buffers()[0] if array.null_count else None
    if validity is not None and array.offset:
        validity = pa.array(np.asarray(array.is_valid())).buffers()[1]
    return pa.Array.from_buffers(
        pa.decimal128(20, 0), n, [validity, pa.py_buffer(words)], null_count=array.null_count
    )


def decode_unsigned(padded: U8, starts: I64, byte_counts: I64) -> tuple[pa.Array, Mask]:
    """decimal(20,0) values at ``starts`` -> a uint64 array, and the rows that are corrupt or
    outside 0 .. 2**64-1."""
    decimals, bad = decode_decimals(padded, starts, byte_counts, pa.decimal128(20, 0))
    words = np.frombuffer(decimals.buffers()[1], dtype="<u8").reshape(-1, 2)
    bad = bad | (words[:, 1] != 0)
    values = np.where(bad, 0, words[:, 0]).astype("<u8")
    return pa.Array.from_buffers(pa.uint64(), len(values), [None, pa.py_buffer(values)]), bad

"""UUID columns to and from their text form (``8-4-4-4-12`` lowercase hex), with numpy.

Arrow's cast from a UUID column to string gives the 16 raw bytes, and there is no cast from
text to UUID, so both directions are done here over the whole column at once.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_HEX_DIGITS = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_HYPHENS = [8, 13, 18, 23]
_DIGIT_SLOTS = [i for i in range(36) if i not in _HYPHENS]
_UUID_HEX = "^[0-9a-fA-F]{32}$"
_ZERO_HEX = "0" * 32


def _nibble_table() -> np.ndarray:
    table = np.zeros(256, dtype=np.uint8)
    for value, char in enumerate(b"0123456789abcdef"):
        table[char] = value
        table[ord(chr(char).upper())] = value
    return table


_NIBBLES = _nibble_table()


def uuid_to_text(column: pa.Array) -> pa.StringArray:
    """The text form of each UUID of ``column`` (a UUID or ``binary(16)`` array); nulls stay."""
    storage = column.storage if isinstance(column, pa.ExtensionArray) else column
    n = len(storage)
    data = storage.buffers()[1]
    if n == 0 or data is None:
        return pa.nulls(n, pa.string())
    raw = np.frombuffer(data, dtype=np.uint8)[storage.offset * 16 : (storage.offset + n) * 16]
    raw = raw.reshape(n, 16)
    digits = np.empty((n, 32), dtype=np.uint8)
    digits[:, 0::2] = _HEX_DIGITS[raw >> 4]
    digits[:, 1::2] = _HEX_DIGITS[raw & 0x0F]
    text = np.full((n, 36), ord("-"), dtype=np.uint8)
    text[:, _DIGIT_SLOTS] = digits
    offsets = np.arange(0, 36 * (n + 1), 36, dtype=np.int32)
    result = pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(text.tobytes()))
    if storage.null_count:
        result = pc.if_else(pc.is_valid(storage), result, pa.scalar(None, pa.string()))
    return result


def uuid_from_text(column: pa.Array) -> tuple[pa.ExtensionArray, pa.BooleanArray]:
    """Parse UUID text (32 hex digits, hyphens anywhere, any case).

    Returns:
        The UUID column (null where the input is null or not a UUID) and a mask that is true
        where the input held text that is not a UUID.
    """
    text = pc.replace_substring(column.cast(pa.string()), "-", "")
    valid = pc.fill_null(pc.match_substring_regex(text, _UUID_HEX), False)
    invalid = pc.and_(pc.is_valid(column), pc.invert(valid))
    # Every slot now holds exactly 32 ASCII digits, so the data buffer is an n x 32 grid.
    padded = pc.if_else(valid, text, _ZERO_HEX)
    n = len(padded)
    offsets = np.frombuffer(padded.buffers()[1], dtype=np.int32)[padded.offset :]
    data = padded.buffers()[2]
    start = int(offsets[0]) if n else 0
    chars = np.frombuffer(data, dtype=np.uint8)[start : start + 32 * n].reshape(n, 32)
    raw = (_NIBBLES[chars[:, 0::2]] << 4) | _NIBBLES[chars[:, 1::2]]
    storage = pa.FixedSizeBinaryArray.from_buffers(
        pa.binary(16), n, [None, pa.py_buffer(raw.astype(np.uint8).tobytes())]
    )
    storage = pc.if_else(valid, storage, pa.scalar(None, pa.binary(16)))
    return pa.ExtensionArray.from_storage(pa.uuid(), storage), invalid

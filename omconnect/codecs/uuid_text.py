"""UUID columns to and from their text form (``8-4-4-4-12`` lower-case hex), with numpy.

Arrow's cast from a UUID column to string gives the 16 raw bytes, and there is no cast from
text to UUID, so both directions are table lookups over a (rows, characters) matrix for the
whole column at once. Text is written in the canonical form (what fastavro and Python's
``uuid`` write); it is read as 32 hex digits in any case with hyphens anywhere, as Python's
``uuid.UUID`` reads it.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

U8 = npt.NDArray[np.uint8]
Mask = npt.NDArray[np.bool_]

UUID_TEXT_LENGTH = 36
_HEX_LENGTH = 32
_HYPHEN = ord("-")
_HYPHENS = (8, 13, 18, 23)
# Text position of each of the 32 hex digits, in order.
_DIGIT_POSITIONS = np.array([i for i in range(UUID_TEXT_LENGTH) if i not in _HYPHENS])
_HEX_DIGITS = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_NOT_HEX = 255
_NIBBLE_OF = np.full(256, _NOT_HEX, dtype=np.uint8)
for _value, _char in enumerate(b"0123456789abcdef"):
    _NIBBLE_OF[_char] = _value
    _NIBBLE_OF[ord(chr(_char).upper())] = _value
_ZERO_HEX = "0" * _HEX_LENGTH


def uuid_bytes(column: pa.Array) -> U8:
    """The (rows, 16) bytes of an ``arrow.uuid`` (or ``fixed_size_binary(16)``) array; a
    view of its buffer, with whatever bytes null slots hold."""
    storage = column.storage if isinstance(column, pa.ExtensionArray) else column
    n = len(storage)
    data = storage.buffers()[1]
    if n == 0 or data is None:
        return np.zeros((n, 16), dtype=np.uint8)
    start = storage.offset * 16
    return np.frombuffer(data, dtype=np.uint8)[start : start + 16 * n].reshape(n, 16)


def uuid_text_matrix(raw: U8) -> U8:
    """(rows, 16) UUID bytes -> (rows, 36) characters of their canonical text."""
    n = len(raw)
    text = np.full((n, UUID_TEXT_LENGTH), _HYPHEN, dtype=np.uint8)
    text[:, _DIGIT_POSITIONS[0::2]] = _HEX_DIGITS[raw >> 4]
    text[:, _DIGIT_POSITIONS[1::2]] = _HEX_DIGITS[raw & 0x0F]
    return text


def uuid_to_text(column: pa.Array) -> pa.StringArray:
    """The text form of each UUID of ``column`` (a UUID or ``binary(16)`` array); nulls stay."""
    storage = column.storage if isinstance(column, pa.ExtensionArray) else column
    n = len(storage)
    text = uuid_text_matrix(uuid_bytes(storage))
    offsets = np.arange(0, UUID_TEXT_LENGTH * (n + 1), UUID_TEXT_LENGTH, dtype=np.int32)
    result = pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(text.tobytes()))
    if storage.null_count:
        result = pc.if_else(pc.is_valid(storage), result, pa.scalar(None, pa.string()))
    return result


def uuids_from_text_matrix(text: U8, kind: pa.DataType | None = None) -> tuple[pa.Array, Mask]:
    """(rows, width) characters -> an array of ``kind`` (``arrow.uuid``, the default, or
    ``fixed_size_binary(16)``) and the rows that are not a UUID (all zero bytes there).

    A row is a UUID when it holds 32 hex digits (any case) and hyphens, nothing else.
    """
    kind = pa.uuid() if kind is None else kind
    keep = text != _HYPHEN
    whole = keep.sum(axis=1) == _HEX_LENGTH
    digits = np.zeros((len(text), _HEX_LENGTH), dtype=np.uint8)
    digits[whole] = text[whole][keep[whole]].reshape(-1, _HEX_LENGTH)
    raw, not_hex = _bytes_of_hex(digits)
    bad = not_hex | ~whole
    raw[bad] = 0
    storage_type = kind.storage_type if isinstance(kind, pa.BaseExtensionType) else kind
    storage = pa.Array.from_buffers(
        storage_type, len(raw), [None, pa.py_buffer(np.ascontiguousarray(raw))]
    )
    if isinstance(kind, pa.BaseExtensionType):
        return pa.ExtensionArray.from_storage(kind, storage), bad
    return storage, bad


def uuid_from_text(column: pa.Array) -> tuple[pa.ExtensionArray, pa.BooleanArray]:
    """Parse UUID text (32 hex digits, any case, hyphens anywhere).

    Returns:
        The UUID column (null where the input is null or not a UUID) and a mask that is true
        where the input held text that is not a UUID.
    """
    text = pc.replace_substring(column.cast(pa.string()), "-", "")
    whole = pc.fill_null(pc.equal(pc.binary_length(text), _HEX_LENGTH), False)
    # Every slot now holds exactly 32 bytes, so the data buffer is an n x 32 grid.
    padded = pc.if_else(whole, text, _ZERO_HEX)
    n = len(padded)
    offsets = np.frombuffer(padded.buffers()[1], dtype=np.int32)[padded.offset :]
    start = int(offsets[0]) if n else 0
    data = padded.buffers()[2]
    chars = (
        np.frombuffer(data, dtype=np.uint8)[start : start + _HEX_LENGTH * n]
        if data is not None
        else np.zeros(0, np.uint8)
    ).reshape(n, _HEX_LENGTH)
    raw, not_hex = _bytes_of_hex(chars)
    valid = pc.and_(whole, pa.array(~not_hex, pa.bool_()))
    invalid = pc.and_(pc.is_valid(column), pc.invert(valid))
    storage = pa.FixedSizeBinaryArray.from_buffers(
        pa.binary(16), n, [None, pa.py_buffer(raw.tobytes())]
    )
    storage = pc.if_else(valid, storage, pa.scalar(None, pa.binary(16)))
    return pa.ExtensionArray.from_storage(pa.uuid(), storage), invalid


def _bytes_of_hex(digits: U8) -> tuple[U8, Mask]:
    """(rows, 32) hex characters -> (rows, 16) bytes and the rows with a non-hex character."""
    nibbles = _NIBBLE_OF[digits]
    not_hex = (nibbles == _NOT_HEX).any(axis=1)
    raw = ((nibbles[:, 0::2] << 4) | nibbles[:, 1::2]).astype(np.uint8)
    return raw, not_hex

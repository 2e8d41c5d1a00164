"""UUIDs between Arrow's 16-byte ``arrow.uuid`` values and Avro's 36-character strings.

Avro's ``uuid`` logical type is a string in the canonical form ``8-4-4-4-12`` lower-case hex
digits, which is what fastavro writes for a ``uuid.UUID``. Both directions are table lookups
over a (rows, 36) character matrix.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from omconnect.runtime.converters.avro.avro_types import zigzag_of_index
from omconnect.runtime.converters.avro.byte_parts import MatrixPart

U8 = npt.NDArray[np.uint8]
Mask = npt.NDArray[np.bool_]

UUID_TEXT_LENGTH = 36
_DASHES = (8, 13, 18, 23)
# Text position of each of the 32 hex digits, in order.
_DIGIT_POSITIONS = np.array([i for i in range(UUID_TEXT_LENGTH) if i not in _DASHES])
_HEX_DIGITS = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_NIBBLE_OF = np.full(256, 255, dtype=np.uint8)
for _value, _char in enumerate(b"0123456789abcdef"):
    _NIBBLE_OF[_char] = _value
    _NIBBLE_OF[ord(chr(_char).upper())] = _value


def uuid_bytes(array: pa.Array) -> U8:
    """The (rows, 16) bytes of an ``arrow.uuid`` (or fixed_size_binary(16)) array."""
    storage = array.storage if isinstance(array, pa.ExtensionArray) else array
    raw = np.frombuffer(storage.buffers()[1], dtype=np.uint8)
    start = storage.offset * 16
    return raw[start : start + 16 * len(storage)].reshape(len(storage), 16)


def encode_uuids(array: pa.Array) -> MatrixPart:
    """Each UUID as an Avro string: the length byte (36) then the canonical text."""
    raw = uuid_bytes(array)
    n = len(raw)
    nibbles = np.empty((n, 32), dtype=np.uint8)
    nibbles[:, 0::2] = raw >> 4
    nibbles[:, 1::2] = raw & 0x0F
    matrix = np.empty((n, UUID_TEXT_LENGTH + 1), dtype=np.uint8)
    matrix[:, 0] = zigzag_of_index(UUID_TEXT_LENGTH)
    matrix[:, 1 + np.array(_DASHES)] = ord("-")
    matrix[:, 1 + _DIGIT_POSITIONS] = _HEX_DIGITS[nibbles]
    return MatrixPart(matrix, np.full(n, UUID_TEXT_LENGTH + 1, dtype=np.int64))


def decode_uuids(text: U8, kind: pa.DataType) -> tuple[pa.Array, Mask]:
    """(rows, 36) characters -> an array of ``kind`` (``arrow.uuid`` or fixed_size_binary(16))
    and the rows that are not a well-formed UUID."""
    nibbles = _NIBBLE_OF[text[:, _DIGIT_POSITIONS]]
    bad = (nibbles == 255).any(axis=1) | (text[:, list(_DASHES)] != ord("-")).any(axis=1)
    raw = ((nibbles[:, 0::2] << 4) | nibbles[:, 1::2]).astype(np.uint8)
    raw[bad] = 0
    storage_type = kind.storage_type if isinstance(kind, pa.BaseExtensionType) else kind
    storage = pa.Array.from_buffers(
        storage_type, len(raw), [None, pa.py_buffer(np.ascontiguousarray(raw))]
    )
    if isinstance(kind, pa.BaseExtensionType):
        return pa.ExtensionArray.from_storage(kind, storage), bad
    return storage, bad

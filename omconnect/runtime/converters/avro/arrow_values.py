"""Arrow columns as numpy values in Avro's units, and numpy values back as Arrow columns.

Reads go straight to the Arrow buffers (respecting the array offset), so nothing is copied
into Python objects. Values under null slots are whatever the buffer holds; callers use the
validity mask to ignore them.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pyarrow as pa

Mask = npt.NDArray[np.bool_]
I64 = npt.NDArray[np.int64]

# Units per second of each Arrow time unit, and of the Avro logical types that carry time.
_PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}
AVRO_TIME_UNITS = {
    "timestamp-millis": "ms",
    "timestamp-micros": "us",
    "timestamp-nanos": "ns",
    "local-timestamp-millis": "ms",
    "local-timestamp-micros": "us",
    "local-timestamp-nanos": "ns",
    "time-millis": "ms",
    "time-micros": "us",
}
_MS_PER_DAY = 86_400_000


def storage_of(array: pa.Array) -> pa.Array:
    """The storage array of an extension array, else the array itself."""
    return array.storage if isinstance(array, pa.ExtensionArray) else array


def valid_mask(array: pa.Array) -> Mask | None:
    """True where ``array`` holds a value; None when it has no nulls."""
    if array.null_count == 0:
        return None
    bitmap = array.buffers()[0]
    if bitmap is None:  # null type, or a union: every slot counts as null here
        return np.zeros(len(array), dtype=np.bool_)
    bits = np.unpackbits(np.frombuffer(bitmap, dtype=np.uint8), bitorder="little")
    return bits[array.offset : array.offset + len(array)].astype(np.bool_)


def fixed_width_values(array: pa.Array, dtype: npt.DTypeLike) -> npt.NDArray[np.generic]:
    """The data buffer of a fixed-width primitive array, as numpy values of ``dtype``."""
    array = storage_of(array)
    if pa.types.is_boolean(array.type):
        bits = np.unpackbits(np.frombuffer(array.buffers()[1], dtype=np.uint8), bitorder="little")
        return bits[array.offset : array.offset + len(array)].astype(dtype)
    width = array.type.bit_width // 8
    native = np.dtype(
        f"<{'f' if pa.types.is_floating(array.type) else _int_code(array.type)}{width}"
    )
    raw = np.frombuffer(array.buffers()[1], dtype=native, count=array.offset + len(array))
    return raw[array.offset :].astype(dtype, copy=False)


def _int_code(kind: pa.DataType) -> str:
    return "u" if pa.types.is_unsigned_integer(kind) else "i"


def integer_values(array: pa.Array, logical: str | None) -> I64:
    """An integer-like column as int64 in the units of Avro ``logical`` type.

    Timestamps and times are converted to the logical type's unit (flooring when finer
    units are dropped); dates become days; plain integers are returned as they are.
    """
    kind = array.type
    values = fixed_width_values(array, np.int64).astype(np.int64, copy=False)
    if pa.types.is_date64(kind):
        return np.floor_divide(values, _MS_PER_DAY)
    if pa.types.is_timestamp(kind) or pa.types.is_time(kind):
        target = AVRO_TIME_UNITS.get(logical or "", kind.unit)
        return rescale(values, kind.unit, target)
    return values


def rescale(values: I64, unit: str, target: str) -> I64:
    """Integers counted in ``unit`` -> counted in ``target`` (floor when dropping precision)."""
    source_rate, target_rate = _PER_SECOND[unit], _PER_SECOND[target]
    if source_rate == target_rate:
        return values
    if source_rate < target_rate:
        return values * (target_rate // source_rate)
    return np.floor_divide(values, source_rate // target_rate)


def integer_array(values: I64, kind: pa.DataType, logical: str | None) -> pa.Array:
    """int64 values in Avro ``logical`` units -> an Arrow array of ``kind`` (no nulls).

    The caller has range-checked values for narrow integer kinds.
    """
    if pa.types.is_timestamp(kind) or pa.types.is_time(kind):
        values = rescale(values, AVRO_TIME_UNITS.get(logical or "", kind.unit), kind.unit)
    elif pa.types.is_date64(kind):
        values = values * _MS_PER_DAY
    storage = kind.storage_type if isinstance(kind, pa.BaseExtensionType) else kind
    width = storage.bit_width // 8
    native = values.astype(f"<{_int_code(storage)}{width}")
    array = pa.Array.from_buffers(storage, len(values), [None, pa.py_buffer(native)])
    if isinstance(kind, pa.BaseExtensionType):
        return pa.ExtensionArray.from_storage(kind, array)
    return array


def integer_bounds(kind: pa.DataType) -> tuple[int, int]:
    """The smallest and largest value an Arrow integer-like type holds."""
    storage = kind.storage_type if isinstance(kind, pa.BaseExtensionType) else kind
    bits = storage.bit_width
    if pa.types.is_unsigned_integer(storage):
        return 0, 2**bits - 1
    return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1

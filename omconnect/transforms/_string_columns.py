"""Which columns count as text, and turning other columns into text."""

from __future__ import annotations

import pyarrow as pa

from omconnect.codecs.uuid_text import uuid_to_text


def is_text(arrow_type: pa.DataType) -> bool:
    """True for Arrow's string types (not enums, JSON or UUIDs, which have their own rules)."""
    return bool(
        pa.types.is_string(arrow_type)
        or pa.types.is_large_string(arrow_type)
        or pa.types.is_string_view(arrow_type)
    )


def is_bytes(arrow_type: pa.DataType) -> bool:
    return bool(
        pa.types.is_binary(arrow_type)
        or pa.types.is_large_binary(arrow_type)
        or pa.types.is_binary_view(arrow_type)
        or pa.types.is_fixed_size_binary(arrow_type)
    )


def as_text(column: pa.Array) -> pa.Array:
    """``column`` as a string array: UUIDs in their hex form, JSON as its text, and anything
    Arrow can cast (numbers, booleans, decimals, dates, times, timestamps, enums) by cast.

    Raises:
        pyarrow.ArrowNotImplementedError: for types with no text form (lists, maps, structs).
    """
    if isinstance(column.type, pa.UuidType):
        return uuid_to_text(column)
    if isinstance(column, pa.ExtensionArray):
        return column.storage.cast(pa.string())
    return column.cast(pa.string())

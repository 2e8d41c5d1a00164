"""Casting one Arrow column to an omconnect type, safely, with the rules Arrow lacks.

``pyarrow.compute.cast(safe=True)`` does most of the work; this module adds what it does not
do: text and bytes to UUID and back, JSON to text, text to time, enum symbol checks, and one
rule for time zones: a zone-less value (text without an offset, or a local timestamp) cast
to ``timestamp(ZONE)`` is read as wall-clock time in ZONE, and a zoned timestamp cast to a
local one keeps its wall-clock time in its zone.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from omconnect.codecs.uuid_text import uuid_from_text
from omconnect.schemas import types as t
from omconnect.schemas.arrow import to_arrow_type
from omconnect.schemas.types import DataType, Kind
from omconnect.transforms._string_columns import as_text, is_bytes, is_text

# Text ending in a zone offset (``Z``, ``+02``, ``+0200``, ``+02:00``) names its own instant.
_ZONE_SUFFIX = r"(?:Z|[+-]\d\d(?::?\d\d)?)$"


def cast_column(column: pa.Array, target: DataType) -> pa.Array:
    """``column`` as values of ``target``'s Arrow type.

    Raises:
        pyarrow.ArrowInvalid: a value does not fit (overflow, truncation, unparsable text,
            not a UUID, not an enum symbol).
        pyarrow.ArrowNotImplementedError: there is no cast between the two types.
    """
    arrow_target = to_arrow_type(target)
    if column.type == arrow_target:
        return column
    if target.kind == Kind.UUID:
        return _to_uuid(column)
    if target.kind in (Kind.STRING, Kind.JSON) and (
        isinstance(column, pa.ExtensionArray) or is_text(column.type)
    ):
        text = as_text(column)
        return text if target.kind == Kind.STRING else pc.cast(text, arrow_target)
    if target.kind == Kind.TIME and is_text(column.type):
        stamps = pc.binary_join_element_wise("1970-01-01 ", column.cast(pa.string()), "")
        return pc.cast(stamps, pa.timestamp("us")).cast(arrow_target)
    if isinstance(target, t.Timestamp):
        return _to_timestamp(column, target, arrow_target)
    if isinstance(target, t.Enum):
        return _to_enum(column, target, arrow_target)
    return pc.cast(column, arrow_target, safe=True)


def _to_uuid(column: pa.Array) -> pa.Array:
    if is_bytes(column.type):
        return pa.ExtensionArray.from_storage(pa.uuid(), pc.cast(column, pa.binary(16)))
    if not is_text(column.type):
        raise pa.ArrowNotImplementedError(f"Unsupported cast from {column.type} to uuid")
    uuids, invalid = uuid_from_text(column)
    if pc.any(invalid).as_py():
        first = column.filter(invalid)[0].as_py()
        raise pa.ArrowInvalid(f"{first!r} is not a UUID")
    return uuids


def _to_timestamp(column: pa.Array, target: t.Timestamp, arrow_target: pa.DataType) -> pa.Array:
    zone = target.timezone
    source = column.type
    if pa.types.is_timestamp(source) and (source.tz is None) != (zone is None):
        if zone is None:
            return pc.local_timestamp(column).cast(arrow_target)
        return pc.assume_timezone(column.cast(pa.timestamp("us")), timezone=zone)
    if is_text(source) and zone is not None:
        text = column.cast(pa.string())
        has_offset = pc.fill_null(pc.match_substring_regex(text, _ZONE_SUFFIX), False)
        no_text = pa.scalar(None, pa.string())
        zoned = pc.cast(pc.if_else(has_offset, text, no_text), arrow_target, safe=True)
        wall_clock = pc.cast(pc.if_else(has_offset, no_text, text), pa.timestamp("us"), safe=True)
        local = pc.assume_timezone(wall_clock, timezone=zone)
        return pc.if_else(has_offset, zoned, local)
    return pc.cast(column, arrow_target, safe=True)


def _to_enum(column: pa.Array, target: t.Enum, arrow_target: pa.DataType) -> pa.Array:
    text = as_text(column) if not is_text(column.type) else column
    unknown = pc.and_(pc.is_valid(text), pc.invert(pc.is_in(text, pa.array(target.symbols))))
    if pc.any(unknown).as_py():
        first = text.filter(unknown)[0].as_py()
        raise pa.ArrowInvalid(f"{first!r} is not one of {', '.join(target.symbols)}")
    return pc.cast(text, arrow_target)

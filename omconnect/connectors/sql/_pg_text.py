"""PostgreSQL values in their text output form -> typed Arrow columns, a column at a time.

pgoutput sends every value as its type's text output, which depends on the session's
settings; the replication connection pins them (``DATESTYLE=ISO``, ``TIMEZONE=UTC``,
``INTERVALSTYLE=postgres``, ``EXTRA_FLOAT_DIGITS=3``, ``BYTEA_OUTPUT=hex``), so each type has
one text form, parsed here with Arrow's casts over a whole column (``parse``), no Python per
value. The stream hands over the texts of a batch's columns of one type end to end in one
string array (``_cdc_events``), so a batch of changes costs one cast per type, not one per
column: what a batch of a single row costs is mostly such calls.

Types are chosen from the relation message's type OIDs and modifiers, matching what the
``sql`` connector reflects for the same column (``schemas.sql``), so snapshot rows and
streamed rows of a table have one schema. A type without a mapping here (arrays, ranges,
geometric and network types, domains, enums) is carried as its text.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from omconnect.codecs.uuid_text import uuid_from_text
from omconnect.schemas import types as t
from omconnect.schemas.arrow import to_arrow_type
from omconnect.schemas.types import DataType

# Built-in type OIDs (pg_type.oid; stable across PostgreSQL versions).
_BY_OID: dict[int, DataType] = {
    16: t.boolean(),
    17: t.binary(),
    20: t.int64(),
    21: t.int16(),
    23: t.int32(),
    25: t.string(),
    114: t.json(),
    700: t.float32(),
    701: t.float64(),
    1042: t.string(),
    1043: t.string(),
    1082: t.date(),
    1083: t.time(),
    1114: t.timestamp(None),
    1184: t.timestamp("UTC"),
    2950: t.uuid(),
    3802: t.json(),
}
_NUMERIC = 1700

# Compute functions' text arguments, made once: a Python str argument is converted on every
# call, which costs more than the call itself on a batch of one row.
_TRUE = pa.scalar("t", pa.string())
_EPOCH_DAY = pa.scalar("1970-01-01 ", pa.string())
_NO_TEXT = pa.scalar("", pa.string())

# Session settings under which every value has the one text form parsed here.
SESSION_SETTINGS = (
    "-c datestyle=ISO -c timezone=UTC -c intervalstyle=postgres "
    "-c extra_float_digits=3 -c bytea_output=hex"
)


def type_of(type_oid: int, modifier: int) -> DataType:
    """The omconnect type of a column of PostgreSQL type ``type_oid`` with ``modifier``."""
    if type_oid == _NUMERIC:
        if modifier < 4:
            # Imported here: schemas.sql imports SQLAlchemy, and plugins load this module.
            from omconnect.schemas.sql import UNCONSTRAINED_NUMERIC

            return UNCONSTRAINED_NUMERIC
        precision, scale = ((modifier - 4) >> 16) & 0xFFFF, (modifier - 4) & 0xFFFF
        return t.decimal(precision, scale)
    return _BY_OID.get(type_oid, t.string())


def carried_as_text(type_oid: int) -> bool:
    """Whether a column of ``type_oid`` has no mapping here and is carried as its text."""
    return type_oid != _NUMERIC and type_oid not in _BY_OID


def column(texts: Sequence[bytes | None], dtype: DataType) -> pa.Array:
    """The Arrow column of ``dtype`` holding ``texts`` (None is SQL NULL).

    Raises:
        ValueError: a text is not a value of ``dtype`` (a numeric ``NaN`` or one with more
            digits than ``decimal(38, 9)``, an infinite date); says which.
    """
    try:
        raw = pa.array(texts, pa.binary()).cast(pa.string())
    except pa.ArrowInvalid as error:
        raise ValueError(f"a value is not UTF-8 text: {error}") from None
    return parse(raw, dtype)


def parse(raw: pa.StringArray, dtype: DataType) -> pa.Array:
    """``column`` of texts already in an Arrow string array: the values of several columns
    of one type are parsed by one call (``_cdc_events`` lays them end to end).

    Raises:
        ValueError: as ``column``.
    """
    parser = _parser(dtype)
    if parser is None:  # text carried as it is
        return raw
    try:
        return parser(raw)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
        raise ValueError(f"a value is not a {dtype}: {error}") from None


Parser = Callable[[pa.StringArray], pa.Array]


@functools.cache
def _parser(dtype: DataType) -> Parser | None:
    """How texts become values of ``dtype`` (None: they are kept as text); chosen once per
    type, as a batch of one row costs little more than this choice."""
    target = to_arrow_type(dtype)
    if target == pa.string():
        return None
    if dtype == t.boolean():
        return lambda raw: pc.equal(raw, _TRUE)
    if dtype == t.binary():
        return _hex_bytes
    if dtype == t.uuid():
        return _uuids
    if dtype == t.time():
        return functools.partial(_times, target=target)
    if isinstance(target, pa.BaseExtensionType):  # json: the text as it is
        storage = target.storage_type
        return lambda raw: pa.ExtensionArray.from_storage(target, _cast(raw, storage))
    return functools.partial(_cast, target=target)


@functools.cache
def _cast_options(target: pa.DataType) -> pc.CastOptions:
    return pc.CastOptions.safe(target)


def _cast(array: pa.Array, target: pa.DataType) -> pa.Array:
    """``array.cast(target)`` without building the cast's options again (a third of a cast
    of one value)."""
    return pc.call_function("cast", [array], _cast_options(target))


def _uuids(raw: pa.StringArray) -> pa.Array:
    uuids, invalid = uuid_from_text(raw)
    if pc.any(invalid).as_py():
        raise ValueError("a value is not a UUID")
    return uuids


def _times(raw: pa.StringArray, target: pa.DataType) -> pa.Array:
    midnight = pc.binary_join_element_wise(_EPOCH_DAY, raw, _NO_TEXT)
    micros = midnight.cast(pa.timestamp("us")).cast(pa.int64())
    return micros.cast(pa.time64("us")).cast(target)


def _hex_bytes(raw: pa.StringArray) -> pa.Array:
    r"""``\x0a1b...`` (``bytea_output=hex``) -> the bytes."""
    digits = pc.utf8_slice_codeunits(raw, 2)  # a new array: its digits lie end to end
    offsets = np.frombuffer(digits.buffers()[1], np.int32)[: len(digits) + 1]
    lengths = np.diff(offsets)
    if np.any(lengths % 2):
        raise ValueError("a bytea value has an odd number of hex digits")
    data_buffer = digits.buffers()[2]
    chars = (
        np.frombuffer(data_buffer, np.uint8)[offsets[0] : offsets[-1]]
        if data_buffer is not None
        else np.zeros(0, np.uint8)
    )
    nibbles = np.where(chars <= 57, chars - 48, (chars | 0x20) - 87).astype(np.uint8)
    data = (nibbles[0::2] << 4) | nibbles[1::2]
    byte_offsets = ((offsets - offsets[0]) // 2).astype(np.int32)
    validity = raw.is_valid().buffers()[1] if raw.null_count else None
    return pa.Array.from_buffers(
        pa.binary(), len(raw), [validity, pa.py_buffer(byte_offsets), pa.py_buffer(data.tobytes())]
    )


__all__ = ["SESSION_SETTINGS", "carried_as_text", "column", "parse", "type_of"]

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
geometric and network types, domains, enums, ``interval``) is carried as its text.

Some values PostgreSQL writes do not fit their column's type (checked against PostgreSQL 15):
a numeric ``NaN``, ``Infinity`` or ``-Infinity``, or one with more digits than its decimal
holds (an unconstrained ``numeric`` is ``decimal(38,9)``); a date or timestamp ``infinity`` or
``-infinity``, before year 1 (``4713-01-01 BC``) or after 9999 (``294276-12-31``: Arrow's
parse and Python's ``datetime`` stop there); the time ``24:00:00``. Floats take ``NaN``,
``Infinity``, ``-Infinity`` and ``-0``; integers, booleans, UUIDs and ``bytea`` always fit.
``parse`` fails for such a value; ``parse_masked`` returns the column with it null and a mask
of the values that did not fit, so that the others flow on. Both cost one parse when every
value fits; only when that parse fails are the values looked at: vectorised checks mask the
forms above, and what they miss is found by parsing halves of the column down to the values
that fail alone.
"""

from __future__ import annotations

import functools
import json
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
        ValueError: a text is not UTF-8, or does not fit ``dtype`` (a numeric ``NaN``, an
            infinite date: see the module docstring); says which.
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
        ValueError: a value does not fit ``dtype``; names the first such value.
    """
    values, misfits = parse_masked(raw, dtype)
    if misfits is not None:
        first = raw[int(np.flatnonzero(misfits)[0])].as_py()
        raise ValueError(misfit_reason(first, dtype))
    return values


def parse_masked(raw: pa.StringArray, dtype: DataType) -> tuple[pa.Array, np.ndarray | None]:
    """``parse`` that does not fail for the values that do not fit ``dtype``.

    Returns:
        The column, those values null in it, and a numpy mask over ``raw`` that is true for
        them; None when every value fits (then the cost is one parse, as ``parse``'s).
    """
    parser = _parser(dtype)
    if parser is None:  # text carried as it is
        return raw, None
    try:
        return parser(raw), None
    except ValueError:  # (ArrowInvalid too) some value does not fit
        pass
    if isinstance(dtype, t.Decimal):
        from omconnect.connectors.sql._arrow_reads import _FRACTION_TRAILING_ZEROS

        # Arrow counts a fraction's trailing zeros against the precision; PostgreSQL keeps
        # them (``1.000000000000`` in a numeric fits a decimal(38,9) all the same).
        raw = pc.replace_substring_regex(raw, _FRACTION_TRAILING_ZEROS, r"\1")
    known = _never_fitting(raw, dtype)
    if known is not None:
        raw = pc.if_else(pa.array(known), pa.scalar(None, raw.type), raw)
    values, found = _by_halves(raw, parser)
    if known is not None:
        found = known if found is None else found | known
    return values, found


def utf8_masked(
    raw: pa.BinaryArray | pa.LargeBinaryArray,
) -> tuple[pa.StringArray, np.ndarray | None]:
    """``raw`` as a string array, the values that are not UTF-8 null in it, and a numpy mask
    that is true for those (None when every value is UTF-8: one cast then)."""
    return _by_halves(raw, _as_strings)


def misfit_reason(text: str | bytes, dtype: DataType) -> str:
    """One line: ``text`` (quoted, cut short when long) does not fit ``dtype``, or, bytes that
    do not decode, is not UTF-8 text."""
    if isinstance(text, bytes):
        try:
            return misfit_reason(text.decode(), dtype)
        except UnicodeDecodeError:
            cut = "..." if len(text) > _SHOWN_CHARACTERS else ""
            return f"{text[:_SHOWN_CHARACTERS]!r}{cut} is not UTF-8 text"
    return f"{_shown(text)} does not fit {dtype}"


def _shown(text: str) -> str:
    """``text`` quoted as JSON, cut short when long; on one line whatever it holds."""
    cut = text if len(text) <= _SHOWN_CHARACTERS else text[:_SHOWN_CHARACTERS] + "..."
    return json.dumps(cut, ensure_ascii=False).translate(_LINE_BREAKS)


Parser = Callable[[pa.StringArray], pa.Array]

# How many characters of a value that does not fit its reason shows.
_SHOWN_CHARACTERS = 80
# The line breaks (for ``str.splitlines``) that JSON leaves as they are.
_LINE_BREAKS = str.maketrans({"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"})

# The texts PostgreSQL writes for values that never fit a type, by type: infinite and BC
# dates and times, years after 9999 (five digits or more), the time 24:00:00.
_DATE_OUTSIDE = r"infinity|BC$|^[0-9]{5}"
_NEVER_FIT: dict[DataType, str] = {
    t.date(): _DATE_OUTSIDE,
    t.timestamp(None): _DATE_OUTSIDE,
    t.timestamp("UTC"): _DATE_OUTSIDE,
    t.time(): r"^24:",
}


def _never_fitting(raw: pa.StringArray, dtype: DataType) -> np.ndarray | None:
    """True for the texts of ``raw`` that the vectorised checks find never fit ``dtype``
    (None: no check for ``dtype``, or none found). The checks need not be complete: what
    they miss, ``_by_halves`` finds.

    Decimal text is checked as the ``sql`` source checks what its drivers read (NaN and
    infinities, digits before and after the point), by its own function: imported here, when
    needed, as that module imports SQLAlchemy and every plugin loads this one."""
    if isinstance(dtype, t.Decimal):
        from omconnect.connectors.sql._arrow_reads import _decimal_text_checks

        checks = [mask for mask, _ in _decimal_text_checks(raw, dtype)]
    elif dtype in _NEVER_FIT:
        checks = [pc.match_substring_regex(raw, _NEVER_FIT[dtype])]
    else:
        return None
    found = np.zeros(len(raw), np.bool_)
    for mask in checks:
        found |= pc.fill_null(mask, False).to_numpy(zero_copy_only=False)
    return found if found.any() else None


def _by_halves(
    raw: pa.Array, convert: Callable[[pa.Array], pa.Array]
) -> tuple[pa.Array, np.ndarray | None]:
    """``convert(raw)`` in one call when it succeeds; otherwise converted in pieces (each half
    the same way), down to the values it fails on alone, which are null in the result and
    true in the mask."""
    try:
        return convert(raw), None
    except ValueError:  # (ArrowInvalid too)
        pass
    misfits = np.zeros(len(raw), np.bool_)
    pieces: list[pa.Array] = []

    def walk(start: int, length: int) -> None:
        try:
            pieces.append(convert(raw.slice(start, length)))
            return
        except ValueError:
            if length == 1:
                misfits[start] = True
                pieces.append(convert(pa.nulls(1, raw.type)))
                return
        half = length // 2
        walk(start, half)
        walk(start + half, length - half)

    walk(0, len(raw))
    return pa.concat_arrays(pieces), misfits if misfits.any() else None


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


_as_strings = functools.partial(_cast, target=pa.string())


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


__all__ = [
    "SESSION_SETTINGS",
    "carried_as_text",
    "column",
    "misfit_reason",
    "parse",
    "parse_masked",
    "type_of",
    "utf8_masked",
]

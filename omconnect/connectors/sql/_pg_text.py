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
streamed rows of a table have one schema. A type without a mapping here (ranges, geometric
and network types, domains, ``interval``, enums: a string, as Debezium's
``io.debezium.data.Enum``; arrays of all these) is carried as its text.

One-dimensional arrays of the types above are lists of them (``array<int32>``; an element may
be NULL): ``_pg_arrays`` splits a column of array texts into their elements, which are
parsed by one parse of their type. Snapshots select arrays as text too (``carried_as_text``
here, ``_arrow_reads`` for the ``sql`` source) and parse them with ``parse_masked``, so that
snapshot and stream parse the same text and agree: ADBC's binary read of an array would
flatten a multi-dimensional one into a list of all its elements, drop a first index other
than 1, spell a numeric ``NaN`` ``nan`` and read an infinite timestamp as a number out of
range. A multi-dimensional array (``{{1,2},{3,4}}``), one with another first index than 1
(``[0:1]={1,2}``) and one holding an element that does not fit its type do not fit a list:
PostgreSQL does not keep the number of dimensions in the column's type (``int4[][]`` is
``int4[]``), so any row of an array column may hold such a value, and it is a bad value of
its row (``parse_masked``), never a list that says something else than the array did.

A ``timestamptz``'s text holds its offset. The stream's session is in UTC; the ``sql``
source's keeps its own time zone (``ARRAY_TEXT_STATEMENTS``), in which a time before the
zone kept standard time has an offset in seconds (``1850-01-01 00:09:21+00:09:21`` in
``Europe/Paris``): parsed too, where Arrow's parse does not take it.

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
from omconnect.connectors.sql._pg_arrays import shape_misfit, split_arrays
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
# The array types of those (pg_type.typarray -> its typelem), as stable as they are.
_ELEMENT_OF: dict[int, int] = {
    1000: 16,
    1001: 17,
    1016: 20,
    1005: 21,
    1007: 23,
    1009: 25,
    199: 114,
    1021: 700,
    1022: 701,
    1014: 1042,
    1015: 1043,
    1182: 1082,
    1183: 1083,
    1115: 1114,
    1185: 1184,
    2951: 2950,
    3807: 3802,
    1231: _NUMERIC,
}

# Compute functions' text arguments, made once: a Python str argument is converted on every
# call, which costs more than the call itself on a batch of one row.
_TRUE = pa.scalar("t", pa.string())
_EPOCH_DAY = pa.scalar("1970-01-01 ", pa.string())
_NO_TEXT = pa.scalar("", pa.string())

# The session settings under which every value has the one text form parsed here: as the
# options of a connection (``SESSION_SETTINGS``), or statements run on one opened without
# them (``SESSION_STATEMENTS``: a snapshot's, before it reads).
_SETTINGS = {
    "datestyle": "ISO",
    "timezone": "UTC",
    "intervalstyle": "postgres",
    "extra_float_digits": "3",
    "bytea_output": "hex",
}
SESSION_SETTINGS = " ".join(f"-c {name}={value}" for name, value in _SETTINGS.items())
SESSION_STATEMENTS = tuple(f"SET {name} = '{value}'" for name, value in _SETTINGS.items())
ARRAY_TEXT_STATEMENTS = tuple(
    f"SET {name} = '{_SETTINGS[name]}'"
    for name in ("datestyle", "extra_float_digits", "bytea_output")
)
"""What a session of the ``sql`` source runs before it selects arrays as text: the settings
of their elements' text forms, but the time zone (a ``timestamptz``'s text holds its offset,
and the source's ``LOCALTIMESTAMP`` and a query's own expressions keep the session's zone)
and the interval style (the source refuses intervals). ``datestyle`` sets the output format
only: the order in which a date's input is read stays the session's."""


def type_of(type_oid: int, modifier: int) -> DataType:
    """The omconnect type of a column of PostgreSQL type ``type_oid`` with ``modifier`` (of an
    array column, its elements' modifier: ``numeric(10,2)[]``)."""
    element = _ELEMENT_OF.get(type_oid)
    if element is not None:
        return t.array(type_of(element, modifier))
    if type_oid == _NUMERIC:
        if modifier < 4:
            # Imported here: schemas.sql imports SQLAlchemy, and plugins load this module.
            from omconnect.schemas.sql import UNCONSTRAINED_NUMERIC

            return UNCONSTRAINED_NUMERIC
        precision, scale = ((modifier - 4) >> 16) & 0xFFFF, (modifier - 4) & 0xFFFF
        return t.decimal(precision, scale)
    return _BY_OID.get(type_oid, t.string())


def carried_as_text(type_oid: int) -> bool:
    """Whether a snapshot selects a column of ``type_oid`` as text (``col::text``), read then
    by ``parse_masked`` as the stream's (``_arrow_reads.conform_rows``): types without a
    mapping here (kept as text) and arrays."""
    return type_oid in _ELEMENT_OF or (type_oid != _NUMERIC and type_oid not in _BY_OID)


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
    if isinstance(dtype, t.Array):
        return _arrays(raw, dtype)
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
    why = array_misfit(text, dtype) if isinstance(dtype, t.Array) else ""
    return f"{_shown(text)} does not fit {dtype}{': ' if why else ''}{why}"


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
    if isinstance(dtype, t.Timestamp) and dtype.timezone is not None:
        return functools.partial(_zoned_timestamps, target=target)
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


# An offset with seconds (local mean time): the text before it, its sign and its parts.
_SECONDS_OFFSET = (
    r"^(?P<local>.*[0-9])(?P<sign>[+-])"
    r"(?P<hours>[0-9]{2}):(?P<minutes>[0-9]{2}):(?P<seconds>[0-9]{2})$"
)
_MINUS = pa.scalar("-", pa.string())
_UNITS_PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}


def _zoned_timestamps(raw: pa.StringArray, target: pa.TimestampType) -> pa.Array:
    """Texts of ``timestamptz`` values, with their offsets, as instants: by Arrow's parse,
    and when it fails, the texts whose offset has seconds (see the module docstring) by
    their local time less their offset."""
    try:
        return _cast(raw, target)
    except ValueError:
        odd = pc.fill_null(pc.match_substring_regex(raw, _SECONDS_OFFSET), False)
        if not pc.any(odd).as_py():
            raise
    parts = pc.extract_regex(pc.if_else(odd, raw, pa.scalar(None, raw.type)), _SECONDS_OFFSET)
    local = _cast(pc.struct_field(parts, "local"), pa.timestamp(target.unit)).cast(pa.int64())
    seconds = pc.add(
        pc.add(
            pc.multiply(pc.struct_field(parts, "hours").cast(pa.int64()), 3600),
            pc.multiply(pc.struct_field(parts, "minutes").cast(pa.int64()), 60),
        ),
        pc.struct_field(parts, "seconds").cast(pa.int64()),
    )
    east = pc.multiply(seconds, _UNITS_PER_SECOND[target.unit])
    west = pc.equal(pc.struct_field(parts, "sign"), _MINUS)
    instants = pc.subtract_checked(local, pc.if_else(west, pc.negate(east), east))
    others = _cast(pc.if_else(odd, pa.scalar(None, raw.type), raw), target)
    return pc.if_else(odd, instants.cast(target), others)


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


# -- arrays --------------------------------------------------------------------------------


def _arrays(raw: pa.StringArray, dtype: t.Array) -> tuple[pa.Array, np.ndarray | None]:
    """``parse_masked`` of array texts: split (``_pg_arrays``), their elements parsed as one
    column, a row that is not a list, or holds an element that does not fit, null and
    masked."""
    split = split_arrays(raw)
    items, misfits = parse_masked(split.elements, dtype.items)
    bad = ~split.lists
    if misfits is not None:
        rows = np.repeat(np.arange(len(raw)), np.diff(split.offsets))
        bad[rows[misfits]] = True
    nulls = bad | raw.is_null().to_numpy(zero_copy_only=False) if raw.null_count else bad
    lists = pa.ListArray.from_arrays(
        pa.array(split.offsets),
        items,
        type=_arrow_type(dtype),
        mask=pa.array(nulls) if nulls.any() else None,
    )
    return lists, bad if bad.any() else None


_arrow_type = functools.cache(to_arrow_type)


def array_misfit(text: str, dtype: t.Array) -> str:
    """Why the array ``text`` does not fit ``dtype``: its shape (more dimensions than one, a
    first index other than 1) or its first element that does not fit; "" when neither (a
    text that is no array's)."""
    shape = shape_misfit(text)
    if shape:
        return shape
    split = split_arrays(pa.array([text], pa.string()))
    if split.lists[0]:
        _, misfits = parse_masked(split.elements, dtype.items)
        if misfits is not None:
            element = split.elements[int(np.flatnonzero(misfits)[0])].as_py()
            return f"its element {misfit_reason(element, dtype.items)}"
    return ""


__all__ = [
    "ARRAY_TEXT_STATEMENTS",
    "SESSION_SETTINGS",
    "SESSION_STATEMENTS",
    "array_misfit",
    "carried_as_text",
    "column",
    "misfit_reason",
    "parse",
    "parse_masked",
    "type_of",
    "utf8_masked",
]

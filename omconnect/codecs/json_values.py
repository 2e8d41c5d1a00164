"""JSON text back to typed Arrow columns: the reverse of ``json_text``, a column at a time.

JSON carries no schema, so ``pyarrow.json`` on its own infers one (decimals, bytes, UUIDs and
times come back as strings, unsigned 64-bit integers as doubles). Given the writer's Arrow
schema, ``json_records`` reads every value back as its exact type, following the conventions
``json_text`` writes; ``json_scan`` finds the values in the bodies, this module converts them:

- the bodies are parsed in one ``pyarrow.json`` call with an explicit schema of each field's
  JSON form: integers of every width and sign, floats, booleans, strings, decimals (strings
  or numbers) and the null type parse straight into their type; float16 parses as float32,
  and bytes, UUIDs, dates, times, timestamps and enums as strings;
- those strings are then converted with Arrow kernels and numpy: base64 to bytes
  (``json_text.base64_bytes``), UUID text (``uuid_text``), ``YYYY-MM-DD`` dates,
  ``hh:mm:ss[.fraction]`` times, ISO 8601 timestamps (``YYYY-MM-DDThh:mm:ss[.fraction]``,
  ``Z`` on zoned ones, µs or ns; over the whole int64 range, which ``pyarrow.json``'s own
  timestamp parser does not reach), enum symbols to dictionary indices; lists and structs
  are converted through their children;
- maps and JSON documents have no form ``pyarrow.json`` can parse into, so their text is cut
  out of the bodies by ``json_scan``'s structural scan. A JSON document keeps the text it was
  written with; a map's key texts are read back as the key type.

NaN and the infinities are written as the strings ``"NaN"``, ``"Infinity"`` and
``"-Infinity"`` (the convention of Jackson, which Kafka Connect's JsonConverter uses, and of
proto3's JSON mapping), which a float column of ``pyarrow.json`` refuses. So floats are still
parsed as numbers, which costs nothing more while no value is one of those strings; when such
a parse fails and the text holds one of them, the fields (or list items) holding floats are
read from their text instead: the scan cuts out each value, numbers are cast to floats and the
three strings become their values. A float whose text the scan cuts out anyway (a map's value
or key) is always read that way, which is cheaper than a parse.

Nulls stay null. A value that does not convert fails its row, with the reason, never the
batch; the values of a failed row are left unspecified. Nothing builds a Python object per
row: a body ``pyarrow.json`` refuses is found by halving the bodies until the refused ones
stand alone.

It lives below the connector API because both sides need it: the ``json`` converter reads
message bodies with the registered schema, and a JSON source with declared column types can
read its lines with them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from omconnect.codecs.json_scan import (
    I64,
    Container,
    Mask,
    Members,
    ObjectKeys,
    member_texts,
    numpy_mask,
    object_keys,
    read_json_objects,
    read_json_objects_refusing,
    refused_as_empty,
    single_chunk,
    split_members,
    unescaped_keys,
)
from omconnect.codecs.json_text import (
    SPECIAL_FLOAT_TEXTS,
    SPECIAL_FLOAT_WORDS,
    base64_bytes,
    data_bytes,
    text_offsets,
)
from omconnect.codecs.uuid_text import uuid_from_text
from omconnect.schemas.arrow import ENUM_KEY

FailWhere = Callable[[pa.Array | Mask, str], None]

_REASON_TEXT_LIMIT = 80
_FRACTION_DIGITS = {"us": 6, "ns": 9}
_TIME_TEXT = {
    unit: rf"^([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d{{1,{digits}}})?$"
    for unit, digits in _FRACTION_DIGITS.items()
}
_TIMESTAMP_TEXT = {
    unit: rf"^\d{{4}}-\d{{2}}-\d{{2}}[T ]\d{{2}}:\d{{2}}:\d{{2}}(\.\d{{1,{digits}}})?Z?$"
    for unit, digits in _FRACTION_DIGITS.items()
}
_EPOCH_TEXT = "1970-01-01T00:00:00"
_SECONDS_FORM = "%Y-%m-%d %H:%M:%S"
# (seconds, fraction) of the earliest and latest instants a 64-bit count of the unit holds.
_TIMESTAMP_LIMITS = {
    unit: (divmod(-(2**63), 10**digits), divmod(2**63 - 1, 10**digits))
    for unit, digits in _FRACTION_DIGITS.items()
}
# The texts of NaN, infinity and -infinity as json_text writes them, in that order, and the
# float values they stand for.
_SPECIAL_TEXTS = pa.array(SPECIAL_FLOAT_TEXTS, pa.string())
_SPECIAL_VALUES = [float("nan"), float("inf"), float("-inf")]
# Pieces of text only those texts hold (or string values that read the same): each of them
# without its opening quote and sign.
_SPECIAL_MARKS = [
    np.frombuffer(mark.encode(), np.uint8)
    for mark in dict.fromkeys(text.lstrip('"-') for text in SPECIAL_FLOAT_TEXTS)
]
# A JSON number, or (the text of a map key, unquoted) one of the words of the texts above.
_FLOAT_TEXT = rf"^(-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?|{'|'.join(SPECIAL_FLOAT_WORDS)})$"


@dataclass(frozen=True)
class JsonRecords:
    """Rows read from JSON objects.

    Attributes:
        batch: one row per body, of the schema asked for; the values of failed rows are
            unspecified.
        failed: body index -> why it could not be read (ascending).
        unknown_fields: top-level names found in the bodies (also in those that failed,
            when they are well-formed) that the schema does not have; their values are not
            read.
        keys: the top-level keys of every body, when the bodies were scanned for them all
            together (so always when ``unknown_fields`` is not empty, unless the bodies with
            NaN or an infinity were read apart).
    """

    batch: pa.RecordBatch
    failed: dict[int, Exception]
    unknown_fields: tuple[str, ...] = ()
    keys: ObjectKeys | None = None


def json_records(bodies: pa.Array, schema: pa.Schema) -> JsonRecords:
    """Each body (one JSON object, as ``json_text.json_objects`` writes it) as a row of
    ``schema``; a field missing from a body is null there.

    Bodies written from ``schema`` are read in one ``pyarrow.json`` call when the schema has
    no map or JSON field and no body holds NaN or an infinity; otherwise, or when that call
    fails, the top level of every body is scanned too (for the maps and JSON documents, for
    the floats of the bodies that hold NaN or an infinity, and for the names of unknown
    fields).
    """
    return _records(bodies.cast(pa.binary()), schema, floats_as_text=False)


def json_values(texts: pa.Array, value_field: pa.Field) -> tuple[pa.Array, dict[int, Exception]]:
    """Each text (one JSON value, or null) as a value of ``value_field``'s type; the dict
    holds the texts that do not convert, by index."""
    failures = _Failures()
    texts = texts.cast(pa.string())
    owners = np.arange(len(texts), dtype=np.int64)
    values = _values(texts, value_field, owners, value_field.name, failures)
    return values, failures.sorted()


def _records(bodies: pa.BinaryArray, schema: pa.Schema, floats_as_text: bool) -> JsonRecords:
    """``json_records``; with ``floats_as_text``, the fields that hold floats are read from
    the text the scan cuts out, not parsed by ``pyarrow.json``."""
    n = len(bodies)
    owners = np.arange(n, dtype=np.int64)
    failures = _Failures()
    plain = [f for f in schema if not _needs_scan(f.type, floats_as_text)]
    wire = _wire_schema(plain)
    special_checked = False
    if len(plain) == len(schema):
        # What json_objects writes of such a schema has no other field at any depth.
        try:
            table = read_json_objects(bodies, wire, "error")
        except (pa.ArrowInvalid, ValueError):
            special_checked = True
            apart = _split_at_special_floats(bodies, schema, plain)
            if apart is not None:
                return apart
        else:
            columns = [
                _converted(single_chunk(table.column(f.name)), f, owners, f.name, failures)
                for f in plain
            ]
            batch = pa.RecordBatch.from_arrays(columns, schema=schema)
            return JsonRecords(batch, failures.sorted())
    refused: dict[int, Exception] = {}
    try:
        table = read_json_objects(bodies, wire, "ignore")
    except (pa.ArrowInvalid, ValueError):
        apart = None if special_checked else _split_at_special_floats(bodies, schema, plain)
        if apart is not None:
            return apart
        table, refused = read_json_objects_refusing(bodies, wire, "ignore", "the body")
    failures.add_reasons(refused)
    by_name = {
        f.name: _converted(single_chunk(table.column(f.name)), f, owners, f.name, failures)
        for f in plain
    }
    members = split_members(refused_as_empty(bodies, refused), "object")
    names = unescaped_keys(members.keys)
    for f in schema:
        if f.name not in by_name:
            texts = member_texts(members, names, f.name, n)
            by_name[f.name] = _values(texts, f, owners, f.name, failures)
    keys = _with_refused_keys(ObjectKeys(names, members.rows, {}), bodies, refused)
    found = keys.names
    unknown = pc.unique(pc.filter(found, pc.invert(pc.is_in(found, pa.array(schema.names)))))
    batch = pa.RecordBatch.from_arrays([by_name[f.name] for f in schema], schema=schema)
    return JsonRecords(batch, failures.sorted(), tuple(unknown.to_pylist()), keys)


def _with_refused_keys(
    keys: ObjectKeys, bodies: pa.BinaryArray, refused: dict[int, Exception]
) -> ObjectKeys:
    """``keys`` (of the bodies but the ``refused`` ones) with the keys of the refused bodies
    that are well-formed objects (refused for a value of another type): those name their
    fields too."""
    if not refused:
        return keys
    rows = np.array(sorted(refused), dtype=np.int64)
    rest = object_keys(bodies.take(pa.array(rows)))
    return ObjectKeys(
        pa.concat_arrays([keys.names, rest.names]),
        np.concatenate([keys.objects, rows[rest.objects]]),
        {int(rows[r]): error for r, error in rest.refused.items()},
    )


def _split_at_special_floats(
    bodies: pa.BinaryArray, schema: pa.Schema, plain: list[pa.Field]
) -> JsonRecords | None:
    """After a parse of ``plain`` (fields that hold floats among them) failed: when some
    bodies hold the text of NaN or an infinity, the records of those bodies, read with their
    floats from text, beside the others, read as before; else None."""
    if not any(_holds(f.type, pa.types.is_floating) for f in plain):
        return None
    marked = _special_float_marks(bodies)
    if not marked.any():
        return None
    parts = []
    for rows, floats_as_text in ((np.flatnonzero(marked), True), (np.flatnonzero(~marked), False)):
        if len(rows):
            parts.append((rows, _records(bodies.take(pa.array(rows)), schema, floats_as_text)))
    position = np.empty(len(bodies), dtype=np.int64)
    position[np.concatenate([rows for rows, _ in parts])] = np.arange(len(bodies))
    batch = pa.concat_batches([records.batch for _, records in parts]).take(pa.array(position))
    failed = {int(rows[r]): e for rows, records in parts for r, e in records.failed.items()}
    unknown = dict.fromkeys(name for _, records in parts for name in records.unknown_fields)
    return JsonRecords(batch, dict(sorted(failed.items())), tuple(unknown))


def _wire_schema(fields: Iterable[pa.Field]) -> pa.Schema:
    """The explicit schema ``pyarrow.json`` parses ``fields`` with."""
    return pa.schema([f.with_type(_wire_type(f.type)).with_nullable(True) for f in fields])


def _wire_type(kind: pa.DataType) -> pa.DataType:
    """The type ``pyarrow.json`` parses the JSON form of ``kind`` into: ``kind`` itself where
    it can, float32 for float16, string for the types written as text it cannot parse."""
    if isinstance(kind, pa.BaseExtensionType) or pa.types.is_dictionary(kind):
        return pa.string()
    if pa.types.is_float16(kind):
        return pa.float32()
    if (
        pa.types.is_binary(kind)
        or pa.types.is_large_binary(kind)
        or pa.types.is_fixed_size_binary(kind)
        or pa.types.is_date(kind)
        or pa.types.is_time(kind)
        or pa.types.is_timestamp(kind)
    ):
        return pa.string()
    if pa.types.is_list(kind):
        return pa.list_(kind.value_field.with_type(_wire_type(kind.value_type)))
    if pa.types.is_struct(kind):
        return pa.struct([f.with_type(_wire_type(f.type)).with_nullable(True) for f in kind])
    return kind


class _Failures:
    """The reason each failed row failed (the first one found)."""

    def __init__(self) -> None:
        self.reasons: dict[int, Exception] = {}

    def add(self, rows: I64, path: str, reason: str, texts: pa.Array | None = None) -> None:
        """Fail ``rows`` with ``reason`` about the value at ``path``; with ``texts`` (one per
        row), each row's text is quoted before the reason."""
        if not len(rows):
            return
        place = f"{path}: " if path else ""
        shown = texts.to_pylist() if texts is not None else [None] * len(rows)
        for row, text in zip(rows.tolist(), shown, strict=True):
            if row not in self.reasons:
                quoted = "" if text is None else f"{_shortened(text)} "
                self.reasons[row] = ValueError(f"{place}{quoted}{reason}")

    def add_reasons(self, reasons: dict[int, Exception]) -> None:
        for row, error in reasons.items():
            self.reasons.setdefault(row, error)

    def failer(self, owners: I64, path: str, shown: pa.Array) -> FailWhere:
        """A function that fails the rows (``owners``) where its mask is true with its
        reason, quoting the value ``shown`` for each."""

        def fail_where(bad: pa.Array | Mask, reason: str) -> None:
            mask = numpy_mask(bad)
            if mask.any():
                self.add(owners[mask], path, reason, shown.filter(pa.array(mask)))

        return fail_where

    def sorted(self) -> dict[int, Exception]:
        return dict(sorted(self.reasons.items()))


def _shortened(text: str) -> str:
    quoted = json.dumps(text, ensure_ascii=False)
    return (
        quoted if len(quoted) <= _REASON_TEXT_LIMIT else quoted[: _REASON_TEXT_LIMIT - 4] + '..."'
    )


def _holds(kind: pa.DataType, wanted: Callable[[pa.DataType], bool]) -> bool:
    """Whether ``kind`` or a type nested in it (items, map keys and values, struct fields)
    is ``wanted``."""
    if wanted(kind):
        return True
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        return _holds(kind.value_type, wanted)
    if pa.types.is_map(kind):
        return _holds(kind.key_type, wanted) or _holds(kind.item_type, wanted)
    if pa.types.is_struct(kind):
        return any(_holds(f.type, wanted) for f in kind)
    return False


def _needs_scan(kind: pa.DataType, floats: bool = False) -> bool:
    """Whether ``kind`` holds a map or a JSON document, which ``pyarrow.json`` cannot read
    (or, with ``floats``, a float, which it cannot read from ``"NaN"``)."""
    return _holds(
        kind,
        lambda k: (
            isinstance(k, pa.JsonType) or pa.types.is_map(k) or (floats and pa.types.is_floating(k))
        ),
    )


def _may_hold_special_floats(texts: pa.Array, kinds: Iterable[pa.DataType]) -> bool:
    """Whether one of ``kinds`` holds a float and one of ``texts`` holds the text of NaN or
    an infinity (or a string that reads the same)."""
    if not any(_holds(kind, pa.types.is_floating) for kind in kinds):
        return False
    return bool(_special_float_marks(texts.cast(pa.string())).any())


def _special_float_marks(texts: pa.StringArray | pa.BinaryArray) -> Mask:
    """True for each text that holds the text of NaN or an infinity (or a string value that
    reads the same), found with numpy: the first byte of each mark, then the next ones."""
    data = data_bytes(texts)
    marked = np.zeros(len(texts), dtype=np.bool_)
    offsets = text_offsets(texts).astype(np.int64)
    for mark in _SPECIAL_MARKS:
        starts = np.flatnonzero(data[: max(len(data) - len(mark) + 1, 0)] == mark[0])
        for k in range(1, len(mark)):
            starts = starts[data[starts + k] == mark[k]]
        marked[np.searchsorted(offsets - offsets[0], starts, side="right") - 1] = True
    return marked


def _split_or_fail(
    texts: pa.Array, container: Container, owners: I64, path: str, failures: _Failures
) -> Members:
    """``split_members`` of ``texts``; a text that is not ``null`` nor a container of the
    kind fails its row, and is read as null."""
    members = split_members(texts, container)
    if members.misfits.any():
        article = "an object" if container == "object" else "an array"
        misfits = pc.utf8_trim_whitespace(texts.cast(pa.string()).filter(members.misfits))
        failures.add(owners[members.misfits], path, f"is not {article}", misfits)
    return members


def _values(
    texts: pa.Array, value_field: pa.Field, owners: I64, path: str, failures: _Failures
) -> pa.Array:
    """``texts`` (JSON texts, null for absent) as values of ``value_field``'s type."""
    kind = value_field.type
    if isinstance(kind, pa.JsonType):
        documents = pc.if_else(pc.equal(texts, "null"), pa.scalar(None, pa.string()), texts)
        return pa.ExtensionArray.from_storage(kind, documents.cast(kind.storage_type))
    if pa.types.is_map(kind):
        return _maps(texts, kind, owners, path, failures)
    if pa.types.is_floating(kind):
        fail_where = failures.failer(owners, path, texts)
        parsed = _floats_from_text(texts, _wire_type(kind), fail_where)
        return _converted(parsed, value_field, owners, path, failures)
    nested = pa.types.is_list(kind) or pa.types.is_struct(kind)
    if nested and _needs_scan(kind):
        return _members_values(texts, value_field, owners, path, failures)
    wrapped = pc.binary_join_element_wise(
        '{"v":', pc.fill_null(texts.cast(pa.string()), "null"), "}", ""
    ).cast(pa.binary())
    wire = pa.schema([pa.field("v", _wire_type(kind))])
    refused: dict[int, Exception] = {}
    try:
        table = read_json_objects(wrapped, wire, "ignore")
    except (pa.ArrowInvalid, ValueError):
        if nested and _may_hold_special_floats(texts, [kind]):
            return _members_values(texts, value_field, owners, path, failures)
        table, refused = read_json_objects_refusing(wrapped, wire, "ignore", path)
    failures.add_reasons({int(owners[row]): error for row, error in refused.items()})
    return _converted(single_chunk(table.column(0)), value_field, owners, path, failures)


def _members_values(
    texts: pa.Array, value_field: pa.Field, owners: I64, path: str, failures: _Failures
) -> pa.Array:
    """``texts`` (JSON arrays or objects) as lists or structs of ``value_field``'s type, each
    item or field read from the text the scan cuts out for it."""
    kind = value_field.type
    if pa.types.is_list(kind):
        members = _split_or_fail(texts, "array", owners, path, failures)
        item_owners = owners[members.rows]
        items = _values(members.values(), kind.value_field, item_owners, f"{path}[]", failures)
        return pa.ListArray.from_arrays(
            pa.array(members.offsets), items, type=kind, mask=members.null_mask()
        )
    members = _split_or_fail(texts, "object", owners, path, failures)
    names = unescaped_keys(members.keys)
    children = [
        _values(
            member_texts(members, names, f.name, len(texts)), f, owners, _at(path, f.name), failures
        )
        for f in kind
    ]
    return pa.StructArray.from_arrays(children, fields=list(kind), mask=members.null_mask())


def _at(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _converted(
    parsed: pa.Array, value_field: pa.Field, owners: I64, path: str, failures: _Failures
) -> pa.Array:
    """``parsed`` (of ``_wire_type(value_field.type)``) as ``value_field``'s type."""
    kind = value_field.type
    fail_where = failures.failer(owners, path, parsed)
    if isinstance(kind, pa.UuidType):
        uuids, invalid = uuid_from_text(parsed)
        fail_where(invalid, "is not a UUID")
        return uuids
    if pa.types.is_dictionary(kind):
        return _enum(parsed, value_field, fail_where)
    if pa.types.is_float16(kind):
        halves = parsed.cast(pa.float16())
        fail_where(
            pc.and_(pc.is_finite(parsed), pc.invert(pc.is_finite(halves))), "overflows float16"
        )
        return halves
    if pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
        blobs, invalid = base64_bytes(parsed)
        fail_where(invalid, "is not base64")
        return blobs.cast(kind)
    if pa.types.is_date(kind):
        return _dates(parsed, kind, fail_where)
    if pa.types.is_time(kind):
        return _times(parsed, kind, fail_where)
    if pa.types.is_timestamp(kind):
        return _timestamps(parsed, kind, fail_where)
    if pa.types.is_list(kind):
        offsets = parsed.offsets
        first, last = offsets[0].as_py(), offsets[-1].as_py()
        item_owners = np.repeat(owners, np.diff(offsets.to_numpy()))
        # pyarrow.json gives a list of the null type fewer items than its offsets span.
        children = pa.nulls(last) if pa.types.is_null(kind.value_type) else parsed.values
        items = _converted(
            children.slice(first, last - first),
            kind.value_field,
            item_owners,
            f"{path}[]",
            failures,
        )
        return pa.ListArray.from_arrays(
            pc.subtract(offsets, pa.scalar(first, offsets.type)),
            items,
            type=kind,
            mask=_null_mask_or_none(parsed),
        )
    if pa.types.is_struct(kind):
        children = [
            _converted(parsed.field(f.name), f, owners, _at(path, f.name), failures) for f in kind
        ]
        return pa.StructArray.from_arrays(
            children, fields=list(kind), mask=_null_mask_or_none(parsed)
        )
    return parsed if parsed.type == kind else parsed.cast(kind)


def _null_mask_or_none(column: pa.Array) -> pa.BooleanArray | None:
    return pc.is_null(column) if column.null_count else None


def _floats_from_text(texts: pa.Array, kind: pa.DataType, fail_where: FailWhere) -> pa.Array:
    """JSON value texts (numbers, ``null``, and the strings ``json_text`` writes NaN and the
    infinities as) as floats of ``kind`` (float32 or float64). A float map key's text,
    unquoted, reads the same way.

    One cast reads every number when each text is one; otherwise the texts that are not
    fail their rows and read as null.
    """
    texts = texts.cast(pa.string())
    special = pc.index_in(texts, value_set=_SPECIAL_TEXTS)
    numbers = pc.if_else(
        pc.and_(pc.is_null(special), pc.not_equal(texts, "null")),
        texts,
        pa.scalar(None, pa.string()),
    )
    try:
        values = numbers.cast(kind)
    except pa.ArrowInvalid:
        readable = pc.match_substring_regex(numbers, _FLOAT_TEXT)
        fail_where(pc.and_(pc.is_valid(numbers), pc.invert(readable)), "is not a number")
        values = pc.if_else(readable, numbers, pa.scalar(None, pa.string())).cast(kind)
    if special.null_count == len(special):
        return values
    special_values = pa.array(_SPECIAL_VALUES, kind).take(special)
    return pc.if_else(pc.is_valid(special), special_values, values)


def _enum(parsed: pa.Array, value_field: pa.Field, fail_where: FailWhere) -> pa.Array:
    """Symbols as indices into the enum's symbols (from the field's metadata)."""
    raw = (value_field.metadata or {}).get(ENUM_KEY)
    # A dictionary column that is not an enum has the values it holds as its symbols.
    symbols = pa.array(json.loads(raw), pa.string()) if raw else pc.unique(parsed.drop_null())
    indices = pc.index_in(parsed, value_set=symbols)
    fail_where(pc.and_(pc.is_valid(parsed), pc.is_null(indices)), "is not one of the symbols")
    dictionary = pa.DictionaryArray.from_arrays(indices.cast(value_field.type.index_type), symbols)
    return dictionary.cast(value_field.type)


def _dates(parsed: pa.Array, kind: pa.DataType, fail_where: FailWhere) -> pa.Array:
    """``YYYY-MM-DD`` texts as dates."""
    dates, bad = _cast_or_refuse(parsed, pa.date32(), "%Y-%m-%d")
    fail_where(bad, "is not a date")
    return dates.cast(kind)


def _cast_or_refuse(text: pa.Array, kind: pa.DataType, form: str) -> tuple[pa.Array, Mask]:
    """``text`` cast to ``kind`` (a date, or a timestamp in seconds), and where a text is
    not one. One strict cast does it when every text is; otherwise each is read with
    ``strptime`` (``form``) and kept only when it reads back the same (``strptime`` takes
    February 30 for March 1)."""
    try:
        return text.cast(kind), np.zeros(len(text), dtype=np.bool_)
    except pa.ArrowInvalid:
        pass
    values = pc.strptime(text, format=form, unit="s", error_is_null=True).cast(kind)
    same = numpy_mask(pc.equal(values.cast(pa.string()), text))
    refused = numpy_mask(pc.is_valid(text)) & ~same
    return pc.if_else(pa.array(refused), pa.scalar(None, kind), values), refused


def _times(parsed: pa.Array, kind: pa.DataType, fail_where: FailWhere) -> pa.Array:
    """``hh:mm:ss[.fraction]`` texts as times of ``kind``'s unit."""
    unit = "ns" if kind.unit == "ns" else "us"
    well_formed = pc.match_substring_regex(parsed, _TIME_TEXT[unit])
    fail_where(pc.and_(pc.is_valid(parsed), pc.invert(well_formed)), f"is not a time ({unit})")
    clean = pc.if_else(well_formed, parsed, pa.scalar(None, pa.string()))
    stamps = pc.binary_join_element_wise("1970-01-01T", clean, "").cast(pa.timestamp("ns"))
    nanoseconds = stamps.cast(pa.int64())
    counts = nanoseconds if unit == "ns" else pc.divide(nanoseconds, 1000)
    return counts.cast(pa.time64(unit)).cast(kind)


def _timestamps(parsed: pa.Array, kind: pa.DataType, fail_where: FailWhere) -> pa.Array:
    """ISO 8601 texts (``YYYY-MM-DDThh:mm:ss[.fraction][Z]``) as timestamps of ``kind``.

    Read here rather than by ``pyarrow.json``, whose parser refuses the earliest nanosecond
    instants: the whole seconds by a cast, the fraction as an integer, joined without
    overflowing 64 bits.
    """
    unit = "ns" if kind.unit == "ns" else "us"
    digits = _FRACTION_DIGITS[unit]
    well_formed = numpy_mask(pc.match_substring_regex(parsed, _TIMESTAMP_TEXT[unit]))
    text = pc.if_else(pa.array(well_formed), parsed, pa.scalar(_EPOCH_TEXT, pa.string()))
    raw = text.cast(pa.binary())
    whole_text = len(_EPOCH_TEXT)
    whole = pc.replace_substring(pc.binary_slice(raw, 0, whole_text), "T", " ")
    seconds, refused = _cast_or_refuse(whole.cast(pa.string()), pa.timestamp("s"), _SECONDS_FORM)
    fraction_text = pc.replace_substring(
        pc.binary_slice(raw, whole_text + 1, whole_text + 1 + digits), "Z", ""
    )
    fraction_text = pc.utf8_rpad(fraction_text.cast(pa.string()), digits, "0")
    fraction = fraction_text.cast(pa.int64()).to_numpy(zero_copy_only=False)
    whole_seconds = pc.fill_null(seconds.cast(pa.int64()), 0).to_numpy(zero_copy_only=False)
    (low_seconds, low_fraction), (high_seconds, high_fraction) = _TIMESTAMP_LIMITS[unit]
    in_range = (
        (whole_seconds > low_seconds)
        | ((whole_seconds == low_seconds) & (fraction >= low_fraction))
    ) & (
        (whole_seconds < high_seconds)
        | ((whole_seconds == high_seconds) & (fraction <= high_fraction))
    )
    good = well_formed & ~refused & in_range
    fail_where(numpy_mask(pc.is_valid(parsed)) & ~good, f"is not a timestamp ({unit})")
    scale = 10**digits
    safe_seconds = np.where(good, whole_seconds, 0)
    borrow = (safe_seconds < 0) & (fraction > 0)  # (s + 1) * scale first: s * scale may not fit
    counts = np.where(
        borrow, (safe_seconds + 1) * scale + (fraction - scale), safe_seconds * scale + fraction
    )
    return pa.array(counts, pa.int64(), mask=~good).cast(kind)


def _maps(
    texts: pa.Array, kind: pa.MapType, owners: I64, path: str, failures: _Failures
) -> pa.Array:
    """Objects as maps: each member's key text read as the key type, its value as the value
    type. ``json_text`` writes a key whose JSON form is not a string as the string of that
    form (``1`` -> ``"1"``), so such keys are unquoted before they are read."""
    members = _split_or_fail(texts, "object", owners, path, failures)
    member_owners = owners[members.rows]
    key_texts = members.keys
    if not _written_as_string(kind.key_type):
        key_texts = unescaped_keys(key_texts)
    keys = _values(key_texts, kind.key_field, member_owners, f"{path} key", failures)
    items = _values(members.values(), kind.item_field, member_owners, f"{path} value", failures)
    offsets = members.offsets
    null_keys = numpy_mask(keys.is_null())
    if null_keys.any():  # their rows fail; Arrow has no map with a null key, so drop them
        failures.add(member_owners[null_keys], path, "a map key is null")
        kept = pa.array(~null_keys)
        keys, items = keys.filter(kept), items.filter(kept)
        counts = np.bincount(members.rows[~null_keys], minlength=len(offsets) - 1)
        offsets = np.zeros(len(offsets), dtype=np.int32)
        np.cumsum(counts, out=offsets[1:])
    return pa.MapArray.from_arrays(
        pa.array(offsets), keys, items, type=kind, mask=members.null_mask()
    )


def _written_as_string(kind: pa.DataType) -> bool:
    """Whether ``json_text`` writes values of ``kind`` as JSON strings (floats are numbers,
    but for NaN and the infinities)."""
    if isinstance(kind, pa.JsonType):
        return False
    return not (
        pa.types.is_boolean(kind)
        or pa.types.is_integer(kind)
        or pa.types.is_floating(kind)
        or pa.types.is_null(kind)
        or pa.types.is_nested(kind)
    )

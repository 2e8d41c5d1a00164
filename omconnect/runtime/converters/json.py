"""The ``json`` converter: one JSON object per message, built and parsed a column at a time.

Encoding never builds a Python dict per row. Each column becomes a column of JSON texts with
Arrow compute kernels, then the pieces are joined element-wise with the ``{"name":`` glue.
Value mapping:

- booleans and integers as JSON literals; floats as numbers, NaN and infinities as null;
- decimals as strings (``"12.30"``) so no digit is lost to a reader's binary floats;
- strings escaped per RFC 8259 (quote, backslash, control characters); non-ASCII as UTF-8;
- bytes as base64 strings; UUIDs as their hex text; JSON columns embedded as they are;
- dates ``"2024-01-31"``, times ``"12:30:00.000000"``, timestamps ISO-8601
  (``"2024-01-31T12:30:00.000000"``; zoned ones in UTC with a ``Z``);
- enums as their symbol; lists, maps and structs through a slower per-value path;
- nulls as ``null``. The key is a JSON object of the key columns.

Decoding parses every body in one ``pyarrow.json`` call and infers the schema (JSON carries
none): decimals, bytes, UUIDs, times and most timestamps come back as strings (Arrow only
recognises ``YYYY-MM-DD[ hh:mm:ss]`` as a timestamp). Bodies
that are not one JSON object (null, empty, malformed, several objects) are reported in
``Decoded.failed``; they are looked for one by one only when the bulk parse fails. Bodies
whose fields disagree in type are split into one group per inferred schema.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json

from omconnect.runtime.converters.base import Converter, Decoded, Encoded
from omconnect.runtime.transforms.uuid_strings import uuid_to_text
from omconnect.schemas.arrow import from_arrow_schema, to_arrow_schema
from omconnect.schemas.record import RecordBatch

_BASE64_ALPHABET = np.frombuffer(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/", dtype=np.uint8
)
_CONTROL_ESCAPES = {
    **{chr(c): f"\\u{c:04x}" for c in range(0x20)},
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
}
_MIN_BLOCK_SIZE = 1 << 20
# Byte lookup tables: scanning the data buffer with numpy is cheaper than a regex pass.
_QUOTE_OR_BACKSLASH = np.zeros(256, bool)
_QUOTE_OR_BACKSLASH[[ord('"'), ord("\\")]] = True
_NEEDS_ESCAPE = _QUOTE_OR_BACKSLASH.copy()
_NEEDS_ESCAPE[:0x20] = True


class JsonConverter(Converter):
    """Message bodies as JSON objects, one per row (see the module docstring)."""

    name = "json"
    content_type = "application/json"

    def encode(self, topic: str, batch: RecordBatch) -> Encoded:
        key_columns = batch.key_columns()
        keys = json_objects(key_columns) if key_columns is not None else None
        return Encoded(values=json_objects(batch.values), keys=keys)

    def decode(self, topic: str, values: pa.BinaryArray, keys: pa.BinaryArray | None) -> Decoded:
        groups, failed = _parse_objects(values)
        decoded = []
        for rows, batch in groups:
            key_batch = None
            if keys is not None:
                key_groups, key_failed = _parse_objects(pc.fill_null(keys.take(rows), b"{}"))
                for r, error in key_failed.items():
                    failed[int(rows[r])] = ValueError(f"key: {error}")
                if key_failed:
                    good = np.setdiff1d(np.arange(len(rows)), list(key_failed))
                    rows, batch = rows[good], batch.take(pa.array(good))
                # Keys of one shape come back as a batch; keys that disagree are left out.
                if len(key_groups) == 1:
                    key_batch = key_groups[0][1]
            if len(rows):
                schema = from_arrow_schema(batch.schema, name=topic)
                decoded.append((pa.array(rows, pa.int64()), batch, schema, key_batch))
        return Decoded(groups=decoded, failed=dict(sorted(failed.items())))


def json_objects(batch: pa.RecordBatch) -> pa.BinaryArray:
    """One JSON object per row of ``batch``, as UTF-8 bytes."""
    if batch.num_columns == 0:
        return pa.repeat(pa.scalar(b"{}"), batch.num_rows)
    pieces: list[Any] = []
    for i, field in enumerate(batch.schema):
        glue = ("{" if i == 0 else ",") + json.dumps(field.name, ensure_ascii=False) + ":"
        pieces += [glue, json_texts(batch.column(i))]
    pieces.append("}")
    return pc.binary_join_element_wise(*pieces, "").cast(pa.binary())


def json_texts(column: pa.Array) -> pa.StringArray:
    """The JSON text of each value of ``column`` (``null`` for nulls), never null itself."""
    return pc.fill_null(_texts_or_null(column), "null")


def _texts_or_null(column: pa.Array) -> pa.Array:
    kind = column.type
    if isinstance(kind, pa.UuidType):
        return _quoted(uuid_to_text(column))
    if isinstance(kind, pa.JsonType):
        return column.storage.cast(pa.string())
    if isinstance(column, pa.ExtensionArray):
        return _texts_or_null(column.storage)
    if pa.types.is_dictionary(kind):
        return _texts_or_null(column.dictionary_decode())
    if pa.types.is_null(kind):
        return pa.nulls(len(column), pa.string())
    if pa.types.is_boolean(kind):
        return pc.if_else(column, "true", "false")
    if pa.types.is_integer(kind):
        return column.cast(pa.string())
    if pa.types.is_floating(kind):
        return pc.if_else(pc.is_finite(column), column.cast(pa.string()), None)
    if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind):
        return _quoted(_escaped(column.cast(pa.string())))
    if (
        pa.types.is_binary(kind)
        or pa.types.is_large_binary(kind)
        or pa.types.is_binary_view(kind)
        or pa.types.is_fixed_size_binary(kind)
    ):
        return _quoted(_base64(column.cast(pa.binary())))
    if pa.types.is_timestamp(kind):
        wall_clock = column.cast(pa.timestamp(kind.unit)) if kind.tz is not None else column
        text = pc.replace_substring(wall_clock.cast(pa.string()), " ", "T")
        return _quoted(pc.binary_join_element_wise(text, "Z", "") if kind.tz else text)
    if pa.types.is_decimal(kind) or pa.types.is_date(kind) or pa.types.is_time(kind):
        return _quoted(column.cast(pa.string()))
    return _nested_texts(column)


def _quoted(text: pa.Array) -> pa.Array:
    return pc.binary_join_element_wise('"', text, '"', "")


def _escaped(text: pa.StringArray) -> pa.Array:
    """``text`` with quotes, backslashes and control characters escaped for JSON."""
    found = _bytes_of(text)
    if not _NEEDS_ESCAPE[found].any():
        return text
    if _QUOTE_OR_BACKSLASH[found].any():
        text = pc.replace_substring_regex(text, pattern=r'(["\\])', replacement=r"\\\1")
    if (found < 0x20).any():
        for char, escape in _CONTROL_ESCAPES.items():
            text = pc.replace_substring(text, char, escape)
    return text


def _bytes_of(text: pa.StringArray | pa.BinaryArray) -> np.ndarray:
    """The bytes of all values of ``text`` (a view of its data buffer, no copy)."""
    n = len(text)
    data = text.buffers()[2]
    if n == 0 or data is None:
        return np.zeros(0, np.uint8)
    offsets = np.frombuffer(text.buffers()[1], np.int32)[text.offset : text.offset + n + 1]
    return np.frombuffer(data, np.uint8)[int(offsets[0]) : int(offsets[-1])]


def _base64(column: pa.BinaryArray) -> pa.StringArray:
    """Standard padded base64 of each value, computed with numpy over the whole column."""
    n = len(column)
    offsets = np.frombuffer(column.buffers()[1], np.int32)[column.offset : column.offset + n + 1]
    data_buffer = column.buffers()[2]
    data = (
        np.frombuffer(data_buffer, np.uint8) if data_buffer is not None else np.zeros(0, np.uint8)
    )
    lengths = np.diff(offsets).astype(np.int64)
    groups = (lengths + 2) // 3
    ends = np.cumsum(groups)
    owner = np.repeat(np.arange(n), groups)
    start = offsets[:-1][owner] + 3 * (
        np.arange(int(ends[-1]) if n else 0) - (ends - groups)[owner]
    )
    triples = np.zeros((len(owner), 3), np.uint32)
    for k in range(3):
        inside = start + k < offsets[1:][owner]
        triples[inside, k] = data[start[inside] + k]
    bits = (triples[:, 0] << 16) | (triples[:, 1] << 8) | triples[:, 2]
    chars = np.stack([_BASE64_ALPHABET[(bits >> s) & 63] for s in (18, 12, 6, 0)], axis=1)
    remainder = lengths % 3
    chars[ends[(groups > 0) & (remainder == 1)] - 1, 2:] = ord("=")
    chars[ends[(groups > 0) & (remainder == 2)] - 1, 3] = ord("=")
    text_offsets = np.concatenate([[0], 4 * ends]).astype(np.int32)
    text = pa.StringArray.from_buffers(
        n, pa.py_buffer(text_offsets), pa.py_buffer(np.ascontiguousarray(chars).tobytes())
    )
    return pc.if_else(pc.is_valid(column), text, None) if column.null_count else text


def _nested_texts(column: pa.Array) -> pa.Array:
    """Lists, maps and structs: one ``json.dumps`` per value (the slow path)."""
    values = column.to_pylist(maps_as_pydicts="strict")
    texts = [
        None if v is None else json.dumps(v, default=_plain, ensure_ascii=False, allow_nan=False)
        for v in values
    ]
    return pa.array(texts, pa.string())


def _plain(value: Any) -> Any:
    """The JSON form of the Python values ``to_pylist`` gives inside nested columns."""
    if isinstance(value, bytes):
        return _base64(pa.array([value], pa.binary()))[0].as_py()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def _parse_objects(
    bodies: pa.BinaryArray,
) -> tuple[list[tuple[np.ndarray, pa.RecordBatch]], dict[int, Exception]]:
    """Parse one JSON object per body: groups of (body indices, rows) and failed bodies."""
    rows = np.arange(len(bodies))
    try:
        return [(rows, _read_objects(bodies))], {}
    except (pa.ArrowInvalid, ValueError):
        pass
    failed: dict[int, Exception] = {}
    for i, body in enumerate(bodies.to_pylist()):
        if body is None:
            failed[i] = ValueError("the body is null (a tombstone?)")
            continue
        try:
            if not isinstance(json.loads(body), dict):
                raise ValueError("the body is not a JSON object")
        except ValueError as exc:
            failed[i] = ValueError(f"invalid JSON body: {exc}")
    good = np.setdiff1d(rows, list(failed))
    try:
        return [(good, _read_objects(bodies.take(pa.array(good))))], failed
    except (pa.ArrowInvalid, ValueError):
        return _groups_by_schema(bodies, good, failed), failed


def _groups_by_schema(
    bodies: pa.BinaryArray, rows: np.ndarray, failed: dict[int, Exception]
) -> list[tuple[np.ndarray, pa.RecordBatch]]:
    """Parse bodies one at a time and group them by inferred schema, in order of first row."""
    by_schema: dict[pa.Schema, list[tuple[int, pa.RecordBatch]]] = {}
    for row in rows:
        try:
            batch = _read_objects(bodies.slice(int(row), 1))
        except (pa.ArrowInvalid, ValueError) as exc:
            failed[int(row)] = ValueError(f"invalid JSON body: {exc}")
            continue
        by_schema.setdefault(batch.schema, []).append((int(row), batch))
    return [
        (np.array([r for r, _ in parts]), pa.concat_batches([b for _, b in parts]))
        for parts in by_schema.values()
    ]


def _read_objects(bodies: pa.BinaryArray) -> pa.RecordBatch:
    """All ``bodies`` parsed in one call, one row each, with omconnect-compatible types.

    Raises:
        pyarrow.ArrowInvalid: a body is malformed or fields disagree in type.
        ValueError: a body is null, or does not hold exactly one object.
    """
    n = len(bodies)
    if bodies.null_count:
        raise ValueError("a body is null")
    bodies = bodies.cast(pa.binary())
    lines = pc.binary_join_element_wise(bodies, b"\n", b"")
    offsets = np.frombuffer(lines.buffers()[1], np.int32)[lines.offset : lines.offset + n + 1]
    data = lines.buffers()[2]
    text = data[int(offsets[0]) : int(offsets[-1])] if n and data is not None else b""
    longest = pc.max(pc.binary_length(bodies)).as_py() or 0
    table = pa_json.read_json(
        pa.BufferReader(text),
        read_options=pa_json.ReadOptions(block_size=max(_MIN_BLOCK_SIZE, 2 * longest + 2)),
        parse_options=pa_json.ParseOptions(
            newlines_in_values=bool((_bytes_of(bodies) == ord("\n")).any())
        ),
    )
    if table.num_rows != n:
        raise ValueError(f"{n} bodies held {table.num_rows} JSON objects")
    inferred = from_arrow_schema(_without_null_types(table.schema), name="json")
    target = to_arrow_schema(inferred).remove_metadata()
    batches = table.cast(target).combine_chunks().to_batches()
    return batches[0] if batches else pa.RecordBatch.from_pylist([], schema=target)


def _without_null_types(schema: pa.Schema) -> pa.Schema:
    """``schema`` with the type of all-null fields (Arrow's ``null``) made string."""
    return pa.schema([f.with_type(_no_null(f.type)) for f in schema], metadata=schema.metadata)


def _no_null(kind: pa.DataType) -> pa.DataType:
    if pa.types.is_null(kind):
        return pa.string()
    if pa.types.is_struct(kind):
        return pa.struct(
            [kind.field(i).with_type(_no_null(kind.field(i).type)) for i in range(kind.num_fields)]
        )
    if pa.types.is_list(kind):
        return pa.list_(kind.value_field.with_type(_no_null(kind.value_type)))
    return kind

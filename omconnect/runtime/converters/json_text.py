"""Arrow columns as JSON text, a column at a time, with Arrow kernels and numpy.

Every row's object is joined element-wise from per-column texts, so no Python dict is built
per row. The value mapping is described in ``omconnect.runtime.converters.json``.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from omconnect.runtime.transforms.uuid_strings import uuid_to_text

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
# Byte lookup tables: scanning the data buffer with numpy is cheaper than a regex pass.
_QUOTE_OR_BACKSLASH = np.zeros(256, bool)
_QUOTE_OR_BACKSLASH[[ord('"'), ord("\\")]] = True
_NEEDS_ESCAPE = _QUOTE_OR_BACKSLASH.copy()
_NEEDS_ESCAPE[:0x20] = True


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
    found = data_bytes(text)
    if not _NEEDS_ESCAPE[found].any():
        return text
    if _QUOTE_OR_BACKSLASH[found].any():
        text = pc.replace_substring_regex(text, pattern=r'(["\\])', replacement=r"\\\1")
    if (found < 0x20).any():
        for char, escape in _CONTROL_ESCAPES.items():
            text = pc.replace_substring(text, char, escape)
    return text


def data_bytes(text: pa.StringArray | pa.BinaryArray) -> np.ndarray:
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

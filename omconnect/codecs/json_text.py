"""Arrow columns as JSON text, a column at a time, with Arrow kernels and numpy.

Each column becomes a string array of JSON texts, and every row's object is joined
element-wise from them with the ``{"name":`` glue, so no Python dict is built per row; lists,
maps and structs are built the same way from the texts of their children. The value mapping,
the same at every depth:

- booleans and integers as JSON literals; floats as numbers, but NaN and the infinities,
  which JSON has no number for, as the strings ``"NaN"``, ``"Infinity"`` and ``"-Infinity"``
  (the convention of Jackson, which Kafka Connect's JsonConverter uses, and of proto3's JSON
  mapping): a reader that knows the type reads them back as floats (``json_values``);
- decimals as strings (``"12.30"``) or, with ``decimals="number"``, as exact JSON numbers;
- strings escaped per RFC 8259 (quote, backslash, control characters); non-ASCII as UTF-8;
- bytes as base64 strings; UUIDs as their hex text; JSON columns embedded as they are;
- dates ``"2024-01-31"``, times ``"12:30:00.000000"``, timestamps ISO 8601
  (``"2024-01-31T12:30:00.000000"``; zoned ones in UTC with a ``Z``);
- enums as their symbol; lists as arrays; structs as objects; maps as objects whose keys are
  the key's text (``1`` -> ``"1"``);
- nulls as ``null``. Types with no rule above (durations, intervals, unions, list views)
  take a slow per-value path through ``json.dumps``.
"""

from __future__ import annotations

import base64
import json
import math
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from omconnect.codecs.uuid_text import uuid_to_text

Decimals = Literal["string", "number"]

SPECIAL_FLOAT_WORDS = ("NaN", "Infinity", "-Infinity")
"""The strings NaN, infinity and -infinity are written as, in that order."""
SPECIAL_FLOAT_TEXTS = tuple(f'"{word}"' for word in SPECIAL_FLOAT_WORDS)
"""Their JSON texts."""

_BASE64_ALPHABET = np.frombuffer(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/", dtype=np.uint8
)
_NOT_BASE64 = 255
_PAD = 64
_SEXTET_OF = np.full(256, _NOT_BASE64, np.uint8)
_SEXTET_OF[_BASE64_ALPHABET] = np.arange(64, dtype=np.uint8)
_SEXTET_OF[ord("=")] = _PAD
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


def json_objects(batch: pa.RecordBatch, decimals: Decimals = "string") -> pa.BinaryArray:
    """One JSON object per row of ``batch``, as UTF-8 bytes, in the order of its columns."""
    return _objects(batch.schema.names, batch.columns, batch.num_rows, "}", decimals).cast(
        pa.binary()
    )


def json_lines(batch: pa.RecordBatch, decimals: Decimals = "string") -> pa.Buffer:
    """The rows of ``batch`` as JSON Lines: UTF-8, one object per line, each line ending in
    ``\\n``."""
    if batch.num_rows == 0:
        return pa.py_buffer(b"")
    lines = _objects(batch.schema.names, batch.columns, batch.num_rows, "}\n", decimals)
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int32)
    first, last = int(offsets[lines.offset]), int(offsets[lines.offset + len(lines)])
    return lines.buffers()[2].slice(first, last - first)


def json_texts(column: pa.Array, decimals: Decimals = "string") -> pa.StringArray:
    """The JSON text of each value of ``column`` (``null`` for nulls), never null itself."""
    return pc.fill_null(_texts_or_null(column, decimals), "null")


def data_bytes(text: pa.StringArray | pa.BinaryArray) -> np.ndarray:
    """The bytes of all values of ``text`` (a view of its data buffer, no copy)."""
    data = text.buffers()[2]
    if len(text) == 0 or data is None:
        return np.zeros(0, np.uint8)
    offsets = text_offsets(text)
    return np.frombuffer(data, np.uint8)[int(offsets[0]) : int(offsets[-1])]


def text_offsets(text: pa.StringArray | pa.BinaryArray) -> np.ndarray:
    """The ``len(text) + 1`` offsets of ``text``'s values into its data buffer (a view)."""
    n = len(text)
    return np.frombuffer(text.buffers()[1], np.int32)[text.offset : text.offset + n + 1]


def base64_bytes(text: pa.Array) -> tuple[pa.BinaryArray, np.ndarray]:
    """Standard padded base64 texts (what ``json_texts`` writes for bytes) decoded with numpy
    over the whole column.

    Returns:
        The bytes (null where the text is null or not base64) and a boolean numpy mask, true
        where a text is not base64: a length that is not a multiple of 4, a character outside
        the alphabet, or ``=`` anywhere but the last two places.
    """
    text = text.cast(pa.string())
    present = np.asarray(pc.is_valid(text).to_numpy(zero_copy_only=False), dtype=np.bool_)
    filled = pc.fill_null(text, "")
    invalid = _not_base64(filled)
    if invalid.any():
        filled = pc.if_else(pa.array(invalid), "", filled)
    offsets = text_offsets(filled).astype(np.int64)
    offsets -= offsets[0]
    sextets = _SEXTET_OF[data_bytes(filled)].astype(np.uint32)
    pads = np.bincount(_rows_of(offsets, np.flatnonzero(sextets == _PAD)), minlength=len(filled))
    sextets[sextets == _PAD] = 0
    quads = sextets.reshape(-1, 4)
    bits = (quads[:, 0] << 18) | (quads[:, 1] << 12) | (quads[:, 2] << 6) | quads[:, 3]
    decoded = np.stack([bits >> 16, bits >> 8, bits], axis=1).astype(np.uint8).reshape(-1)
    ends = offsets[1:] // 4 * 3
    keep = np.ones(len(decoded), dtype=np.bool_)
    for padding in (1, 2):
        keep[ends[pads >= padding] - padding] = False
    byte_offsets = np.concatenate([[0], ends - np.cumsum(pads)]).astype(np.int32)
    data = pa.py_buffer(np.ascontiguousarray(decoded[keep]))
    blobs = pa.Array.from_buffers(
        pa.binary(), len(filled), [None, pa.py_buffer(byte_offsets), data]
    )
    nulls = ~present | invalid
    if nulls.any():
        blobs = pc.if_else(pa.array(nulls), pa.scalar(None, pa.binary()), blobs)
    return blobs, invalid & present


def _not_base64(text: pa.StringArray) -> np.ndarray:
    """True where a text of ``text`` (no nulls) is not padded base64."""
    offsets = text_offsets(text).astype(np.int64)
    offsets -= offsets[0]
    sextets = _SEXTET_OF[data_bytes(text)]
    invalid = np.diff(offsets) % 4 != 0
    invalid[_rows_of(offsets, np.flatnonzero(sextets == _NOT_BASE64))] = True
    pad_positions = np.flatnonzero(sextets == _PAD)
    pad_rows = _rows_of(offsets, pad_positions)
    from_end = offsets[pad_rows + 1] - pad_positions
    pads = np.bincount(pad_rows, minlength=len(text))
    invalid[pad_rows[(from_end > 2) | ((from_end == 2) & (pads[pad_rows] < 2))]] = True
    return invalid


def _rows_of(offsets: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """The row each byte position (relative to the first value) is in."""
    return np.searchsorted(offsets, positions, side="right") - 1


def _objects(
    names: list[str], columns: list[pa.Array], rows: int, closer: str, decimals: Decimals
) -> pa.StringArray:
    """The object of each row, each followed by ``closer`` (``}`` and what comes after)."""
    if not columns:
        return pa.array(["{" + closer] * rows, pa.string())
    pieces: list[Any] = []
    for i, (name, column) in enumerate(zip(names, columns, strict=True)):
        glue = ("{" if i == 0 else ",") + json.dumps(name, ensure_ascii=False) + ":"
        pieces += [glue, json_texts(column, decimals)]
    pieces.append(closer)
    return pc.binary_join_element_wise(*pieces, "")


def _texts_or_null(column: pa.Array, decimals: Decimals) -> pa.Array:
    kind = column.type
    if isinstance(kind, pa.UuidType):
        return _quoted(uuid_to_text(column))
    if isinstance(kind, pa.JsonType):
        return column.storage.cast(pa.string())
    if isinstance(column, pa.ExtensionArray):
        return _texts_or_null(column.storage, decimals)
    if pa.types.is_dictionary(kind):
        return _texts_or_null(column.dictionary_decode(), decimals)
    if pa.types.is_null(kind):
        return pa.nulls(len(column), pa.string())
    if pa.types.is_boolean(kind):
        return pc.if_else(column, "true", "false")
    if pa.types.is_integer(kind):
        return column.cast(pa.string())
    if pa.types.is_floating(kind):
        return _float_texts(column)
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
    if pa.types.is_decimal(kind):
        text = column.cast(pa.string())
        return text if decimals == "number" else _quoted(text)
    if pa.types.is_date(kind) or pa.types.is_time(kind):
        return _quoted(column.cast(pa.string()))
    if pa.types.is_map(kind):
        return _map_texts(column, decimals)
    if pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind):
        return _list_texts(column, decimals)
    if pa.types.is_struct(kind):
        return _struct_texts(column, decimals)
    return _python_texts(column)


def _float_texts(column: pa.FloatingPointArray) -> pa.Array:
    """Finite floats as numbers; NaN and the infinities as ``SPECIAL_FLOAT_TEXTS``."""
    texts = column.cast(pa.string())
    finite = pc.is_finite(column)
    if pc.all(finite).as_py() is not False:  # true, or null when every value is null
        return texts
    nan, infinity, minus_infinity = SPECIAL_FLOAT_TEXTS
    infinities = pc.if_else(pc.starts_with(texts, "-"), minus_infinity, infinity)
    return pc.if_else(finite, texts, pc.if_else(pc.is_nan(column), nan, infinities))


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


def _base64(column: pa.BinaryArray) -> pa.StringArray:
    """Standard padded base64 of each value, computed with numpy over the whole column."""
    n = len(column)
    offsets = text_offsets(column)
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
    offsets_of_text = np.concatenate([[0], 4 * ends]).astype(np.int32)
    text = pa.StringArray.from_buffers(
        n, pa.py_buffer(offsets_of_text), pa.py_buffer(np.ascontiguousarray(chars).tobytes())
    )
    return pc.if_else(pc.is_valid(column), text, None) if column.null_count else text


def _list_texts(column: pa.Array, decimals: Decimals) -> pa.Array:
    """``[...]`` of the texts of each list's items."""
    offsets, items = list_items(column)
    return _bracketed("[", _joined(offsets, json_texts(items, decimals)), "]", column)


def _struct_texts(column: pa.StructArray, decimals: Decimals) -> pa.Array:
    """``{...}`` of each struct's fields, in field order."""
    kind = column.type
    names = [kind.field(i).name for i in range(kind.num_fields)]
    objects = _objects(names, column.flatten(), len(column), "}", decimals)
    return pc.if_else(pc.is_valid(column), objects, None) if column.null_count else objects


def _map_texts(column: pa.MapArray, decimals: Decimals) -> pa.Array:
    """``{...}`` of each map's entries; a key that is not text becomes the text of its JSON
    (``1`` -> ``"1"``)."""
    offsets, entries = list_items(column)
    keys = json_texts(entries.field(0), decimals)
    plain = pc.invert(pc.starts_with(keys, '"'))
    if pc.any(plain).as_py():
        keys = pc.if_else(plain, _quoted(_escaped(keys)), keys)
    pairs = pc.binary_join_element_wise(keys, json_texts(entries.field(1), decimals), ":")
    return _bracketed("{", _joined(offsets, pairs), "}", column)


def list_items(column: pa.Array) -> tuple[npt.NDArray[np.int64], pa.Array]:
    """The items of a list (or map) array, from its first list's to its last's, and where
    each list's start among them (``offsets``, one more than lists). Unlike ``flatten``,
    items under null lists stay (callers mask those lists), which keeps this a slice: pyarrow
    cannot gather lists of extension types (uuid, json) around null lists."""
    offsets = np.asarray(column.offsets.to_numpy(zero_copy_only=False), dtype=np.int64)
    first = int(offsets[0])
    return offsets - first, column.values.slice(first, int(offsets[-1]) - first)


def _joined(offsets: np.ndarray, items: pa.Array) -> pa.Array:
    """``items[offsets[i]:offsets[i + 1]]`` joined with ``,``, for each ``i``."""
    if offsets[-1] < 2**31:
        lists = pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), items)
    else:
        lists = pa.LargeListArray.from_arrays(pa.array(offsets.astype(np.int64)), items)
    return pc.binary_join(lists, ",")


def _bracketed(opener: str, inner: pa.Array, closer: str, column: pa.Array) -> pa.Array:
    texts = pc.binary_join_element_wise(opener, inner, closer, "")
    return pc.if_else(pc.is_valid(column), texts, None) if column.null_count else texts


def _python_texts(column: pa.Array) -> pa.Array:
    """The slow path, one ``json.dumps`` per value, for types with no vectorised rule."""
    texts = [
        None if v is None else json.dumps(_jsonable(v), ensure_ascii=False, separators=(",", ":"))
        for v in column.to_pylist()
    ]
    return pa.array(texts, pa.string())


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, float) and not math.isfinite(value):
        nan, infinity, minus_infinity = SPECIAL_FLOAT_WORDS
        return nan if math.isnan(value) else infinity if value > 0 else minus_infinity
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)

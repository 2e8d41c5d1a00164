"""Record batches to JSON Lines, column by column with Arrow compute.

Each column becomes a string array of JSON texts (``null`` for nulls), and one
``binary_join_element_wise`` call glues the object of every row together, ending in a line
break, so the joined array's data buffer is the JSONL text itself. Strings, numbers, booleans,
decimals (as exact numbers), dates, times and timestamps (ISO 8601, ``Z`` for zoned ones) stay
in Arrow; binary (base64), uuid and nested columns (structs, lists, maps) fall back to
``json.dumps`` per value, which is far slower but rare in bulk data.
"""

from __future__ import annotations

import base64
import json
import math
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

# Characters JSON strings must escape that the vectorised replacements below do not cover.
_OTHER_CONTROL_CHARACTERS = "[\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f]"
_STRING_ESCAPES = (("\\", "\\\\"), ('"', '\\"'), ("\n", "\\n"), ("\r", "\\r"), ("\t", "\\t"))


def encode_jsonl(batch: pa.RecordBatch) -> pa.Buffer:
    """The rows of ``batch`` as JSON Lines (UTF-8, one object per line, each line ending in
    ``\\n``), in key order of the batch's columns."""
    if batch.num_rows == 0:
        return pa.py_buffer(b"")
    parts: list[pa.Array | str] = []
    for i, (name, column) in enumerate(zip(batch.schema.names, batch.columns, strict=True)):
        opener = "{" if i == 0 else ","
        parts.append(opener + json.dumps(name) + ":")
        parts.append(_json_texts(column))
    if not parts:
        parts.append("{")
    parts.append("}\n")
    lines = pc.binary_join_element_wise(*parts, "")
    if isinstance(lines, pa.ChunkedArray):
        lines = lines.combine_chunks()
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int32)
    first, last = int(offsets[lines.offset]), int(offsets[lines.offset + len(lines)])
    return lines.buffers()[2].slice(first, last - first)


def _json_texts(column: pa.Array) -> pa.Array:
    """One JSON text per value of ``column``; nulls become ``null``."""
    kind = column.type
    if pa.types.is_dictionary(kind):
        return _json_texts(column.cast(kind.value_type))
    if isinstance(kind, pa.JsonType):
        return pc.fill_null(column.storage, "null")
    if pa.types.is_boolean(kind) or pa.types.is_integer(kind) or pa.types.is_decimal(kind):
        return pc.fill_null(column.cast(pa.string()), "null")
    if pa.types.is_floating(kind):
        finite = pc.is_finite(column)
        return pc.fill_null(pc.if_else(finite, column.cast(pa.string()), None), "null")
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return _quoted(column.cast(pa.string()))
    if pa.types.is_timestamp(kind):
        if kind.tz is not None:
            utc = column.cast(pa.timestamp(kind.unit, "UTC"))
            return _quoted(pc.strftime(utc, format="%Y-%m-%dT%H:%M:%SZ"))
        return _quoted(pc.strftime(column, format="%Y-%m-%dT%H:%M:%S"))
    if pa.types.is_date(kind) or pa.types.is_time(kind):
        return _quoted(column.cast(pa.string()))
    return _python_json_texts(column)


def _quoted(strings: pa.Array) -> pa.Array:
    """``strings`` as JSON string literals."""
    if pc.any(pc.match_substring_regex(strings, _OTHER_CONTROL_CHARACTERS)).as_py():
        return _python_json_texts(strings)
    escaped = strings
    for plain, escape in _STRING_ESCAPES:
        escaped = pc.replace_substring(escaped, plain, escape)
    joined = pc.binary_join_element_wise('"', escaped, '"', "")
    return pc.fill_null(joined, "null")


def _python_json_texts(column: pa.Array) -> pa.Array:
    texts = [json.dumps(_jsonable(v), separators=(",", ":")) for v in column.to_pylist()]
    return pa.array(texts, pa.string())


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        # Arrow maps come back as lists of (key, value) tuples.
        if value and all(isinstance(item, tuple) and len(item) == 2 for item in value):
            return {str(k): _jsonable(v) for k, v in value}
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)

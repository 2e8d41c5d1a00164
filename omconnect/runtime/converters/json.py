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

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json

from omconnect.runtime.converters.base import Converter, Decoded, Encoded
from omconnect.runtime.converters.json_text import data_bytes, json_objects
from omconnect.schemas.arrow import from_arrow_schema, to_arrow_schema
from omconnect.schemas.record import RecordBatch

_MIN_BLOCK_SIZE = 1 << 20


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
            newlines_in_values=bool((data_bytes(bodies) == ord("\n")).any())
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

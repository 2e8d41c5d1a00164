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
- enums as their symbol; lists as arrays, structs as objects, maps as objects keyed by the
  key's text, their values mapped by these same rules (``omconnect.codecs.json_text``);
- nulls as ``null``. The key is a JSON object of the key columns.

Decoding parses every body in one ``pyarrow.json`` call and infers the schema (JSON carries
none): decimals, bytes, UUIDs, times and most timestamps come back as strings (Arrow only
recognises ``YYYY-MM-DD[ hh:mm:ss]`` as a timestamp). Bodies
that are not one JSON object (empty, malformed, several objects) are reported in
``Decoded.failed``; they are looked for one by one only when the bulk parse fails. Bodies
whose fields disagree in type are split into one group per inferred schema.

Deletes: a row of ``RecordBatch.tombstones`` is encoded as a null body with its key. A null
body with a key decodes to a tombstone row in the group of its nearest neighbour with a body;
with no such neighbour in the call, in a group whose schema is the key's (the key fields, all
of them key fields, every value null). A null body without a key is reported as failed.
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json

from omconnect.codecs.json_text import data_bytes, json_objects
from omconnect.runtime.converters.base import Converter, Decoded, DecodedGroup, Encoded
from omconnect.runtime.converters.tombstones import (
    NO_KEY_ERROR,
    keyless_deletes,
    mask_array,
    nearest_labels,
    null_batch,
    null_mask,
    null_where,
    spread_rows,
)
from omconnect.schemas.arrow import from_arrow_schema, to_arrow_schema
from omconnect.schemas.record import RecordBatch
from omconnect.schemas.schema import Schema

_MIN_BLOCK_SIZE = 1 << 20


class JsonConverter(Converter):
    """Message bodies as JSON objects, one per row (see the module docstring)."""

    name = "json"
    content_type = "application/json"

    def encode(self, topic: str, batch: RecordBatch) -> Encoded:
        key_columns = batch.key_columns()
        keys = json_objects(key_columns) if key_columns is not None else None
        values = json_objects(batch.values)
        if batch.tombstones is None:
            return Encoded(values=values, keys=keys)
        deletes = batch.delete_mask()
        failed = keyless_deletes(deletes, keys)
        return Encoded(values=null_where(values, deletes), keys=keys, failed=failed)

    def decode(self, topic: str, values: pa.BinaryArray, keys: pa.BinaryArray | None) -> Decoded:
        n = len(values)
        null_body = null_mask(values, n)
        has_key = ~null_mask(keys, n)
        deletes = null_body & has_key
        failed: dict[int, Exception] = {}
        keyless = null_body & ~has_key
        if keyless.any():
            failed.update(dict.fromkeys(np.flatnonzero(keyless).tolist(), ValueError(NO_KEY_ERROR)))
        with_body = np.flatnonzero(~null_body)
        parsed: list[tuple[np.ndarray, pa.RecordBatch]]
        if not len(with_body):
            parsed = []
        elif null_body.any():
            parsed, parse_failed = _parse_objects(values.take(pa.array(with_body)))
            parsed = [(with_body[rows], batch) for rows, batch in parsed]
            failed.update((int(with_body[r]), e) for r, e in parse_failed.items())
        else:
            parsed, parse_failed = _parse_objects(values)
            failed.update(parse_failed)
        members = [rows for rows, _ in parsed]
        orphans = np.zeros(0, dtype=np.int64)
        if deletes.any():
            members, orphans = _with_deletes(members, deletes)
        decoded = []
        for (parsed_rows, batch), rows in zip(parsed, members, strict=True):
            batch = spread_rows(batch, parsed_rows, rows)
            schema = from_arrow_schema(batch.schema, name=topic)
            group = self._keyed_group(rows, batch, schema, keys, deletes, failed)
            if group is not None:
                decoded.append(group)
        if len(orphans):
            assert keys is not None  # deletes have keys
            decoded.extend(self._key_shaped_groups(topic, orphans, keys, failed))
        decoded.sort(key=lambda g: int(g.rows[0].as_py()))
        return Decoded(groups=decoded, failed=dict(sorted(failed.items())))

    @staticmethod
    def _keyed_group(
        rows: np.ndarray,
        batch: pa.RecordBatch,
        schema: Schema,
        keys: pa.BinaryArray | None,
        deletes: np.ndarray,
        failed: dict[int, Exception],
    ) -> DecodedGroup | None:
        """The group of message ``rows`` with their keys parsed; rows whose key is not a JSON
        object are failed and left out."""
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
        if not len(rows):
            return None
        tombstones = mask_array(deletes[rows])
        return DecodedGroup(pa.array(rows, pa.int64()), batch, schema, key_batch, tombstones)

    @staticmethod
    def _key_shaped_groups(
        topic: str, rows: np.ndarray, keys: pa.BinaryArray, failed: dict[int, Exception]
    ) -> list[DecodedGroup]:
        """Deletes with no neighbour to take a schema from: the schema is their key's."""
        key_groups, key_failed = _parse_objects(keys.take(pa.array(rows)))
        for r, error in key_failed.items():
            failed[int(rows[r])] = ValueError(f"key: {error}")
        groups = []
        for positions, key_batch in key_groups:
            schema = from_arrow_schema(key_batch.schema, topic, key_fields=key_batch.schema.names)
            values = null_batch(to_arrow_schema(schema), len(positions))
            tombstones = pa.array(np.ones(len(positions), dtype=np.bool_))
            members = pa.array(rows[positions], pa.int64())
            groups.append(DecodedGroup(members, values, schema, key_batch, tombstones))
        return groups


def _with_deletes(
    groups: list[np.ndarray], deletes: np.ndarray
) -> tuple[list[np.ndarray], np.ndarray]:
    """The message rows of each group with the deletes that join it (their nearest neighbour
    is in it), and the deletes that have no neighbour."""
    labels = np.full(len(deletes), -1, dtype=np.int64)
    for label, rows in enumerate(groups):
        labels[rows] = label
    nearest = nearest_labels(labels)
    delete_rows = np.flatnonzero(deletes)
    joined = nearest[delete_rows]
    members = [np.union1d(rows, delete_rows[joined == label]) for label, rows in enumerate(groups)]
    return members, delete_rows[joined < 0]


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
            failed[i] = ValueError("the body is null")
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

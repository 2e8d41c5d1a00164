"""The ``json`` converter: one JSON object per message, built and parsed a column at a time.

Encoding never builds a Python dict per row. Each column becomes a column of JSON texts with
Arrow compute kernels, then the pieces are joined element-wise with the ``{"name":`` glue.
Value mapping:

- booleans and integers as JSON literals; floats as numbers, NaN and the infinities as the
  strings ``"NaN"``, ``"Infinity"`` and ``"-Infinity"`` (Jackson's and proto3's convention);
- decimals as strings (``"12.30"``) so no digit is lost to a reader's binary floats;
- strings escaped per RFC 8259 (quote, backslash, control characters); non-ASCII as UTF-8;
- bytes as base64 strings; UUIDs as their hex text; JSON columns embedded as they are;
- dates ``"2024-01-31"``, times ``"12:30:00.000000"``, timestamps ISO-8601
  (``"2024-01-31T12:30:00.000000"``; zoned ones in UTC with a ``Z``);
- enums as their symbol; lists as arrays, structs as objects, maps as objects keyed by the
  key's text, their values mapped by these same rules (``omconnect.codecs.json_text``);
- nulls as ``null``. The key is a JSON object of the key columns.

Bodies stay plain JSON that any consumer reads; what makes decoding exact is the writer's
schema, which JSON does not carry. With a schema registry, ``encode`` registers the batch's
schema (as ``omconnect.schemas.avro`` writes it, the one exact serialisation of an omconnect
schema) under ``<topic>-value``, as the ``avro`` converter does, and raises
``IncompatibleSchemaError`` when the subject's compatibility mode refuses it.

Decoding reads the bodies back as the registered types (``omconnect.codecs.json_values``):
decimals, bytes, UUIDs, dates, times and timestamps (µs or ns) from their text, unsigned
integers of every width, float16, NaN and the infinities, enums, the null type, lists, structs
and maps (keys read back from their text as the key type), JSON documents with the text they
were written with. Each body is read as the newest registered schema that holds all its
top-level fields. When the latest registered schema holds every field of every body, all
bodies are read as it in one pass. Otherwise (a poll of bodies of several schemas, say after
a field was dropped) the top-level keys of each body, which that pass finds
(``omconnect.codecs.json_scan``), choose its schema, and the bodies of each other schema are
read together. A body no registered schema holds (a foreign producer's), and every body
when nothing is registered or there is no registry, is parsed by inference and keeps the
inferred types: decimals, bytes, UUIDs, times and most timestamps come back as strings, all
integers as int64, maps as structs, NaN and the infinities as strings. Bodies that disagree
in inferred type are split into one group per inferred schema.

Keys are read the same way: as the types of the value schema's key fields when the group's
schema is a registered one with key fields, else by inference. A value that does not convert
fails its message, with the reason, in ``Decoded.failed``; so do bodies that are not one JSON
object (empty, malformed, several objects), found one by one only when the bulk parse fails.

Every body is labelled ``content-type: application/json``: ``Encoded.headers`` holds that one
header for each row with a body, which the drivers carry as their broker's content type
(``converters/base.py``). Decoding does not need it (a body is JSON whatever it says).

Deletes: a row of ``RecordBatch.tombstones`` is encoded as a null body with its key (and no
content type). A null body with a key decodes to a tombstone row in the group of its nearest
neighbour with a body; with no such neighbour in the call, in a group of the latest
registered schema, else of a schema of the key's fields (all of them key fields, every value
null). A null body without a key is reported as failed.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from omconnect.codecs.json_scan import ObjectKeys, numpy_mask, object_keys, read_json_objects
from omconnect.codecs.json_text import json_objects
from omconnect.codecs.json_values import JsonRecords, json_records
from omconnect.runtime.converters.base import (
    Converter,
    Decoded,
    DecodedGroup,
    Encoded,
    content_type_headers,
)
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
from omconnect.runtime.state.schema_registry import SchemaRegistry, value_subject
from omconnect.schemas.arrow import from_arrow_schema, to_arrow_schema
from omconnect.schemas.avro import from_avro_schema, to_avro_schema
from omconnect.schemas.record import RecordBatch
from omconnect.schemas.schema import Schema

# Message rows of one decoded schema: (rows, their values, the schema of the values).
_Group = tuple[np.ndarray, pa.RecordBatch, Schema]
# What a body is read as, besides the index of a registered schema.
_UNHELD = -1  # no registered schema holds its fields: by inference
_REFUSED = -2  # not one JSON object: failed


@dataclass(frozen=True)
class _Registered:
    """A registered value schema, as omconnect and Arrow schemas."""

    schema: Schema
    arrow: pa.Schema


class JsonConverter(Converter):
    """Message bodies as JSON objects, one per row (see the module docstring).

    With a ``registry``, ``encode`` registers each batch's schema under ``<topic>-value`` and
    raises ``IncompatibleSchemaError`` when the subject refuses it (a pipeline problem, as
    for ``avro``); ``decode`` reads bodies back as the registered types. Without one, bodies
    decode by inference.
    """

    name = "json"
    content_type = "application/json"

    def __init__(self, registry: SchemaRegistry | None = None) -> None:
        self._registry = registry
        self._lock = threading.Lock()
        # (topic, schema) -> the id the registry gave it under ``<topic>-value``.
        self._registered: dict[tuple[str, Schema], int] = {}
        self._schemas: dict[int, _Registered | None] = {}
        self._version_ids: dict[tuple[str, int], int] = {}

    def encode(self, topic: str, batch: RecordBatch) -> Encoded:
        self._register(topic, batch.schema)
        key_columns = batch.key_columns()
        keys = json_objects(key_columns) if key_columns is not None else None
        values = json_objects(batch.values)
        if batch.tombstones is None:
            labels = content_type_headers(self.content_type, np.ones(batch.num_rows, np.bool_))
            return Encoded(values=values, keys=keys, headers=labels)
        deletes = batch.delete_mask()
        failed = keyless_deletes(deletes, keys)
        # A delete has no body, so nothing to label.
        labels = content_type_headers(self.content_type, ~deletes)
        return Encoded(null_where(values, deletes), keys, failed, labels)

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
        parsed: list[_Group] = []
        if len(with_body):
            bodies = values.take(pa.array(with_body)) if null_body.any() else values
            parsed, parse_failed = self._typed_groups(topic, bodies)
            parsed = [(with_body[rows], batch, schema) for rows, batch, schema in parsed]
            failed.update((int(with_body[r]), e) for r, e in parse_failed.items())
        members = [rows for rows, _, _ in parsed]
        orphans = np.zeros(0, dtype=np.int64)
        if deletes.any():
            members, orphans = _with_deletes(members, deletes)
        decoded = []
        for (parsed_rows, batch, schema), rows in zip(parsed, members, strict=True):
            batch = spread_rows(batch, parsed_rows, rows)
            group = self._keyed_group(rows, batch, schema, keys, deletes, failed)
            if group is not None:
                decoded.append(group)
        if len(orphans):
            assert keys is not None  # deletes have keys
            decoded.extend(self._key_shaped_groups(topic, orphans, keys, failed))
        decoded.sort(key=lambda g: int(g.rows[0].as_py()))
        return Decoded(groups=decoded, failed=dict(sorted(failed.items())))

    def _typed_groups(
        self, topic: str, bodies: pa.BinaryArray
    ) -> tuple[list[_Group], dict[int, Exception]]:
        """The bodies (none null) in groups of one schema each, and the bodies that failed.

        Each body is read as the newest registered schema of the topic that holds all its
        top-level fields. When the latest holds every field of every body, that is one read
        of them all. Otherwise the top-level keys of each body, which that read found,
        choose its schema; the bodies of each other schema are read together, and only the
        bodies no registered schema holds are parsed by inference.
        """
        latest = self._latest(topic)
        latest_read = None
        if latest is not None:
            latest_read = json_records(bodies, latest.arrow)
            if not latest_read.unknown_fields:
                failed = latest_read.failed
                good = _rows_without(len(bodies), failed)
                batch = latest_read.batch if not failed else latest_read.batch.take(pa.array(good))
                return [(good, batch, latest.schema)], failed
        registered = self._registered_versions(topic)
        choice = np.full(len(bodies), _UNHELD, dtype=np.int64)
        failed = {}
        if registered:
            keys = _body_keys(bodies, latest_read)
            choice = _newest_holding(keys, len(bodies), registered)
            choice[list(keys.refused)] = _REFUSED
            failed.update(keys.refused)
        groups: list[_Group] = []
        for index, held in enumerate(registered):
            rows = np.flatnonzero(choice == index)
            if not len(rows):
                continue
            if latest_read is not None and held == latest:  # read already
                batch, read_failed = _rows_of(latest_read, rows)
            else:
                records = json_records(bodies.take(pa.array(rows)), held.arrow)
                batch, read_failed = records.batch, records.failed
            failed.update((int(rows[r]), e) for r, e in read_failed.items())
            good = _rows_without(len(rows), read_failed)
            groups.append((rows[good], batch.take(pa.array(good)), held.schema))
        unheld = np.flatnonzero(choice == _UNHELD)
        if len(unheld):
            inferred, inferred_failed = _parse_objects(bodies.take(pa.array(unheld)))
            failed.update((int(unheld[r]), e) for r, e in inferred_failed.items())
            for rows, batch in inferred:
                inferred_schema = from_arrow_schema(batch.schema, name=topic)
                groups.append((unheld[rows], batch, inferred_schema))
        groups = [group for group in groups if len(group[0])]
        return sorted(groups, key=lambda group: int(group[0][0])), failed

    def _register(self, topic: str, schema: Schema) -> None:
        """Register ``schema`` under ``<topic>-value`` once (per converter)."""
        if self._registry is None:
            return
        with self._lock:
            if (topic, schema) in self._registered:
                return
        schema_id = self._registry.register(value_subject(topic), to_avro_schema(schema))
        with self._lock:
            self._registered[topic, schema] = int(schema_id)

    def registered_id(self, topic: str, schema: Schema) -> int | None:
        """The registry's id of ``schema`` under ``<topic>-value`` once ``encode`` registered
        it; None before, or without a registry."""
        with self._lock:
            return self._registered.get((topic, schema))

    def _latest(self, topic: str) -> _Registered | None:
        """The latest schema registered under ``<topic>-value``, when omconnect reads it."""
        if self._registry is None:
            return None
        latest = self._registry.latest(value_subject(topic))
        return self._schema(int(latest[0])) if latest is not None else None

    def _registered_versions(self, topic: str) -> list[_Registered]:
        """The schemas registered under ``<topic>-value`` that omconnect reads, newest
        first."""
        if self._registry is None:
            return []
        subject = value_subject(topic)
        schemas = []
        for version in reversed(self._registry.versions(subject)):
            schema_id = self._version_id(subject, version)
            registered = self._schema(schema_id) if schema_id is not None else None
            if registered is not None:
                schemas.append(registered)
        return schemas

    def _version_id(self, subject: str, version: int) -> int | None:
        """The schema id of one version of ``subject`` (None when the registry has no such
        version)."""
        with self._lock:
            cached = self._version_ids.get((subject, version))
        if cached is not None:
            return cached
        assert self._registry is not None
        found = self._registry.version(subject, version)
        if found is None:
            return None
        with self._lock:
            self._version_ids[(subject, version)] = int(found[0])
        return int(found[0])

    def _schema(self, schema_id: int) -> _Registered | None:
        """The registered schema ``schema_id``; None when omconnect cannot map it."""
        with self._lock:
            if schema_id in self._schemas:
                return self._schemas[schema_id]
        assert self._registry is not None
        registered: _Registered | None
        try:
            schema = from_avro_schema(self._registry.get(schema_id))
            registered = _Registered(schema, to_arrow_schema(schema))
        except (KeyError, TypeError, ValueError):  # unknown id, or Avro omconnect cannot hold
            registered = None
        with self._lock:
            self._schemas[schema_id] = registered
        return registered

    @staticmethod
    def _keyed_group(
        rows: np.ndarray,
        batch: pa.RecordBatch,
        schema: Schema,
        keys: pa.BinaryArray | None,
        deletes: np.ndarray,
        failed: dict[int, Exception],
    ) -> DecodedGroup | None:
        """The group of message ``rows`` with their keys parsed (None when no row has a
        key); rows whose key does not parse are failed and left out."""
        key_batch = None
        group_keys = keys.take(pa.array(rows)) if keys is not None else None
        if group_keys is not None and group_keys.null_count < len(group_keys):
            key_batch, key_failed = _parsed_keys(pc.fill_null(group_keys, b"{}"), schema)
            failed.update((int(rows[r]), error) for r, error in key_failed.items())
            if key_failed:
                good = _rows_without(len(rows), key_failed)
                rows, batch = rows[good], batch.take(pa.array(good))
        if not len(rows):
            return None
        tombstones = mask_array(deletes[rows])
        return DecodedGroup(pa.array(rows, pa.int64()), batch, schema, key_batch, tombstones)

    def _key_shaped_groups(
        self, topic: str, rows: np.ndarray, keys: pa.BinaryArray, failed: dict[int, Exception]
    ) -> list[DecodedGroup]:
        """Deletes with no neighbour to take a schema from: the latest registered schema of
        the topic, else their key's (one group per shape of key)."""
        bodies = keys.take(pa.array(rows))
        latest = self._latest(topic)
        if latest is not None:
            key_batch, key_failed = _parsed_keys(bodies, latest.schema)
            failed.update((int(rows[r]), error) for r, error in key_failed.items())
            rows = rows[_rows_without(len(rows), key_failed)]
            if not len(rows):
                return []
            values = null_batch(latest.arrow, len(rows))
            tombstones = pa.array(np.ones(len(rows), dtype=np.bool_))
            members = pa.array(rows, pa.int64())
            return [DecodedGroup(members, values, latest.schema, key_batch, tombstones)]
        key_groups, key_failed = _parse_objects(bodies)
        for r, error in key_failed.items():
            failed[int(rows[r])] = ValueError(f"key: {error}")
        groups = []
        for positions, key_batch in key_groups:
            names = key_batch.schema.names
            schema = from_arrow_schema(key_batch.schema, topic, key_fields=names)
            values = null_batch(to_arrow_schema(schema), len(positions))
            tombstones = pa.array(np.ones(len(positions), dtype=np.bool_))
            members = pa.array(rows[positions], pa.int64())
            groups.append(DecodedGroup(members, values, schema, key_batch, tombstones))
        return groups


def _parsed_keys(
    keys: pa.BinaryArray, schema: Schema
) -> tuple[pa.RecordBatch | None, dict[int, Exception]]:
    """The keys (one JSON object each, none null) of rows of ``schema``, without the keys
    that failed, and those. Keys of ``schema``'s key fields are read as their types; other
    keys by inference, as a batch when they are all of one shape, else None."""
    if schema.key_fields:
        arrow = to_arrow_schema(schema)
        key_arrow = pa.schema([arrow.field(name) for name in schema.key_fields])
        records = json_records(keys, key_arrow)
        if not records.unknown_fields:
            failed: dict[int, Exception] = {
                row: ValueError(f"key: {e}") for row, e in records.failed.items()
            }
            good = _rows_without(len(keys), failed)
            return (records.batch.take(pa.array(good)) if failed else records.batch), failed
    key_groups, key_failed = _parse_objects(keys)
    inferred_failed: dict[int, Exception] = {
        row: ValueError(f"key: {e}") for row, e in key_failed.items()
    }
    return (key_groups[0][1] if len(key_groups) == 1 else None), inferred_failed


def _rows_without(count: int, failed: dict[int, Exception]) -> np.ndarray:
    """``0 .. count - 1`` without the ``failed`` rows."""
    rows = np.arange(count, dtype=np.int64)
    return np.setdiff1d(rows, list(failed)) if failed else rows


def _body_keys(bodies: pa.BinaryArray, read: JsonRecords | None) -> ObjectKeys:
    """The top-level keys of every body: those ``read`` (of all the bodies) found, else
    found now."""
    if read is not None and read.keys is not None:
        return read.keys
    return object_keys(bodies)


def _rows_of(read: JsonRecords, rows: np.ndarray) -> tuple[pa.RecordBatch, dict[int, Exception]]:
    """The values ``read`` holds of ``rows`` (ascending body indices) and their failures,
    by position in ``rows``."""
    positions = np.searchsorted(rows, np.array(list(read.failed), dtype=np.int64))
    failed = {
        int(position): error
        for position, (body, error) in zip(positions, read.failed.items(), strict=True)
        if position < len(rows) and rows[position] == body
    }
    return read.batch.take(pa.array(rows)), failed


def _newest_holding(keys: ObjectKeys, count: int, schemas: list[_Registered]) -> np.ndarray:
    """For each of ``count`` bodies (whose top-level ``keys`` are given), the index in
    ``schemas`` (newest first) of the first schema whose top-level fields include every field
    of the body, or ``_UNHELD``."""
    choice = np.full(count, _UNHELD, dtype=np.int64)
    for index, schema in enumerate(schemas):
        foreign = numpy_mask(pc.invert(pc.is_in(keys.names, pa.array(schema.arrow.names))))
        not_held = np.zeros(count, dtype=np.bool_)
        not_held[keys.objects[foreign]] = True
        choice[(choice == _UNHELD) & ~not_held] = index
    return choice


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
    """All ``bodies`` parsed in one call, one row each, with inferred omconnect-compatible
    types.

    Raises:
        pyarrow.ArrowInvalid: a body is malformed or fields disagree in type.
        ValueError: a body is null, or does not hold exactly one object.
    """
    table = read_json_objects(bodies)
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

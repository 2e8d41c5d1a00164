"""The ``avro`` converter: record batches <-> Avro bodies in the Confluent wire format.

Every body is ``0x00`` + the 4-byte big-endian schema id + one Avro datum. Value schemas are
registered under ``<topic>-value`` and key schemas under ``<topic>-key`` (Confluent's
TopicNameStrategy), so Confluent consumers read what omconnect writes and the other way round.
Keys are Avro of the batch's key schema (``key_schema``, else the schema's key fields).

Deletes travel as Kafka tombstones: a null value body and the Avro key. A decoded tombstone
takes the value schema of its nearest neighbour with a body in the same call (the message
before it, else after it); with none, the latest schema registered under ``<topic>-value``;
with none registered, a schema of the key's fields.

The Avro datums are encoded and decoded by the vectorised codec in ``omconnect.codecs.avro``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from omconnect.codecs.avro import (
    AvroType,
    binary_with_nulls,
    decode_batch_lenient,
    encode_batch_lenient,
)
from omconnect.codecs.avro.types import type_name
from omconnect.runtime.converters.base import Converter, Decoded, DecodedGroup, Encoded
from omconnect.runtime.converters.tombstones import (
    NO_KEY_ERROR,
    keyless_deletes,
    mask_array,
    nearest_labels,
    null_batch,
    null_mask,
)
from omconnect.runtime.state.schema_registry import SchemaRegistry, key_subject, value_subject
from omconnect.schemas.arrow import from_arrow_schema, to_arrow_schema
from omconnect.schemas.avro import from_avro_schema, to_avro_schema
from omconnect.schemas.record import RecordBatch
from omconnect.schemas.schema import Schema

I64 = npt.NDArray[np.int64]

MAGIC_BYTE = 0
HEADER_SIZE = 5


def header(schema_id: int) -> bytes:
    """The 5 bytes that start every body written with ``schema_id``."""
    return bytes([MAGIC_BYTE]) + schema_id.to_bytes(4, "big")


def read_headers(bodies: pa.Array, allow_null: bool = False) -> tuple[I64, dict[int, Exception]]:
    """The schema id of every body (-1 where there is none), and the bodies without a valid
    header. Null bodies are errors unless ``allow_null`` (message keys may be absent)."""
    n = len(bodies)
    large = bodies.type in (pa.large_binary(), pa.large_string())
    offsets = np.frombuffer(
        bodies.buffers()[1], dtype=np.int64 if large else np.int32, count=bodies.offset + n + 1
    )[bodies.offset :].astype(np.int64)
    data = bodies.buffers()[2]
    raw = np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, np.uint8)
    raw = np.concatenate([raw, np.zeros(HEADER_SIZE, dtype=np.uint8)])
    starts = offsets[:-1]
    window = raw[np.minimum(starts, len(raw) - HEADER_SIZE)[:, None] + np.arange(HEADER_SIZE)]
    ids = window[:, 1:].astype(np.int64) @ np.array([1 << 24, 1 << 16, 1 << 8, 1])
    present = (
        np.ones(n, dtype=np.bool_)
        if bodies.null_count == 0
        else np.asarray(bodies.is_valid().to_numpy(zero_copy_only=False), dtype=np.bool_)
    )
    well_formed = present & (np.diff(offsets) >= HEADER_SIZE) & (window[:, 0] == MAGIC_BYTE)
    errors: dict[int, Exception] = {}
    broken = np.flatnonzero(present & ~well_formed)
    if len(broken):
        error = ValueError("not Confluent Avro: no magic byte 0 and 4-byte schema id")
        errors.update(dict.fromkeys(broken.tolist(), error))
    if not allow_null and not present.all():
        errors.update(dict.fromkeys(np.flatnonzero(~present).tolist(), ValueError("null body")))
    return np.where(well_formed, ids, -1), errors


@dataclass(frozen=True)
class _ReaderSchema:
    """What decoding bodies of one schema id needs."""

    avro: AvroType
    schema: Schema
    arrow: pa.Schema


class AvroConverter(Converter):
    """Avro bodies with a schema registry; the bulk of the work is vectorised.

    ``encode`` raises ``IncompatibleSchemaError`` when the batch's schema cannot be registered
    (that is a pipeline problem, not a row problem); every other failure is per row.
    """

    name = "avro"
    content_type = "application/avro"

    def __init__(self, registry: SchemaRegistry) -> None:
        self._registry = registry
        self._lock = threading.Lock()
        self._writers: dict[tuple[str, Schema], tuple[int, AvroType]] = {}
        self._readers: dict[int, _ReaderSchema] = {}

    def encode(self, topic: str, batch: RecordBatch) -> Encoded:
        """Bodies for every row; rows that cannot be encoded get null bodies and a reason.

        Deletes (``batch.tombstones``) get a null value body and their key; their value
        columns are not encoded, so they may be null even where the schema says not-null.
        """
        value_id, value_avro = self._writer(value_subject(topic), batch.schema)
        deletes = batch.delete_mask() if batch.tombstones is not None else None
        if deletes is None or not deletes.any():
            values, failed = _encode_narrowing(batch.values, value_avro, header(value_id))
        else:
            values, failed = _encode_live_rows(batch.values, ~deletes, value_avro, value_id)
        keys = None
        key_columns = batch.key_columns()
        if key_columns is not None:
            key_schema = (
                batch.key_schema
                or batch.schema.key_schema()
                or from_arrow_schema(key_columns.schema, f"{batch.schema.name}_key")
            )
            key_id, key_avro = self._writer(key_subject(topic), key_schema)
            keys, key_failed = _encode_narrowing(key_columns, key_avro, header(key_id))
            for row, error in key_failed.items():
                failed.setdefault(row, error)
        if deletes is not None:
            for row, error in keyless_deletes(deletes, keys).items():
                failed.setdefault(row, error)
        if failed:
            keep = np.ones(batch.num_rows, dtype=np.bool_)
            keep[list(failed)] = False
            values = _nulls_where_not(values, keep)
            keys = _nulls_where_not(keys, keep) if keys is not None else None
        return Encoded(values=values, keys=keys, failed=dict(sorted(failed.items())))

    def decode(self, topic: str, values: pa.BinaryArray, keys: pa.BinaryArray | None) -> Decoded:
        """Group bodies by (value schema id, key schema id) and decode each group at once."""
        n = len(values)
        failed: dict[int, Exception] = {}
        value_ids, value_errors = read_headers(values, allow_null=True)
        failed.update(value_errors)
        if keys is not None:
            key_ids, key_errors = read_headers(keys, allow_null=True)
            for row, error in key_errors.items():
                failed.setdefault(row, ValueError(f"message key: {error}"))
        else:
            key_ids = np.full(n, -1, dtype=np.int64)
        null_body = null_mask(values, n)
        deletes = null_body & ~null_mask(keys, n)
        keyless = null_body & ~deletes
        if keyless.any():
            error = ValueError(NO_KEY_ERROR)
            for row in np.flatnonzero(keyless).tolist():
                failed.setdefault(row, error)
        usable = np.ones(n, dtype=np.bool_)
        usable[list(failed)] = False
        deletes &= usable
        if deletes.any():
            value_ids = self._delete_schema_ids(topic, value_ids, deletes, usable)
        rows = np.flatnonzero(usable)
        pairs = np.stack([value_ids[rows], key_ids[rows]], axis=1)
        unique_pairs, first_seen, group_of = np.unique(
            pairs, axis=0, return_index=True, return_inverse=True
        )
        groups: list[DecodedGroup] = []
        for group in np.argsort(first_seen, kind="stable").tolist():
            members = rows[group_of.reshape(-1) == group]
            value_id, key_id = (int(x) for x in unique_pairs[group])
            decoded = self._decode_group(
                topic, values, keys, members, value_id, key_id, deletes, failed
            )
            if decoded is not None:
                groups.append(decoded)
        return Decoded(groups=groups, failed=dict(sorted(failed.items())))

    def _delete_schema_ids(
        self,
        topic: str,
        value_ids: I64,
        deletes: npt.NDArray[np.bool_],
        usable: npt.NDArray[np.bool_],
    ) -> I64:
        """``value_ids`` with the value schema id each delete takes: its nearest neighbour's,
        else the latest of ``<topic>-value``, else -1 (a schema of the key's fields)."""
        bodies = usable & ~deletes
        readable = np.zeros(len(value_ids), dtype=np.bool_)
        for schema_id in np.unique(value_ids[bodies]).tolist():
            try:
                self._reader(schema_id)
            except Exception:  # its own rows fail with the reason when their group decodes
                continue
            readable |= bodies & (value_ids == schema_id)
        nearest = nearest_labels(np.where(readable, value_ids, -1))
        chosen = nearest[deletes]
        if (chosen < 0).any():
            chosen[chosen < 0] = self._latest_value_id(topic)
        value_ids = value_ids.copy()
        value_ids[deletes] = chosen
        return value_ids

    def _latest_value_id(self, topic: str) -> int:
        """The id of the latest schema registered under ``<topic>-value`` that can be read,
        or -1."""
        latest = self._registry.latest(value_subject(topic))
        if latest is None:
            return -1
        try:
            self._reader(latest[0])
        except Exception:  # a schema omconnect cannot map: fall back to the key's fields
            return -1
        return int(latest[0])

    def _decode_group(
        self,
        topic: str,
        values: pa.BinaryArray,
        keys: pa.BinaryArray | None,
        members: I64,
        value_id: int,
        key_id: int,
        deletes: npt.NDArray[np.bool_],
        failed: dict[int, Exception],
    ) -> DecodedGroup | None:
        try:
            key_reader = self._reader(key_id) if key_id >= 0 else None
            if value_id >= 0:
                value_reader = self._reader(value_id)
            else:  # deletes only, with no value schema to take: the key's fields
                assert key_reader is not None
                value_reader = _key_shaped(topic, key_reader)
        except Exception as error:  # unknown id, or a schema omconnect cannot map
            for row in members.tolist():
                failed[row] = error
            return None
        group_deletes = deletes[members]
        live = np.flatnonzero(~group_deletes)
        bad = np.zeros(len(members), dtype=np.bool_)
        value_index = np.full(len(members), -1, dtype=np.int64)
        if len(live):
            bodies = values.take(pa.array(members if len(live) == len(members) else members[live]))
            value_batch, value_bad = decode_batch_lenient(
                bodies, value_reader.avro, value_reader.arrow, skip=HEADER_SIZE
            )
        else:
            value_batch, value_bad = null_batch(value_reader.arrow, 0), {}
        decoded_live = np.ones(len(live), dtype=np.bool_)
        decoded_live[list(value_bad)] = False
        value_index[live[decoded_live]] = np.arange(int(decoded_live.sum()), dtype=np.int64)
        for index, reason in value_bad.items():
            failed[int(members[live[index]])] = reason
            bad[live[index]] = True
        key_batch: pa.RecordBatch | None = None
        key_bad: dict[int, Exception] = {}
        if key_reader is not None and keys is not None:
            key_batch, key_bad = decode_batch_lenient(
                keys.take(pa.array(members)), key_reader.avro, key_reader.arrow, skip=HEADER_SIZE
            )
        for index, reason in key_bad.items():
            failed[int(members[index])] = reason
            bad[index] = True
        good = ~bad
        if not good.any():
            return None
        if group_deletes.any() or not good.all():
            kept = value_index[good]
            value_batch = value_batch.take(pa.array(kept, mask=kept < 0))
        key_batch = _keep_rows(key_batch, good, key_bad) if key_batch is not None else None
        return DecodedGroup(
            pa.array(members[good], pa.int64()),
            value_batch,
            value_reader.schema,
            key_batch,
            mask_array(group_deletes[good]),
        )

    def _writer(self, subject: str, schema: Schema) -> tuple[int, AvroType]:
        """The registered id and Avro schema of ``schema`` under ``subject`` (cached)."""
        cache_key = (subject, schema)
        with self._lock:
            cached = self._writers.get(cache_key)
        if cached is not None:
            return cached
        avro = to_avro_schema(schema)
        schema_id = self._registry.register(subject, avro)
        with self._lock:
            self._writers[cache_key] = (schema_id, avro)
        return schema_id, avro

    def _reader(self, schema_id: int) -> _ReaderSchema:
        with self._lock:
            cached = self._readers.get(schema_id)
        if cached is not None:
            return cached
        avro = self._registry.get(schema_id)
        schema = from_avro_schema(avro)
        if type_name(avro) != "record":  # a bare type reads as a record of one field "value"
            avro = {"type": "record", "name": "value", "fields": [{"name": "value", "type": avro}]}
        reader = _ReaderSchema(avro=avro, schema=schema, arrow=to_arrow_schema(schema))
        with self._lock:
            self._readers[schema_id] = reader
        return reader


def _key_shaped(topic: str, key_reader: _ReaderSchema) -> _ReaderSchema:
    """What deletes with no value schema decode to: the key's fields, all of them key fields."""
    fields = key_reader.schema.fields
    schema = Schema(name=topic, fields=fields, key_fields=tuple(f.name for f in fields))
    return _ReaderSchema(avro=key_reader.avro, schema=schema, arrow=to_arrow_schema(schema))


def _encode_live_rows(
    batch: pa.RecordBatch, live: npt.NDArray[np.bool_], avro: AvroType, schema_id: int
) -> tuple[pa.Array, dict[int, Exception]]:
    """Bodies of the ``live`` rows only; the other rows (deletes) get null bodies."""
    rows = np.flatnonzero(live)
    if not len(rows):
        return pa.nulls(batch.num_rows, pa.binary()), {}
    encoded, failed = _encode_narrowing(batch.filter(pa.array(live)), avro, header(schema_id))
    bodies = binary_with_nulls(encoded, live, batch.num_rows)
    return bodies, {int(rows[row]): error for row, error in failed.items()}


def _encode_narrowing(
    batch: pa.RecordBatch, avro: AvroType, prefix: bytes
) -> tuple[pa.Array, dict[int, Exception]]:
    """Encode ``batch``; when it fails as a whole, halve it until the failing rows are found."""
    try:
        return encode_batch_lenient(batch, avro, prefix)
    except Exception as error:  # a column the vectorised path refuses; find the rows
        if batch.num_rows <= 1:
            return pa.nulls(batch.num_rows, pa.binary()), dict.fromkeys(
                range(batch.num_rows), error
            )
    half = batch.num_rows // 2
    head, head_failed = _encode_narrowing(batch.slice(0, half), avro, prefix)
    tail, tail_failed = _encode_narrowing(batch.slice(half), avro, prefix)
    failed = {**head_failed, **{half + row: e for row, e in tail_failed.items()}}
    kind = pa.large_binary() if pa.large_binary() in (head.type, tail.type) else pa.binary()
    return pa.concat_arrays([head.cast(kind), tail.cast(kind)]), failed


def _nulls_where_not(array: pa.Array, keep: npt.NDArray[np.bool_]) -> pa.Array:
    return pc.if_else(pa.array(keep), array, pa.scalar(None, array.type))


def _keep_rows(
    batch: pa.RecordBatch, good: npt.NDArray[np.bool_], own_bad: dict[int, Exception]
) -> pa.RecordBatch:
    """Rows of a decoded batch (which already lacks ``own_bad``) that are ``good`` overall."""
    survived = np.ones(len(good), dtype=np.bool_)
    survived[list(own_bad)] = False
    return batch.filter(pa.array(good[survived]))

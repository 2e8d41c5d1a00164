"""The ``avro`` converter: record batches <-> Avro bodies in the Confluent wire format.

Every body is ``0x00`` + the 4-byte big-endian schema id + one Avro datum. Value schemas are
registered under ``<topic>-value`` and key schemas under ``<topic>-key`` (Confluent's
TopicNameStrategy), so Confluent consumers read what omconnect writes and the other way round.
Keys are Avro of the batch's key schema (``key_schema``, else the schema's key fields).

Deletes travel as Kafka tombstones: a null value body and the Avro key. A decoded tombstone
takes the value schema of its nearest neighbour with a body in the same call (the message
before it, else after it); with none, the latest schema registered under ``<topic>-value``;
with none registered, a schema of the key's fields.

What is here is what the wire format and the registry add: the header, the subjects, the
schema ids of a call's bodies and their grouping by id, tombstones. The Avro datums are encoded
and decoded by the vectorised codec in ``omconnect.codecs.avro``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
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
from omconnect.codecs.avro.bodies import concat_binary
from omconnect.codecs.avro.types import type_name
from omconnect.runtime.converters.base import Converter, Decoded, DecodedGroup, Encoded
from omconnect.runtime.converters.tombstones import (
    NO_KEY_ERROR,
    keyless_deletes,
    mask_array,
    nearest_labels,
    null_mask,
    null_where,
)
from omconnect.runtime.state.schema_registry import SchemaRegistry, key_subject, value_subject
from omconnect.schemas.arrow import from_arrow_schema, to_arrow_schema
from omconnect.schemas.avro import from_avro_schema, to_avro_schema
from omconnect.schemas.record import RecordBatch
from omconnect.schemas.schema import Schema

I64 = npt.NDArray[np.int64]
Mask = npt.NDArray[np.bool_]
Failures = dict[int, Exception]

MAGIC_BYTE = 0
HEADER_SIZE = 5


def header(schema_id: int) -> bytes:
    """The 5 bytes that start every body written with ``schema_id``."""
    return bytes([MAGIC_BYTE]) + schema_id.to_bytes(4, "big")


def read_headers(bodies: pa.Array) -> tuple[I64, Failures]:
    """The schema id of every body (-1 where there is none: a null or malformed body), and the
    bodies that are not null but do not start with a header."""
    lengths = pc.binary_length(bodies).fill_null(-1).to_numpy(zero_copy_only=False)
    framed = lengths >= HEADER_SIZE
    heads = pc.binary_slice(bodies, 0, HEADER_SIZE)  # the rest of a body is not copied
    heads = pc.if_else(pa.array(framed), heads, pa.scalar(bytes(HEADER_SIZE), heads.type))
    window = np.frombuffer(heads.cast(pa.binary(HEADER_SIZE)).buffers()[1], dtype=np.uint8)
    window = window[: len(bodies) * HEADER_SIZE].reshape(-1, HEADER_SIZE)
    framed &= window[:, 0] == MAGIC_BYTE
    ids = np.ascontiguousarray(window[:, 1:]).view(">u4").ravel().astype(np.int64)
    broken = np.flatnonzero((lengths >= 0) & ~framed).tolist()
    error = ValueError("not Confluent Avro: no magic byte 0 and 4-byte schema id")
    return np.where(framed, ids, -1), dict.fromkeys(broken, error)


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
        deletes = batch.delete_mask()
        values, failed = _encode_rows(batch.values, value_avro, header(value_id), ~deletes)
        keys = None
        key_columns = batch.key_columns()
        if key_columns is not None:
            key_schema = (
                batch.key_schema
                or batch.schema.key_schema()
                or from_arrow_schema(key_columns.schema, f"{batch.schema.name}_key")
            )
            key_id, key_avro = self._writer(key_subject(topic), key_schema)
            keys, key_failed = _encode_rows(key_columns, key_avro, header(key_id))
            _add_first(failed, key_failed)
        _add_first(failed, keyless_deletes(deletes, keys))
        if failed:
            failed_rows = np.zeros(batch.num_rows, dtype=np.bool_)
            failed_rows[list(failed)] = True
            values = null_where(values, failed_rows)
            keys = null_where(keys, failed_rows) if keys is not None else None
        return Encoded(values=values, keys=keys, failed=dict(sorted(failed.items())))

    def decoded_form(self, topic: str, batch: RecordBatch) -> DecodedGroup | None:
        """The rows of ``batch`` as ``decode`` reads its bodies back: its columns cast to the
        registered schema's Arrow types. A safe cast changes no value that the Avro round trip
        keeps (``encode`` refused the rows whose values it could not carry), and one that
        would fails: then, and for batches with deletes, None."""
        if batch.delete_mask().any():
            return None
        try:
            values, schema = self._as_read(value_subject(topic), batch.schema, batch.values)
            keys = None
            key_columns = batch.key_columns()
            if key_columns is not None:
                key_schema = (
                    batch.key_schema
                    or batch.schema.key_schema()
                    or from_arrow_schema(key_columns.schema, f"{batch.schema.name}_key")
                )
                keys, _ = self._as_read(key_subject(topic), key_schema, key_columns)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, KeyError):
            return None
        rows = pa.array(np.arange(batch.num_rows, dtype=np.int64))
        return DecodedGroup(rows, values, schema, keys)

    def _as_read(
        self, subject: str, schema: Schema, columns: pa.RecordBatch
    ) -> tuple[pa.RecordBatch, Schema]:
        """``columns`` (written under ``subject`` with ``schema``) as decoding reads them."""
        with self._lock:
            schema_id, _ = self._writers[subject, schema]
        reader = self._reader(schema_id)
        if columns.schema.types != reader.arrow.types:
            columns = columns.cast(reader.arrow, safe=True)
        # The reader's schema, metadata and nullability included, over the same buffers.
        return pa.RecordBatch.from_arrays(columns.columns, schema=reader.arrow), reader.schema

    def decode(self, topic: str, values: pa.BinaryArray, keys: pa.BinaryArray | None) -> Decoded:
        """Group bodies by (value schema id, key schema id) and decode each group at once."""
        n = len(values)
        value_ids, failed = read_headers(values)
        key_ids = np.full(n, -1, dtype=np.int64)
        if keys is not None:
            key_ids, key_errors = read_headers(keys)
            _add_first(failed, {r: ValueError(f"message key: {e}") for r, e in key_errors.items()})
        null_body = null_mask(values, n)
        deletes = null_body & ~null_mask(keys, n)
        keyless = np.flatnonzero(null_body & ~deletes).tolist()
        _add_first(failed, dict.fromkeys(keyless, ValueError(NO_KEY_ERROR)))
        usable = np.ones(n, dtype=np.bool_)
        usable[list(failed)] = False
        deletes &= usable
        if deletes.any():
            value_ids = self._delete_schema_ids(topic, value_ids, deletes, usable)
        groups: list[DecodedGroup] = []
        for members, value_id, key_id in _by_schema_ids(np.flatnonzero(usable), value_ids, key_ids):
            group = self._decode_group(
                topic, values, keys, members, value_id, key_id, deletes[members], failed
            )
            if group is not None:
                groups.append(group)
        return Decoded(groups=groups, failed=dict(sorted(failed.items())))

    def _delete_schema_ids(self, topic: str, value_ids: I64, deletes: Mask, usable: Mask) -> I64:
        """``value_ids`` with the value schema id each delete takes: its nearest neighbour's,
        else the latest of ``<topic>-value``, else -1 (a schema of the key's fields)."""
        bodies = usable & ~deletes
        readable = np.zeros(len(value_ids), dtype=np.bool_)
        for schema_id in np.unique(value_ids[bodies]).tolist():
            if self._readable(schema_id):  # others fail with the reason when their group decodes
                readable |= bodies & (value_ids == schema_id)
        chosen = nearest_labels(np.where(readable, value_ids, -1))[deletes]
        if (chosen < 0).any():
            latest = self._registry.latest(value_subject(topic))
            chosen[chosen < 0] = int(latest[0]) if latest and self._readable(latest[0]) else -1
        value_ids = value_ids.copy()
        value_ids[deletes] = chosen
        return value_ids

    def _decode_group(
        self,
        topic: str,
        values: pa.BinaryArray,
        keys: pa.BinaryArray | None,
        members: I64,
        value_id: int,
        key_id: int,
        deletes: Mask,
        failed: Failures,
    ) -> DecodedGroup | None:
        """The messages ``members`` (``deletes`` among them are tombstones), all written with
        ``value_id`` and ``key_id``; those that cannot be decoded go to ``failed``."""
        try:
            key_reader = self._reader(key_id) if key_id >= 0 else None
            if value_id >= 0:
                value_reader = self._reader(value_id)
            else:  # deletes only, with no value schema to take: the key's fields
                assert key_reader is not None
                value_reader = _key_shaped(topic, key_reader)
        except Exception as error:  # unknown id, or a schema omconnect cannot map
            failed.update(dict.fromkeys(members.tolist(), error))
            return None
        value_batch, value_at = _decode_rows(values, value_reader, members, ~deletes, failed)
        good = deletes | (value_at >= 0)
        key_batch: pa.RecordBatch | None = None
        if key_reader is not None and keys is not None:
            every = np.ones(len(members), dtype=np.bool_)
            key_batch, key_at = _decode_rows(keys, key_reader, members, every, failed)
            good &= key_at >= 0
            key_batch = _laid_out(key_batch, key_at[good])
        if not good.any():
            return None
        return DecodedGroup(
            pa.array(members[good], pa.int64()),
            _laid_out(value_batch, value_at[good]),
            value_reader.schema,
            key_batch,
            mask_array(deletes[good]),
        )

    def _writer(self, subject: str, schema: Schema) -> tuple[int, AvroType]:
        """The registered id and Avro schema of ``schema`` under ``subject`` (cached)."""
        with self._lock:
            if (subject, schema) not in self._writers:
                avro = to_avro_schema(schema)
                self._writers[subject, schema] = (self._registry.register(subject, avro), avro)
            return self._writers[subject, schema]

    def _reader(self, schema_id: int) -> _ReaderSchema:
        """How to decode bodies written with ``schema_id`` (cached).

        Raises:
            Exception: the registry has no such id, or omconnect cannot map its schema.
        """
        with self._lock:
            if schema_id not in self._readers:
                self._readers[schema_id] = _reader_schema(self._registry.get(schema_id))
            return self._readers[schema_id]

    def _readable(self, schema_id: int) -> bool:
        try:
            self._reader(schema_id)
        except Exception:  # the reason is reported with the rows that need the schema
            return False
        return True


def _reader_schema(avro: AvroType) -> _ReaderSchema:
    """A registered schema as the codec reads it: a bare type reads as a record of one field
    ``value``, as ``from_avro_schema`` maps it."""
    schema = from_avro_schema(avro)
    if type_name(avro) != "record":
        avro = {"type": "record", "name": "value", "fields": [{"name": "value", "type": avro}]}
    return _ReaderSchema(avro=avro, schema=schema, arrow=to_arrow_schema(schema))


def _key_shaped(topic: str, key_reader: _ReaderSchema) -> _ReaderSchema:
    """What deletes with no value schema decode to: the key's fields, all of them key fields."""
    fields = key_reader.schema.fields
    schema = Schema(name=topic, fields=fields, key_fields=tuple(f.name for f in fields))
    return _ReaderSchema(avro=key_reader.avro, schema=schema, arrow=to_arrow_schema(schema))


def _add_first(failed: Failures, more: Mapping[int, Exception]) -> None:
    """Add ``more`` to ``failed``; a row already there keeps its first reason."""
    for row, error in more.items():
        failed.setdefault(row, error)


def _by_schema_ids(rows: I64, value_ids: I64, key_ids: I64) -> Iterator[tuple[I64, int, int]]:
    """``rows`` grouped by (value schema id, key schema id), in order of first row."""
    pairs = np.stack([value_ids[rows], key_ids[rows]], axis=1)
    unique_pairs, first_seen, group_of = np.unique(
        pairs, axis=0, return_index=True, return_inverse=True
    )
    for group in np.argsort(first_seen, kind="stable").tolist():
        value_id, key_id = (int(x) for x in unique_pairs[group])
        yield rows[group_of.reshape(-1) == group], value_id, key_id


def _decode_rows(
    bodies: pa.BinaryArray, reader: _ReaderSchema, members: I64, wanted: Mask, failed: Failures
) -> tuple[pa.RecordBatch, I64]:
    """Decode the bodies of ``members[wanted]``: the rows decoded, and for every member the
    index of its row among them (-1 where not wanted, or corrupt: then the reason is put in
    ``failed``)."""
    rows = members[wanted]
    batch, corrupt = decode_batch_lenient(
        bodies.take(pa.array(rows)), reader.avro, reader.arrow, skip=HEADER_SIZE
    )
    decoded = np.ones(len(rows), dtype=np.bool_)
    decoded[list(corrupt)] = False
    at = np.full(len(members), -1, dtype=np.int64)
    at[np.flatnonzero(wanted)[decoded]] = np.arange(batch.num_rows, dtype=np.int64)
    failed.update((int(rows[index]), reason) for index, reason in corrupt.items())
    return batch, at


def _laid_out(batch: pa.RecordBatch, at: I64) -> pa.RecordBatch:
    """Row ``at[i]`` of ``batch`` for every i, all null where ``at[i]`` is -1 (a tombstone)."""
    if len(at) == batch.num_rows and (at >= 0).all():  # ascending, so every row in order
        return batch
    return batch.take(pa.array(at, mask=at < 0))


def _encode_rows(
    batch: pa.RecordBatch, avro: AvroType, prefix: bytes, live: Mask | None = None
) -> tuple[pa.Array, Failures]:
    """Bodies of the ``live`` rows (default: all), null bodies for the others (deletes); rows
    that cannot be encoded get null bodies and a reason."""
    if live is None or live.all():
        return _encode_narrowing(batch, avro, prefix)
    rows = np.flatnonzero(live)
    encoded, failed = _encode_narrowing(batch.filter(pa.array(live)), avro, prefix)
    bodies = binary_with_nulls(encoded, live, batch.num_rows)
    return bodies, {int(rows[row]): error for row, error in failed.items()}


def _encode_narrowing(
    batch: pa.RecordBatch, avro: AvroType, prefix: bytes
) -> tuple[pa.Array, Failures]:
    """Encode ``batch``; when it fails as a whole, halve it until the failing rows are found."""
    everything_failed = pa.nulls(batch.num_rows, pa.binary())
    try:
        return encode_batch_lenient(batch, avro, prefix)
    except TypeError as error:  # a column type the schema cannot carry: no row can be encoded
        return everything_failed, dict.fromkeys(range(batch.num_rows), error)
    except Exception as error:  # some values break the batch as a whole; find their rows
        if batch.num_rows <= 1:
            return everything_failed, dict.fromkeys(range(batch.num_rows), error)
    half = batch.num_rows // 2
    head, head_failed = _encode_narrowing(batch.slice(0, half), avro, prefix)
    tail, tail_failed = _encode_narrowing(batch.slice(half), avro, prefix)
    failed = {**head_failed, **{half + row: e for row, e in tail_failed.items()}}
    return concat_binary([head, tail]), failed

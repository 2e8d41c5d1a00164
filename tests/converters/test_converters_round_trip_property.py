"""Random schemas and rows through every converter and a real embedded broker, and back.

Issue 7's bar: every type a Parquet, Avro or CSV file or a database driver produces maps to an
omconnect type and back losslessly, through every converter. Each example draws a random
schema (``tests.support.schema_strategies``: nested types, random nullability, docs, names Avro
must sanitise, key fields) and 0..50 random rows with nulls, encodes them with a converter
(``make_converter``), stores the bodies and keys in an embedded broker (Arrow IPC segments on
SQLite, in a temporary directory), reads them back with a consumer as the sink loop does,
decodes them and asserts that what comes out is what went in: the same omconnect schema, the
same Arrow schema (types, nullability, metadata) and the same values (``first_difference``:
dictionary encodings decoded, NaN equal to NaN).

``raw`` carries bytes only, so it is held to what it promises instead: one binary or text
column (and key) in, the same bytes out as a ``value`` (``key``) binary column, a null body
with a key a delete; any other batch refused, naming its columns.
"""

from __future__ import annotations

import asyncio
import random
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from omconnect.connectors.api.errors import ConfigError
from omconnect.runtime.brokers import open_broker
from omconnect.runtime.converters import Decoded, Encoded, make_converter
from omconnect.runtime.state.schema_registry import SqliteSchemaRegistry
from omconnect.schemas import types as t
from omconnect.schemas.message_batch import MessageBatch
from omconnect.schemas.record import RecordBatch
from omconnect.schemas.schema import Schema
from tests.support.schema_strategies import (
    first_difference,
    holds_type,
    is_list_or_map,
    names,
    random_batch,
    schemas,
)

TOPIC = "round.trip"
MAX_ROWS = 50

seeds = st.integers(0, 2**32 - 1)
row_counts = st.integers(0, MAX_ROWS)
with_lists_or_maps = schemas().filter(
    lambda s: any(holds_type(f.type, is_list_or_map) for f in s.fields)
)

# Each example opens a registry and a broker; 50 examples a test keep the file under 20 s.
ROUND_TRIPS = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def round_trip(format_name: str, batch: RecordBatch) -> Decoded:
    """``batch`` encoded by the ``format_name`` converter, stored in and read back from an
    embedded broker, and decoded (by a second converter, as a sink in another process
    would: nothing is shared but the registry)."""
    with tempfile.TemporaryDirectory() as directory:
        registry = SqliteSchemaRegistry(Path(directory) / "registry.db")
        encoded = make_converter(format_name, registry).encode(TOPIC, batch)
        assert not encoded.failed, f"rows the {format_name} converter refused: {encoded.failed}"
        assert len(encoded.values) == batch.num_rows
        messages = asyncio.run(asyncio.wait_for(_through_broker(directory, encoded), 30))
        return make_converter(format_name, registry).decode(TOPIC, messages.values, messages.keys)


async def _through_broker(directory: str, encoded: Encoded) -> MessageBatch:
    """The messages of ``encoded`` as a consumer of an embedded broker reads them."""
    sent = MessageBatch.build(encoded.values, keys=encoded.keys, timestamps=0)
    broker = open_broker(f"embedded://{directory}/broker?sync=normal")
    try:
        await (await broker.producer()).send(TOPIC, sent)
        consumer = await broker.consumer("round-trip", [TOPIC])
        read: list[MessageBatch] = []
        while sum(map(len, read)) < len(sent):
            read.extend(b.messages for b in await consumer.poll(MAX_ROWS, timeout=1))
    finally:
        await broker.close()
    return MessageBatch.concat(read) if read else sent  # no rows: nothing was stored


def assert_same_rows(format_name: str, schema: Schema, rows: int, seed: int) -> None:
    """``rows`` random rows of ``schema`` (drawn from ``seed``) come back from ``round_trip``
    as they went in: schema, Arrow schema, values and keys."""
    values = random_batch(schema, rows, random.Random(seed))
    decoded = round_trip(format_name, RecordBatch(values=values, schema=schema))
    assert not decoded.failed, f"bodies that did not decode: {decoded.failed}"
    if rows == 0:
        assert decoded.groups == []
        return
    (group,) = decoded.groups
    assert group.rows.to_pylist() == list(range(rows))
    assert group.tombstones is None, "no row was a delete"
    assert group.schema == schema
    assert group.values.schema.equals(values.schema, check_metadata=True), (
        f"Arrow schema {group.values.schema}, expected {values.schema}"
    )
    difference = first_difference(group.values, values)
    assert difference is None, difference
    expected_keys = RecordBatch(values=values, schema=schema).key_columns()
    if expected_keys is None:
        assert group.keys is None
    else:
        assert group.keys is not None, "the keys were lost"
        key_difference = first_difference(group.keys, expected_keys)
        assert key_difference is None, f"keys: {key_difference}"


@ROUND_TRIPS
@given(schemas(lists_and_maps=False), row_counts, seeds)
def test_avro_round_trip_of_records_and_structs(schema: Schema, rows: int, seed: int) -> None:
    assert_same_rows("avro", schema, rows, seed)


# Found by this test: in a batch where every map is empty, maps with keys other than strings
# and values of an extension type (uuid, json) did not decode. Kept as an explicit example
# (seed 2 draws two empty maps), so the case is tried on every run.
EMPTY_MAPS_OF_UUIDS = Schema("ids", (t.Field("ids", t.map_of(t.uuid(), False, t.date()), False),))


@ROUND_TRIPS
@given(with_lists_or_maps, row_counts, seeds)
@example(EMPTY_MAPS_OF_UUIDS, 2, 2)
def test_avro_round_trip_of_lists_and_maps(schema: Schema, rows: int, seed: int) -> None:
    assert_same_rows("avro", schema, rows, seed)


@ROUND_TRIPS
@given(schemas(), row_counts, seeds)
def test_json_round_trip(schema: Schema, rows: int, seed: int) -> None:
    assert_same_rows("json", schema, rows, seed)


BYTES_OR_TEXT = [t.binary(), t.string()]


@st.composite
def raw_batches(draw: st.DrawFn) -> RecordBatch:
    """One binary or text value column, with or without a key column of either kind."""
    value_type = draw(st.sampled_from(BYTES_OR_TEXT))
    schema = Schema(draw(names), (t.Field(draw(names), value_type),))
    rng = random.Random(draw(seeds))
    count = draw(row_counts)
    values = random_batch(schema, count, rng)
    if not draw(st.booleans()):
        return RecordBatch(values=values, schema=schema)
    key_schema = Schema("key", (t.Field("key", draw(st.sampled_from(BYTES_OR_TEXT))),))
    keys = random_batch(key_schema, count, rng)
    return RecordBatch(values=values, schema=schema, keys=keys, key_schema=key_schema)


@ROUND_TRIPS
@given(raw_batches())
def test_raw_carries_the_bytes_of_one_column(batch: RecordBatch) -> None:
    decoded = round_trip("raw", batch)
    assert not decoded.failed
    if batch.num_rows == 0:
        assert decoded.groups == []
        return
    (group,) = decoded.groups
    assert group.rows.to_pylist() == list(range(batch.num_rows))
    assert group.schema == Schema(TOPIC, (t.Field("value", t.binary()),))
    expected = pa.record_batch([batch.values.column(0).cast(pa.binary())], names=["value"])
    assert group.values.equals(expected)
    if batch.keys is None:
        assert group.keys is None or group.keys.column(0).null_count == batch.num_rows
        assert group.tombstones is None, "without keys a null body is a null value"
        return
    key_bytes = batch.keys.column(0).cast(pa.binary())
    assert group.keys is not None
    assert group.keys.equals(pa.record_batch([key_bytes], names=["key"]))
    deletes = _numpy(batch.values.column(0).is_null()) & _numpy(key_bytes.is_valid())
    tombstones = group.tombstones
    found = np.zeros(batch.num_rows, np.bool_) if tombstones is None else _numpy(tombstones)
    assert found.tolist() == deletes.tolist(), "a null body with a key is a delete"


def _raw_can_carry(schema: Schema) -> bool:
    bytes_or_text = [f for f in schema.fields if f.type in BYTES_OR_TEXT]
    return len(schema.fields) == 1 and len(bytes_or_text) == 1


@ROUND_TRIPS
@given(schemas().filter(lambda s: not _raw_can_carry(s)))
def test_raw_refuses_anything_but_one_bytes_or_text_column(schema: Schema) -> None:
    values = random_batch(schema, 3, random.Random(0))
    with pytest.raises(ConfigError, match="format raw needs") as refused:
        make_converter("raw", None).encode(TOPIC, RecordBatch(values=values, schema=schema))
    assert schema.fields[0].name in str(refused.value)


def _numpy(mask: pa.BooleanArray) -> np.ndarray:
    return np.asarray(mask.to_numpy(zero_copy_only=False), dtype=np.bool_)


def _column(values: pa.Array) -> pa.RecordBatch:
    return pa.record_batch([values], names=["c"])


def test_the_comparison_tells_values_apart_and_not_encodings() -> None:
    """``first_difference``, which the round trips rely on: NaN equals NaN but not null nor
    -0.0 0.0, dictionary order and slicing do not matter, nested values and types do."""
    halves = pa.array(np.array([np.nan, -0.0, 1.0], np.float16))
    assert first_difference(_column(halves), _column(halves.take([0, 1, 2]))) is None
    for other in ([np.nan, 0.0, 1.0], [np.nan, -0.0, 2.0]):
        assert first_difference(_column(pa.array(np.array(other, np.float16))), _column(halves))
    with_null = pa.array(np.array([0, -0.0, 1.0], np.float16), mask=np.array([1, 0, 0], bool))
    assert first_difference(_column(with_null), _column(halves)) == (
        "column 'c', row 0: [\n  null\n], expected [\n  nan\n]"
    )
    words = pa.array(["b", "a", None, "b"])
    reordered = pa.DictionaryArray.from_arrays(pa.array([1, 0, None, 1], pa.int32()), ["a", "b"])
    assert first_difference(_column(words.dictionary_encode()), _column(reordered)) is None
    nested = pa.array([[{"x": 1.5}], None, [None, {"x": float("nan")}], []])
    assert first_difference(_column(nested.slice(2)), _column(nested.take([2, 3]))) is None
    changed = pa.array([[{"x": 1.5}], None, [None, {"x": 0.5}], []])
    assert "row 2" in str(first_difference(_column(changed), _column(nested)))
    wider = pa.array([0, 1, 2], pa.int64())
    assert "type int64, expected int32" in str(
        first_difference(_column(wider), _column(wider.cast(pa.int32())))
    )


def loosened(values: pa.RecordBatch, rng: random.Random) -> pa.RecordBatch:
    """``values`` with some flat text columns in the other Arrow types sources give them
    (large strings, dictionaries, as Parquet and CSV readers do); same values."""
    columns = []
    for column in values.columns:
        if column.type == pa.string() and rng.random() < 0.7:
            column = column.cast(
                rng.choice([pa.large_string(), pa.dictionary(pa.int32(), pa.string())])
            )
        columns.append(column)
    return pa.record_batch(columns, names=values.schema.names)


@ROUND_TRIPS
@given(schemas(), row_counts, seeds)
def test_avro_decoded_form_is_what_decoding_the_bodies_gives(
    schema: Schema, rows: int, seed: int
) -> None:
    """What a run's sink takes from its source side instead of decoding
    (``runtime/worker/published_batches.py``) is exactly what decoding would give."""
    rng = random.Random(seed)
    batch = RecordBatch(values=loosened(random_batch(schema, rows, rng), rng), schema=schema)
    with tempfile.TemporaryDirectory() as directory:
        registry = SqliteSchemaRegistry(Path(directory) / "registry.db")
        converter = make_converter("avro", registry)
        encoded = converter.encode(TOPIC, batch)
        assert not encoded.failed
        form = converter.decoded_form(TOPIC, batch)
        decoded = make_converter("avro", registry).decode(TOPIC, encoded.values, encoded.keys)
    assert form is not None, "a batch without deletes has a decoded form"
    if rows == 0:
        return
    (group,) = decoded.groups
    assert form.rows.to_pylist() == group.rows.to_pylist()
    assert form.schema == group.schema
    assert form.values.schema.equals(group.values.schema, check_metadata=True)
    difference = first_difference(form.values, group.values)
    assert difference is None, difference
    assert (form.keys is None) == (group.keys is None)
    if form.keys is not None and group.keys is not None:
        assert form.keys.schema.equals(group.keys.schema)
        assert first_difference(form.keys, group.keys) is None

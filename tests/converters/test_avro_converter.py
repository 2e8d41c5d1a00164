"""The ``avro`` converter with the embedded registry: Confluent wire format end to end."""

from __future__ import annotations

import decimal
import io
from dataclasses import replace
from pathlib import Path

import fastavro
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from omconnect.runtime.converters.avro import AvroConverter, header
from omconnect.runtime.converters.base import Converter
from omconnect.runtime.state.schema_registry import IncompatibleSchemaError, SqliteSchemaRegistry
from omconnect.schemas import types as t
from omconnect.schemas.arrow import to_arrow_schema
from omconnect.schemas.avro import from_avro_schema
from omconnect.schemas.record import RecordBatch
from omconnect.schemas.schema import Schema

ORDERS = Schema(
    "orders",
    (
        t.Field("id", t.int64(), nullable=False),
        t.Field("amount", t.decimal(12, 2)),
        t.Field("customer name", t.string()),
        t.Field("status", t.enum("new", "paid", "shipped")),
    ),
    key_fields=("id",),
)


def orders_batch(schema: Schema = ORDERS, ids=(1, 2, 3)) -> RecordBatch:
    n = len(ids)
    columns = {
        "id": pa.array(ids, pa.int64()),
        "amount": pa.array(
            [decimal.Decimal("10.50"), None, decimal.Decimal("-3.20")][:n], pa.decimal128(12, 2)
        ),
        "customer name": pa.array(["Zoë", "", None][:n]),
        "status": pa.array(["new", "paid", "shipped"][:n]).dictionary_encode(),
    }
    for f in schema.fields[4:]:
        columns[f.name] = pa.array([7] * n, pa.int64())
    values = pa.RecordBatch.from_pydict(columns, schema=to_arrow_schema(schema))
    return RecordBatch(values=values, schema=schema)


@pytest.fixture
def registry(tmp_path: Path) -> SqliteSchemaRegistry:
    return SqliteSchemaRegistry(tmp_path / "registry.db")


def test_roundtrip_with_keys_in_confluent_format(registry) -> None:
    converter = AvroConverter(registry)
    assert isinstance(converter, Converter)
    assert (converter.name, converter.content_type) == ("avro", "application/avro")
    batch = orders_batch()
    encoded = converter.encode("orders", batch)
    assert encoded.failed == {}
    value_id = registry.latest("orders-value")[0]
    key_id = registry.latest("orders-key")[0]
    body = encoded.values[0].as_py()
    assert body[:5] == header(value_id)
    # a plain fastavro reader (what Confluent consumers use) reads the body
    row = fastavro.schemaless_reader(io.BytesIO(body[5:]), registry.get(value_id), None)
    assert row["id"] == 1 and row["amount"] == decimal.Decimal("10.50")
    assert encoded.keys[1].as_py()[:5] == header(key_id)

    decoded = converter.decode("orders", encoded.values, encoded.keys)
    assert decoded.failed == {}
    [group] = decoded.groups
    rows, values, schema, keys = group.rows, group.values, group.schema, group.keys
    assert rows.to_pylist() == [0, 1, 2]
    assert schema == ORDERS
    assert values.to_pylist() == batch.values.to_pylist()
    assert keys.to_pylist() == [{"id": 1}, {"id": 2}, {"id": 3}]


def test_schema_change_mid_topic_decodes_in_groups(registry) -> None:
    converter = AvroConverter(registry)
    first = converter.encode("orders", orders_batch(ids=(1, 2)))
    evolved = ORDERS.with_fields([*ORDERS.fields, t.Field("qty", t.int64())])
    second = converter.encode("orders", orders_batch(evolved, ids=(3,)))
    assert registry.versions("orders-value") == [1, 2]
    values = pa.array(
        [first.values[0].as_py(), second.values[0].as_py(), first.values[1].as_py()], pa.binary()
    )
    decoded = converter.decode("orders", values, None)
    assert [g.rows.to_pylist() for g in decoded.groups] == [[0, 2], [1]]
    assert decoded.groups[1].schema.names[-1] == "qty"
    assert decoded.groups[1].values.column("qty").to_pylist() == [7]
    assert decoded.groups[0].keys is None


def test_bad_bodies_fail_alone(registry) -> None:
    converter = AvroConverter(registry)
    good = converter.encode("orders", orders_batch()).values.to_pylist()
    values = pa.array(
        [
            good[0],
            b"\x01" + good[1][1:],  # wrong magic byte
            header(4242) + good[1][5:],  # unknown schema id
            good[2][:-1],  # truncated
            None,  # no body
            b"\x00\x00",  # too short for a header
            good[2],
        ],
        pa.binary(),
    )
    decoded = converter.decode("orders", values, None)
    assert sorted(decoded.failed) == [1, 2, 3, 4, 5]
    assert "magic" in str(decoded.failed[1])
    assert "4242" in str(decoded.failed[2])
    [group] = decoded.groups
    rows, batch = group.rows, group.values
    assert rows.to_pylist() == [0, 6]
    assert batch.column("id").to_pylist() == [1, 3]


def test_unencodable_rows_get_null_bodies(registry) -> None:
    converter = AvroConverter(registry)
    batch = orders_batch()
    values = batch.values.set_column(0, "id", pa.array([1, None, 3], pa.int64()))
    encoded = converter.encode("orders", RecordBatch(values=values, schema=ORDERS))
    assert list(encoded.failed) == [1]
    assert encoded.values.is_null().to_pylist() == [False, True, False]
    assert encoded.keys.is_null().to_pylist() == [False, True, False]


def test_whole_batch_failure_is_narrowed_to_the_bad_rows(registry) -> None:
    converter = AvroConverter(registry)
    # a column whose Arrow type the vectorised path refuses for this schema
    schema = Schema("m", (t.Field("x", t.string()),))
    values = pa.RecordBatch.from_pydict({"x": pa.array(["a", "b"])})
    wrong = pa.RecordBatch.from_pydict({"x": pa.array([1, 2], pa.int64())})
    assert converter.encode("m", RecordBatch(values=values, schema=schema)).failed == {}
    encoded = converter.encode("m", RecordBatch(values=wrong, schema=schema))
    assert sorted(encoded.failed) == [0, 1]
    assert encoded.values.null_count == 2


def test_incompatible_schema_is_refused(registry) -> None:
    converter = AvroConverter(registry)
    converter.encode("orders", orders_batch())
    changed = ORDERS.with_fields([*ORDERS.fields, t.Field("qty", t.int64(), nullable=False)])
    with pytest.raises(IncompatibleSchemaError, match="qty"):
        converter.encode("orders", orders_batch(changed))


def with_deletes(batch: RecordBatch, deletes: list[bool]) -> RecordBatch:
    """``batch`` with the ``deletes`` rows made tombstones: every value column null (even the
    not-null ones), the key kept in explicit keys."""
    keep = pa.array([not d for d in deletes])
    values = pa.RecordBatch.from_arrays(
        [pc.if_else(keep, c, pa.scalar(None, c.type)) for c in batch.values.columns],
        schema=batch.values.schema,
    )
    return replace(
        batch,
        values=values,
        keys=batch.values.select(["id"]),
        key_schema=ORDERS.key_schema(),
        tombstones=pa.array(deletes),
    )


def test_deletes_are_null_bodies_with_avro_keys_and_decode_as_tombstones(registry) -> None:
    converter = AvroConverter(registry)
    batch = with_deletes(orders_batch(), [False, True, False])
    encoded = converter.encode("orders", batch)
    assert encoded.failed == {}  # the null in the not-null id of row 1 is not a failure
    assert encoded.values.is_null().to_pylist() == [False, True, False]
    key_id = registry.latest("orders-key")[0]
    assert encoded.keys[1].as_py()[:5] == header(key_id)

    decoded = converter.decode("orders", encoded.values, encoded.keys)
    assert decoded.failed == {}
    [group] = decoded.groups
    assert group.rows.to_pylist() == [0, 1, 2]
    assert group.schema == ORDERS
    assert group.tombstones is not None
    assert group.tombstones.to_pylist() == [False, True, False]
    assert group.keys is not None and group.keys.to_pylist() == [{"id": i} for i in (1, 2, 3)]
    rows = group.values.to_pylist()
    assert rows[1] == dict.fromkeys(ORDERS.names)
    assert [rows[0], rows[2]] == [batch.values.to_pylist()[0], batch.values.to_pylist()[2]]


def test_a_delete_joins_its_neighbours_schema(registry) -> None:
    converter = AvroConverter(registry)
    old = converter.encode("orders", orders_batch(ids=(1,)))
    evolved = ORDERS.with_fields([*ORDERS.fields, t.Field("qty", t.int64())])
    new = converter.encode("orders", orders_batch(evolved, ids=(2,)))
    delete = converter.encode("orders", with_deletes(orders_batch(ids=(3,)), [True]))
    values = pa.array([None, old.values[0], delete.values[0], new.values[0], None], pa.binary())
    keys = pa.array(
        [delete.keys[0], old.keys[0], delete.keys[0], new.keys[0], delete.keys[0]], pa.binary()
    )
    decoded = converter.decode("orders", values, keys)
    assert decoded.failed == {}
    # Row 0 has no row before it: it takes the next one's; 2 and 4 the one before them.
    assert [(g.rows.to_pylist(), g.tombstones.to_pylist()) for g in decoded.groups] == [
        ([0, 1, 2], [True, False, True]),
        ([3, 4], [False, True]),
    ]
    assert decoded.groups[1].schema == evolved


def test_deletes_alone_take_the_latest_registered_value_schema(registry) -> None:
    converter = AvroConverter(registry)
    converter.encode("orders", orders_batch(ids=(1,)))
    evolved = ORDERS.with_fields([*ORDERS.fields, t.Field("qty", t.int64())])
    deletes = converter.encode(
        "orders", with_deletes(orders_batch(evolved, ids=(5, 6)), [True] * 2)
    )
    assert deletes.values.null_count == 2
    decoded = converter.decode("orders", deletes.values, deletes.keys)
    [group] = decoded.groups
    assert group.schema == evolved
    assert group.tombstones is not None and group.tombstones.to_pylist() == [True, True]
    assert group.keys is not None and group.keys.to_pylist() == [{"id": 5}, {"id": 6}]


def test_deletes_with_no_value_schema_anywhere_take_the_keys_fields(registry) -> None:
    writer = AvroConverter(registry)
    encoded = writer.encode("orders", with_deletes(orders_batch(ids=(5,)), [True]))
    key_id = registry.latest("orders-key")[0]
    # Another topic with the same key schema and no value schema registered at all.
    decoded = AvroConverter(registry).decode("gone", encoded.values, encoded.keys)
    assert decoded.failed == {}
    [group] = decoded.groups
    assert registry.latest("gone-value") is None and key_id >= 0
    assert group.schema.names == ["id"] and group.schema.key_fields == ("id",)
    assert group.values.to_pylist() == [{"id": None}]
    assert group.keys is not None and group.keys.to_pylist() == [{"id": 5}]


def test_a_null_body_without_a_key_is_a_failure_and_a_keyless_delete_is_refused(
    registry,
) -> None:
    converter = AvroConverter(registry)
    decoded = converter.decode("orders", pa.array([None], pa.binary()), None)
    assert "no key" in str(decoded.failed[0]) and decoded.groups == []
    batch = orders_batch()
    keyless = replace(
        batch, schema=Schema("orders", ORDERS.fields), tombstones=pa.array([False, True, False])
    )
    encoded = converter.encode("orders", keyless)
    assert list(encoded.failed) == [1]
    assert "no key" in str(encoded.failed[1])


def test_explicit_keys_are_confluent_avro_under_the_key_subject(registry) -> None:
    converter = AvroConverter(registry)
    key_schema = Schema(
        "order_key", (t.Field("region", t.string(), False), t.Field("n", t.int32(), False))
    )
    keys = pa.RecordBatch.from_pydict(
        {"region": ["eu", "us", "eu"], "n": pa.array([1, 2, 3], pa.int32())},
        schema=to_arrow_schema(key_schema),
    )
    batch = replace(orders_batch(), keys=keys, key_schema=key_schema)
    encoded = converter.encode("sales", batch)
    assert registry.subjects() == ["sales-key", "sales-value"]
    key_id, _, key_avro = registry.latest("sales-key")
    assert from_avro_schema(key_avro) == key_schema
    assert key_id != registry.latest("sales-value")[0]
    for row, body in enumerate(encoded.keys.to_pylist()):
        assert body[:5] == header(key_id)
        datum = fastavro.schemaless_reader(io.BytesIO(body[5:]), key_avro, None)
        assert datum == keys.to_pylist()[row]
    decoded = converter.decode("sales", encoded.values, encoded.keys)
    assert decoded.groups[0].keys.to_pylist() == keys.to_pylist()

"""The ``avro`` converter with the embedded registry: Confluent wire format end to end."""

from __future__ import annotations

import decimal
import io
from pathlib import Path

import fastavro
import pyarrow as pa
import pytest

from omconnect.runtime.converters.avro import AvroConverter, header
from omconnect.runtime.converters.base import Converter
from omconnect.runtime.registry import IncompatibleSchemaError, SqliteSchemaRegistry
from omconnect.schemas import types as t
from omconnect.schemas.arrow import to_arrow_schema
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
    [(rows, values, schema, keys)] = decoded.groups
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
    assert [g[0].to_pylist() for g in decoded.groups] == [[0, 2], [1]]
    assert decoded.groups[1][2].names[-1] == "qty"
    assert decoded.groups[1][1].column("qty").to_pylist() == [7]
    assert decoded.groups[0][3] is None


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
    [(rows, batch, _, _)] = decoded.groups
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

"""The json converter: exact JSON text for every type, and decoding with failed rows."""

from __future__ import annotations

import base64
import datetime
import decimal
import json
import uuid

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from omconnect.codecs.json_text import json_objects
from omconnect.runtime.converters.json import JsonConverter
from omconnect.schemas.arrow import from_arrow_schema
from omconnect.schemas.record import RecordBatch

TRICKY_TEXT = [
    "plain",
    'a "quoted" word',
    "back\\slash \\n not a newline",
    "controls \x00\x01\x07\x1f and \n\r\t\b\f",
    "ünïcödé ✓ 𝄞 \u2028\u2029",
    "",
    None,
    "</script>",
]


def batch_of(values: pa.RecordBatch, key_fields: tuple[str, ...] = ()) -> RecordBatch:
    return RecordBatch(values, from_arrow_schema(values.schema, name="t", key_fields=key_fields))


def decoded_bodies(encoded: pa.BinaryArray) -> list[dict[str, object]]:
    return [json.loads(body) for body in encoded.to_pylist()]


def test_strings_are_escaped_exactly() -> None:
    values = pa.record_batch({"s": pa.array(TRICKY_TEXT, pa.string())})
    objects = decoded_bodies(json_objects(values))
    assert [o["s"] for o in objects] == TRICKY_TEXT


@settings(max_examples=50, deadline=None)
@given(st.lists(st.one_of(st.none(), st.text()), min_size=1, max_size=30))
def test_any_text_round_trips_through_json_loads(texts: list[str | None]) -> None:
    values = pa.record_batch({"s": pa.array(texts, pa.large_string()), 'odd "name"\n': texts})
    objects = decoded_bodies(json_objects(values))
    assert [o["s"] for o in objects] == texts
    assert [o['odd "name"\n'] for o in objects] == texts


@settings(max_examples=50, deadline=None)
@given(st.lists(st.one_of(st.none(), st.binary(max_size=20)), min_size=1, max_size=30))
def test_bytes_are_base64(blobs: list[bytes | None]) -> None:
    values = pa.record_batch({"b": pa.array(blobs, pa.binary())})
    expected = [None if b is None else base64.b64encode(b).decode() for b in blobs]
    assert [o["b"] for o in decoded_bodies(json_objects(values))] == expected


def test_every_type_has_its_json_form() -> None:
    ident = uuid.UUID("12345678-1234-5678-1234-567812345678")
    paris = datetime.datetime(2024, 1, 2, 4, 4, 5, 123456, tzinfo=datetime.UTC)
    values = pa.record_batch(
        {
            "bool": [True, None],
            "int": pa.array([-(2**63), None], pa.int64()),
            "small": pa.array([7, 8], pa.int8()),
            "float": [0.1, float("nan")],
            "inf": [float("inf"), -1e300],
            "dec": pa.array([decimal.Decimal("12.30"), None], pa.decimal128(12, 2)),
            "day": pa.array([datetime.date(2024, 2, 29), None]),
            "at": pa.array([datetime.time(12, 30, 1), None], pa.time64("us")),
            "ts": pa.array([paris, None], pa.timestamp("us", "Europe/Paris")),
            "local": pa.array([datetime.datetime(2024, 1, 2, 3, 4, 5), None], pa.timestamp("us")),
            "uuid": pa.ExtensionArray.from_storage(
                pa.uuid(), pa.array([ident.bytes, None], pa.binary(16))
            ),
            "doc": pa.ExtensionArray.from_storage(pa.json_(), pa.array(['{"x": [1, 2]}', None])),
            "size": pa.array(["m", "s"]).dictionary_encode(),
            "list": [[1, None], None],
            "struct": [{"a": 1, "b": "x\ny"}, None],
            "map": pa.array([[("k", 1.5)], None], pa.map_(pa.string(), pa.float64())),
        }
    )
    first, second = decoded_bodies(json_objects(values))
    assert first == {
        "bool": True,
        "int": -(2**63),
        "small": 7,
        "float": 0.1,
        "inf": None,
        "dec": "12.30",
        "day": "2024-02-29",
        "at": "12:30:01.000000",
        "ts": "2024-01-02T04:04:05.123456Z",
        "local": "2024-01-02T03:04:05.000000",
        "uuid": str(ident),
        "doc": {"x": [1, 2]},
        "size": "m",
        "list": [1, None],
        "struct": {"a": 1, "b": "x\ny"},
        "map": {"k": 1.5},
    }
    assert second["float"] is None and second["inf"] == -1e300
    assert second["size"] == "s"
    assert all(second[k] is None for k in second if k not in ("small", "float", "inf", "size"))


def test_keys_are_objects_of_the_key_fields() -> None:
    values = pa.record_batch({"id": [1, 2], "region": ["eu", "us"], "v": ["a", "b"]})
    encoded = JsonConverter().encode("t", batch_of(values, key_fields=("id", "region")))
    assert encoded.keys is not None
    assert decoded_bodies(encoded.keys) == [{"id": 1, "region": "eu"}, {"id": 2, "region": "us"}]
    assert not encoded.failed


def test_round_trip_of_a_typical_table() -> None:
    values = pa.record_batch(
        {
            "id": pa.array([1, 2, 3], pa.int64()),
            "name": ["ann", None, 'quote " and \\'],
            "amount": [1.5, None, -2.0],
            "paid": [True, False, None],
            "tags": [["a"], [], None],
            "address": [{"city": "Köln", "zip": "50667"}, None, {"city": None, "zip": "1"}],
        }
    )
    converter = JsonConverter()
    encoded = converter.encode("orders", batch_of(values, key_fields=("id",)))
    decoded = converter.decode("orders", encoded.values, encoded.keys)
    assert decoded.failed == {}
    [group] = decoded.groups
    rows, batch, schema, keys = group.rows, group.values, group.schema, group.keys
    assert rows.to_pylist() == [0, 1, 2]
    assert batch.to_pylist() == values.to_pylist()
    assert schema.name == "orders"
    assert schema.names == values.schema.names
    assert keys is not None and keys.to_pylist() == [{"id": 1}, {"id": 2}, {"id": 3}]


def test_bad_bodies_are_failed_rows_and_the_rest_decode() -> None:
    bodies = pa.array(
        [
            b'{"a": 1}',
            b"{bad",
            None,
            b'{"a": 2}',
            b"[1, 2]",
            b'{"a": 3}{"a": 4}',
            b'{\n "a": 5\n}',
            b"",
        ],
        pa.binary(),
    )
    decoded = JsonConverter().decode("t", bodies, None)
    assert sorted(decoded.failed) == [1, 2, 4, 5, 7]
    assert all(isinstance(e, ValueError) for e in decoded.failed.values())
    [group] = decoded.groups
    rows, batch, keys = group.rows, group.values, group.keys
    assert rows.to_pylist() == [0, 3, 6]
    assert batch.column("a").to_pylist() == [1, 2, 5]
    assert keys is None


def test_bodies_that_disagree_in_type_form_groups() -> None:
    bodies = pa.array([b'{"a": 1}', b'{"a": "x"}', b'{"a": 2}'])
    decoded = JsonConverter().decode("t", bodies, None)
    assert decoded.failed == {}
    assert [(g.rows.to_pylist(), g.values.to_pylist()) for g in decoded.groups] == [
        ([0, 2], [{"a": 1}, {"a": 2}]),
        ([1], [{"a": "x"}]),
    ]


def test_all_null_fields_decode_as_strings() -> None:
    decoded = JsonConverter().decode("t", pa.array([b'{"a": null, "b": 1}']), None)
    [group] = decoded.groups
    batch, schema = group.values, group.schema
    assert batch.schema.field("a").type == pa.string()
    assert str(schema.type_of("a")) == "string"


def test_a_large_body_decodes() -> None:
    big = json.dumps({"s": "x" * 3_000_000}).encode()
    decoded = JsonConverter().decode("t", pa.array([big, b'{"s": "y"}']), None)
    assert decoded.failed == {}
    assert decoded.groups[0].values.column("s").to_pylist()[1] == "y"


@pytest.mark.parametrize("rows", [0, 1])
def test_empty_and_single_row_batches(rows: int) -> None:
    values = pa.record_batch({"a": pa.array(list(range(rows)), pa.int64())})
    converter = JsonConverter()
    encoded = converter.encode("t", batch_of(values))
    assert len(encoded.values) == rows
    decoded = converter.decode("t", encoded.values, None)
    assert sum(len(g.rows) for g in decoded.groups) == rows


def test_deletes_are_null_bodies_with_keys_and_decode_as_tombstones() -> None:
    values = pa.record_batch(
        {"id": pa.array([1, 2, 3], pa.int64()), "name": ["a", None, "c"]},
        schema=pa.schema([pa.field("id", pa.int64(), nullable=False), ("name", pa.string())]),
    )
    batch = RecordBatch(
        values.set_column(0, "id", pa.array([1, None, 3], pa.int64())),
        from_arrow_schema(values.schema, name="t"),
        keys=pa.record_batch({"id": pa.array([1, 2, 3], pa.int64())}),
        tombstones=pa.array([False, True, False]),
    )
    converter = JsonConverter()
    encoded = converter.encode("t", batch)
    assert encoded.failed == {}
    assert encoded.values.to_pylist()[1] is None
    assert encoded.keys is not None and encoded.keys.to_pylist()[1] == b'{"id":2}'
    decoded = converter.decode("t", encoded.values, encoded.keys)
    assert decoded.failed == {}  # a null body is a delete, not a failure
    [group] = decoded.groups
    assert group.rows.to_pylist() == [0, 1, 2]
    assert group.tombstones is not None and group.tombstones.to_pylist() == [False, True, False]
    assert group.values.to_pylist() == [
        {"id": 1, "name": "a"},
        {"id": None, "name": None},
        {"id": 3, "name": "c"},
    ]
    assert group.keys is not None and group.keys.to_pylist() == [{"id": i} for i in (1, 2, 3)]


def test_a_delete_joins_the_group_of_the_row_before_it_else_after_it() -> None:
    bodies = pa.array([None, b'{"a": 1}', None, b'{"a": "x"}', None], pa.binary())
    keys = pa.array([b'{"k": 0}', b'{"k": 1}', b'{"k": 2}', b'{"k": 3}', b'{"k": 4}'])
    decoded = JsonConverter().decode("t", bodies, keys)
    assert decoded.failed == {}
    assert [(g.rows.to_pylist(), g.tombstones.to_pylist()) for g in decoded.groups] == [
        ([0, 1, 2], [True, False, True]),
        ([3, 4], [False, True]),
    ]
    assert decoded.groups[1].values.to_pylist() == [{"a": "x"}, {"a": None}]


def test_deletes_alone_take_the_keys_fields_and_keyless_null_bodies_fail() -> None:
    bodies = pa.array([None, None, None], pa.binary())
    keys = pa.array([b'{"id": 7, "region": "eu"}', None, b'{"id": 8, "region": "us"}'])
    decoded = JsonConverter().decode("orders", bodies, keys)
    assert list(decoded.failed) == [1] and "no key" in str(decoded.failed[1])
    [group] = decoded.groups
    assert group.rows.to_pylist() == [0, 2]
    assert group.schema.name == "orders"
    assert group.schema.names == ["id", "region"]
    assert group.schema.key_fields == ("id", "region")
    assert group.values.to_pylist() == [{"id": None, "region": None}] * 2
    assert group.keys is not None and group.keys.column("id").to_pylist() == [7, 8]
    assert group.tombstones is not None and group.tombstones.to_pylist() == [True, True]


def test_a_delete_without_a_key_is_refused_when_encoding() -> None:
    values = pa.record_batch({"id": pa.array([1, 2], pa.int64())})
    batch = RecordBatch(
        values, from_arrow_schema(values.schema, name="t"), tombstones=pa.array([True, False])
    )
    encoded = JsonConverter().encode("t", batch)
    assert list(encoded.failed) == [0] and "no key" in str(encoded.failed[0])

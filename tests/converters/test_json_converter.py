"""The json converter: exact JSON text for every type, decoding with failed rows, and
type-exact decoding with the schemas registered in a real embedded registry."""

from __future__ import annotations

import base64
import datetime
import decimal
import json
import uuid
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from omconnect.codecs.json_text import json_objects
from omconnect.runtime.converters import make_converter
from omconnect.runtime.converters.json import JsonConverter
from omconnect.runtime.state.schema_registry import IncompatibleSchemaError, SqliteSchemaRegistry
from omconnect.schemas import types as t
from omconnect.schemas.arrow import from_arrow_schema, rows_to_arrow, to_arrow_schema
from omconnect.schemas.record import RecordBatch
from omconnect.schemas.schema import Schema
from omconnect.schemas.types import Field
from tests.support.schema_strategies import first_difference

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
        "inf": "Infinity",
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
    assert second["float"] == "NaN" and second["inf"] == -1e300
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


# Every omconnect type, nested where JSON makes it hard: lists of structs of lists, maps with
# keys that are not strings, JSON documents inside lists inside maps.
EVERY_TYPE = Schema(
    "every",
    (
        Field("id", t.int64(), nullable=False),
        Field("flag", t.boolean()),
        Field("i8", t.int8()),
        Field("i16", t.int16()),
        Field("i32", t.int32()),
        Field("u8", t.uint8()),
        Field("u16", t.uint16()),
        Field("u32", t.uint32()),
        Field("u64", t.uint64()),
        Field("f16", t.float16()),
        Field("f32", t.float32()),
        Field("f64", t.float64()),
        Field("text", t.string()),
        Field("blob", t.binary()),
        Field("day", t.date()),
        Field("at", t.time()),
        Field("at_ns", t.time_ns()),
        Field("nothing", t.null()),
        Field("ident", t.uuid()),
        Field("doc", t.json()),
        Field("amount", t.decimal(38, 10)),
        Field("huge", t.decimal(76, 0)),
        Field("ts", t.timestamp("Europe/Paris")),
        Field("ts_local", t.timestamp(None)),
        Field("ts_ns", t.timestamp("UTC", "ns")),
        Field("ts_ns_local", t.timestamp(None, "ns")),
        Field("size", t.enum("s", "m", "l")),
        Field(
            "lines",
            t.array(
                t.struct(
                    Field("sku", t.string(), nullable=False),
                    Field("qty", t.uint32()),
                    Field("tags", t.array(t.string(), items_nullable=False)),
                    Field("at", t.timestamp("UTC", "ns")),
                )
            ),
        ),
        Field("by_id", t.map_of(t.float64(), keys=t.int64())),
        Field("labels", t.map_of(t.string())),
        Field("calendar", t.map_of(t.array(t.json()), keys=t.date())),
    ),
    key_fields=("id", "u64"),
)
WHEN = datetime.datetime(2024, 1, 2, 3, 4, 5, 678901, tzinfo=datetime.UTC)
EVERY_TYPE_ROWS = [
    {
        "id": 1,
        "flag": True,
        "i8": -128,
        "i16": 32767,
        "i32": -(2**31),
        "u8": 255,
        "u16": 65535,
        "u32": 2**32 - 1,
        "u64": 2**64 - 1,
        "f16": 65504.0,
        "f32": 0.10000000149011612,  # the float32 nearest 0.1
        "f64": 1 / 3,
        "text": 'quote " backslash \\ newline \n ünï ✓ 𝄞 } ] ,',
        "blob": b"\x00\xff\x10 {",
        "day": datetime.date(2024, 2, 29),
        "at": datetime.time(23, 59, 59, 999999),
        "at_ns": 86_400 * 10**9 - 1,
        "ident": uuid.UUID("12345678-1234-5678-1234-567812345678").bytes,
        "doc": '{"x": [1, 2], "y": "} not the end"}',
        "amount": decimal.Decimal("1234567890123456789012345678.0123456789"),
        "huge": decimal.Decimal("9" * 76),
        "ts": WHEN,
        "ts_local": WHEN.replace(tzinfo=None),
        "ts_ns": -(2**63) + 1,
        "ts_ns_local": 2**63 - 1,
        "lines": [
            {"sku": "a", "qty": 2**32 - 1, "tags": ["x", "y"], "at": 1},
            None,
            {"sku": "b", "qty": None, "tags": [], "at": None},
        ],
        "by_id": [(1, 1.5), (-(2**63), None), (7, -0.0)],
        "labels": {"k": "v", "": None, 'quote"': "}"},
        "calendar": [(datetime.date(2024, 1, 1), ['"s"', "1", None, '{"a": {}}'])],
    },
    {"id": 2},
    {
        "id": 3,
        "text": "",
        "blob": b"",
        "doc": "[]",
        "huge": decimal.Decimal("-1"),
        "lines": [],
        "by_id": [],
        "labels": {},
        "calendar": [(datetime.date(1, 1, 1), []), (datetime.date(9999, 12, 31), None)],
    },
]


def every_type_batch() -> pa.RecordBatch:
    """Three rows of ``EVERY_TYPE``; the enum column holds every symbol in its dictionary, as
    a decoder that knows the symbols gives it."""
    rows = [{f.name: row.get(f.name) for f in EVERY_TYPE.fields} for row in EVERY_TYPE_ROWS]
    batch = rows_to_arrow(rows, EVERY_TYPE)
    symbols = pa.array(["s", "m", "l"])
    sizes = pa.DictionaryArray.from_arrays(pa.array([1, None, 2], pa.int32()), symbols)
    return batch.set_column(batch.schema.get_field_index("size"), batch.schema.field("size"), sizes)


@pytest.fixture
def registry(tmp_path: Path) -> SqliteSchemaRegistry:
    return SqliteSchemaRegistry(tmp_path / "registry.db")


def test_every_type_comes_back_exactly_with_the_registered_schema(registry) -> None:
    values = every_type_batch()
    batch = RecordBatch(values=values, schema=EVERY_TYPE)
    encoded = make_converter("json", registry).encode("every", batch)
    assert encoded.failed == {}
    # The bodies stay plain JSON, byte for byte what a converter without a registry writes.
    assert encoded.values.equals(JsonConverter().encode("every", batch).values)
    assert [json.loads(body)["id"] for body in encoded.values.to_pylist()] == [1, 2, 3]
    assert registry.versions("every-value") == [1]

    # A sink in another process shares nothing with the writer but the registry.
    decoded = make_converter("json", registry).decode("every", encoded.values, encoded.keys)
    assert decoded.failed == {}
    [group] = decoded.groups
    assert group.rows.to_pylist() == [0, 1, 2]
    assert group.schema == EVERY_TYPE
    assert group.values.schema.equals(values.schema, check_metadata=True)
    assert group.values.equals(values, check_metadata=True)
    assert group.keys is not None
    assert group.keys.equals(values.select(["id", "u64"]))


def test_without_a_registry_the_same_bodies_decode_by_inference() -> None:
    converter = JsonConverter()
    batch = RecordBatch(values=every_type_batch(), schema=EVERY_TYPE)
    encoded = converter.encode("every", batch)
    decoded = converter.decode("every", encoded.values, encoded.keys)
    # Inference cannot hold a list of JSON documents of several shapes at all ...
    assert list(decoded.failed) == [0]
    assert "changed from string to number" in str(decoded.failed[0])
    # ... and reads other values as the types their JSON looks like.
    typed = every_type_batch().select(["u8", "amount", "blob", "ts_ns"]).slice(0, 1)
    schema = from_arrow_schema(typed.schema.remove_metadata(), "typed")
    encoded = converter.encode("typed", RecordBatch(values=typed, schema=schema))
    [group] = converter.decode("typed", encoded.values, None).groups
    assert group.values.schema.types == [pa.int64(), pa.string(), pa.string(), pa.string()]


NAN, INF = float("nan"), float("inf")
FLOATS = Schema(
    "floats",
    (
        Field("f16", t.float16()),
        Field("f32", t.float32()),
        Field("f64", t.float64()),
        Field("doubles", t.array(t.float64())),
        Field("halves", t.map_of(t.float16())),
    ),
)
FLOAT_ROWS = [
    {
        "f16": NAN,
        "f32": INF,
        "f64": -INF,
        "doubles": [NAN, -0.0, INF],
        "halves": {"a": NAN, "b": -INF},
    },
    {"f16": -0.0, "f32": NAN, "f64": 1 / 3, "doubles": [], "halves": {}},
    {"f16": INF, "f32": -0.0, "f64": NAN},
    {
        "f16": -INF,
        "f32": -INF,
        "f64": -0.0,
        "doubles": [-INF, None, 1.5],
        "halves": {"c": INF, "d": -0.0, "e": None, "f": 0.5},
    },
    {},
]


def assert_same_floats(got: pa.Array, expected: pa.Array) -> None:
    """The same nulls, NaN where NaN was, and the same other values, signed zeros apart."""
    assert got.is_null().equals(expected.is_null())
    assert pc.is_nan(got).equals(pc.is_nan(expected))
    have, want = (
        np.asarray(a.fill_null(0).to_numpy(zero_copy_only=False)) for a in (got, expected)
    )
    assert np.array_equal(have, want, equal_nan=True)
    assert np.array_equal(np.signbit(have), np.signbit(want))


def test_nan_and_infinities_are_strings_that_come_back_as_the_floats(registry) -> None:
    values = rows_to_arrow(FLOAT_ROWS, FLOATS)
    encoded = JsonConverter(registry).encode("floats", RecordBatch(values=values, schema=FLOATS))
    assert encoded.values[0].as_py() == (
        b'{"f16":"NaN","f32":"Infinity","f64":"-Infinity","doubles":["NaN",-0,"Infinity"],'
        b'"halves":{"a":"NaN","b":"-Infinity"}}'
    )
    decoded = JsonConverter(registry).decode("floats", encoded.values, None)
    assert decoded.failed == {}
    [group] = decoded.groups
    assert group.schema == FLOATS
    assert group.values.schema.equals(values.schema, check_metadata=True)
    for name in ("f16", "f32", "f64"):
        assert_same_floats(group.values.column(name), values.column(name))
    assert group.values.column("doubles").offsets.equals(values.column("doubles").offsets)
    assert_same_floats(group.values.column("doubles").values, values.column("doubles").values)
    assert group.values.column("halves").keys.equals(values.column("halves").keys)
    assert_same_floats(group.values.column("halves").items, values.column("halves").items)
    assert first_difference(group.values, values) is None


def test_a_nan_among_many_numbers_is_read_with_them(registry) -> None:
    schema = Schema("t", (Field("id", t.int32()), Field("x", t.float32()), Field("s", t.string())))
    rows = [{"id": i, "x": i / 7, "s": "NaN" if i == 3 else "x"} for i in range(2000)]
    rows[1500]["x"] = NAN
    values = rows_to_arrow(rows, schema)
    converter = JsonConverter(registry)
    encoded = converter.encode("t", RecordBatch(values=values, schema=schema))
    bodies = encoded.values.to_pylist()
    # Neither a number nor what NaN is written as: the body fails as any misfit does ...
    bodies[700] = b'{"id":700,"x":"nan","s":"x"}'
    # ... and so does a number in quotes, also in a body read with its floats from text.
    bodies[701] = b'{"id":701,"x":"1.5","s":"NaN"}'
    decoded = converter.decode("t", pa.array(bodies), None)
    assert list(decoded.failed) == [700, 701]
    assert "changed from number to string" in str(decoded.failed[700])
    assert str(decoded.failed[701]) == 'x: "\\"1.5\\"" is not a number'
    [group] = decoded.groups
    assert len(group.rows) == 1998
    expected = values.take(group.rows)
    assert_same_floats(group.values.column("x"), expected.column("x"))
    assert group.values.drop_columns(["x"]).equals(expected.drop_columns(["x"]))


def test_a_foreign_producers_bodies_decode_by_inference(registry) -> None:
    converter = JsonConverter(registry)
    converter.encode("every", RecordBatch(values=every_type_batch(), schema=EVERY_TYPE))
    foreign = pa.array([b'{"id": 1, "note": "from elsewhere"}', b'{"id": 2, "note": null}'])
    # A topic with a registered schema whose fields do not hold the bodies' ...
    [group] = converter.decode("every", foreign, None).groups
    assert group.values.to_pylist() == [
        {"id": 1, "note": "from elsewhere"},
        {"id": 2, "note": None},
    ]
    assert group.schema == from_arrow_schema(group.values.schema, name="every")
    # ... and a topic with none.
    [group] = converter.decode("elsewhere", foreign, None).groups
    assert group.values.schema.names == ["id", "note"]
    assert group.values.schema.field("id").type == pa.int64()


def test_a_text_that_does_not_convert_fails_its_row_alone(registry) -> None:
    converter = JsonConverter(registry)
    encoded = converter.encode("every", RecordBatch(values=every_type_batch(), schema=EVERY_TYPE))
    good = json.loads(encoded.values[0].as_py())
    broken = {
        "amount": "12.3x",
        "blob": "not base64!",
        "ident": "12345678-1234-5678-1234-56781234567",
        "u64": -1,
        "size": "xl",
        "day": "2024-02-30",
        "ts_ns": "2024-01-02T03:04:05.123456789012",
        "by_id": {"one": 1.5},
        "lines": [{"sku": "a", "qty": 2**32}],
    }
    bodies = [json.dumps(good)] + [json.dumps({**good, name: bad}) for name, bad in broken.items()]
    bodies.append(json.dumps(good, indent=2))  # pretty-printed by some other tool: still good
    decoded = converter.decode("every", pa.array([b.encode() for b in bodies]), None)
    assert sorted(decoded.failed) == list(range(1, len(broken) + 1))
    reasons = dict(
        zip(broken, [str(decoded.failed[row]) for row in sorted(decoded.failed)], strict=True)
    )
    assert "12.3x" in reasons["amount"]
    assert reasons["blob"] == 'blob: "not base64!" is not base64'
    assert reasons["size"] == 'size: "xl" is not one of the symbols'
    assert reasons["by_id"].startswith("by_id key: ")
    [group] = decoded.groups
    assert group.rows.to_pylist() == [0, len(bodies) - 1]
    first = every_type_batch().slice(0, 1)
    assert group.values.slice(0, 1).equals(first)
    # The pretty-printed body's values are the same; its JSON documents keep the text they
    # came with (indented now).
    pretty, documents = group.values.slice(1), ["doc", "calendar"]
    assert pretty.drop_columns(documents).equals(first.drop_columns(documents))
    assert json.loads(pretty.column("doc")[0].as_py()) == json.loads(first.column("doc")[0].as_py())


def test_bodies_take_the_newest_registered_schema_that_holds_their_fields(registry) -> None:
    older = Schema("t", (Field("a", t.uint8()), Field("b", t.decimal(5, 2))))
    newer = Schema("t", (Field("a", t.uint8()), Field("c", t.date())))
    converter = JsonConverter(registry)
    for schema, row in ((older, {"a": 1, "b": decimal.Decimal("1.50")}), (newer, {"a": 2})):
        converter.encode("t", RecordBatch(values=rows_to_arrow([row], schema), schema=schema))
    assert registry.versions("t-value") == [1, 2]
    bodies = pa.array([b'{"a":3,"c":"2024-01-31"}', b'{"a":4,"b":"2.25"}', b'{"a":5}', b'{"z":1}'])
    decoded = JsonConverter(registry).decode("t", bodies, None)
    assert decoded.failed == {}
    by_rows = {tuple(g.rows.to_pylist()): g for g in decoded.groups}
    assert set(by_rows) == {(0, 2), (1,), (3,)}
    assert by_rows[(0, 2)].schema == newer
    assert by_rows[(0, 2)].values.to_pylist() == [
        {"a": 3, "c": datetime.date(2024, 1, 31)},
        {"a": 5, "c": None},
    ]
    assert by_rows[(1,)].schema == older
    assert by_rows[(1,)].values.column("b").to_pylist() == [decimal.Decimal("2.25")]
    assert by_rows[(3,)].values.schema.field("z").type == pa.int64()


def test_a_poll_of_bodies_of_several_schemas_reads_each_body_as_its_own(registry) -> None:
    """After a field was dropped one poll holds bodies of both versions: each body is read as
    the newest version that holds its fields, also the bodies inference cannot read (a list
    of mixed JSON values, NaN among numbers); only a foreign body is read by inference."""
    older = Schema("t", (Field("id", t.uint64()), Field("doc", t.json()), Field("x", t.float64())))
    newer = Schema("t", (Field("id", t.uint64()), Field("x", t.float64())))
    old_values = rows_to_arrow(
        [{"id": 2**64 - 1, "doc": '[1, "a"]', "x": NAN}, {"id": 1, "doc": '{"k": 1}', "x": 0.5}],
        older,
    )
    new_values = rows_to_arrow([{"id": 2, "x": INF}, {"id": 3, "x": 2.5}], newer)
    writer = JsonConverter(registry)
    old_bodies = writer.encode("t", RecordBatch(values=old_values, schema=older)).values
    new_bodies = writer.encode("t", RecordBatch(values=new_values, schema=newer)).values
    assert registry.versions("t-value") == [1, 2]
    bodies = pa.array(
        [old_bodies[0], new_bodies[0], old_bodies[1], b'{"id": ', new_bodies[1], b'{"z": 1}'],
        pa.binary(),
    )
    decoded = JsonConverter(registry).decode("t", bodies, None)
    assert list(decoded.failed) == [3]
    assert str(decoded.failed[3]).startswith("the body: JSON parse error")
    by_rows = {tuple(g.rows.to_pylist()): g for g in decoded.groups}
    assert set(by_rows) == {(0, 2), (1, 4), (5,)}
    assert by_rows[(0, 2)].schema == older
    assert first_difference(by_rows[(0, 2)].values, old_values) is None
    assert by_rows[(1, 4)].schema == newer
    assert first_difference(by_rows[(1, 4)].values, new_values) is None
    assert by_rows[(5,)].values.to_pylist() == [{"z": 1}]


def test_a_body_the_latest_schema_cannot_parse_still_finds_its_own(registry) -> None:
    registry.set_compatibility("NONE", "t-value")
    older = Schema("t", (Field("id", t.int64()), Field("x", t.string()), Field("n", t.int8())))
    newer = Schema("t", (Field("id", t.int64()), Field("x", t.int64())))
    writer = JsonConverter(registry)
    for schema, row in ((older, {"id": 1, "x": "a", "n": 3}), (newer, {"id": 2, "x": 5})):
        writer.encode("t", RecordBatch(values=rows_to_arrow([row], schema), schema=schema))
    # The first body's "x" is no int64, so the read with the latest schema refuses it whole.
    bodies = pa.array([b'{"id":1,"x":"a","n":3}', b'{"id":2,"x":5}'])
    decoded = JsonConverter(registry).decode("t", bodies, None)
    assert decoded.failed == {}
    assert [(g.rows.to_pylist(), g.schema) for g in decoded.groups] == [([0], older), ([1], newer)]
    assert decoded.groups[0].values.to_pylist() == [{"id": 1, "x": "a", "n": 3}]


def test_deletes_with_no_neighbour_take_the_latest_registered_schema(registry) -> None:
    schema = Schema(
        "t", (Field("id", t.uint64(), nullable=False), Field("v", t.string())), key_fields=("id",)
    )
    converter = JsonConverter(registry)
    values = rows_to_arrow([{"id": 2**64 - 1, "v": "x"}], schema)
    encoded = converter.encode("t", RecordBatch(values=values, schema=schema))
    decoded = converter.decode("t", pa.nulls(1, pa.binary()), encoded.keys)
    [group] = decoded.groups
    assert group.schema == schema
    assert group.tombstones is not None and group.tombstones.to_pylist() == [True]
    assert group.keys is not None and group.keys.equals(values.select(["id"]))
    assert group.values.schema.equals(to_arrow_schema(schema), check_metadata=True)


def test_a_schema_the_subject_refuses_stops_the_encoding(registry) -> None:
    schema = Schema("t", (Field("id", t.int64()),))
    converter = JsonConverter(registry)
    converter.encode("t", RecordBatch(values=rows_to_arrow([{"id": 1}], schema), schema=schema))
    changed = Schema("t", (Field("id", t.int64()), Field("qty", t.int64(), nullable=False)))
    values = rows_to_arrow([{"id": 1, "qty": 2}], changed)
    with pytest.raises(IncompatibleSchemaError, match="qty"):
        converter.encode("t", RecordBatch(values=values, schema=changed))


def test_inferred_groups_of_one_registered_schema_are_one_group(registry) -> None:
    schema = Schema("t", (Field("doc", t.json()), Field("n", t.int8())))
    converter = JsonConverter(registry)
    docs = ['{"a": 1}', "[1, 2]", '"text"', '{"a": "one"}']
    values = rows_to_arrow([{"doc": d, "n": i} for i, d in enumerate(docs)], schema)
    encoded = converter.encode("t", RecordBatch(values=values, schema=schema))
    extra = pc.binary_join_element_wise(
        pc.binary_slice(encoded.values, 0, -1), pa.scalar(b',"x":1}'), b""
    )
    # Unknown field "x": the bodies are parsed by inference, which splits them by the shape
    # of "doc"; no registered schema holds "x", so they stay as inferred ...
    inferred = converter.decode("t", extra, None)
    assert len(inferred.groups) > 1 and inferred.failed == {}
    # ... while the bodies as written read as the one registered schema.
    [group] = converter.decode("t", encoded.values, None).groups
    assert group.values.equals(values)


def test_deletes_among_rows_of_every_type(registry) -> None:
    values = every_type_batch()
    batch = RecordBatch(values=values, schema=EVERY_TYPE, tombstones=pa.array([False, True, False]))
    converter = JsonConverter(registry)
    encoded = converter.encode("every", batch)
    assert encoded.values[1].as_py() is None
    [group] = converter.decode("every", encoded.values, encoded.keys).groups
    assert group.tombstones is not None and group.tombstones.to_pylist() == [False, True, False]
    assert group.values.take([0, 2]).equals(values.take([0, 2]))
    assert all(column[1].as_py() is None for column in group.values.columns)
    assert group.keys is not None and group.keys.equals(values.select(["id", "u64"]))


def test_every_body_is_labelled_application_json_and_deletes_are_not() -> None:
    """The label the drivers carry as their broker's content type: a first ``content-type``
    header on each row with a body; a delete (no body) has no headers at all."""
    values = pa.record_batch({"id": pa.array([1, 2, 3], pa.int64())})
    schema = from_arrow_schema(values.schema, name="t", key_fields=("id",))
    converter = JsonConverter()
    plain = converter.encode("t", RecordBatch(values, schema))
    assert converter.content_type == "application/json"
    assert plain.headers is not None
    assert plain.headers.to_pylist() == [[("content-type", b"application/json")]] * 3
    deletes = converter.encode(
        "t", RecordBatch(values, schema, tombstones=pa.array([False, True, False]))
    )
    assert deletes.values.to_pylist()[1] is None
    assert deletes.headers is not None
    assert deletes.headers.to_pylist() == [
        [("content-type", b"application/json")],
        None,
        [("content-type", b"application/json")],
    ]

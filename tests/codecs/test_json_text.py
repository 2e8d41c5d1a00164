"""Arrow columns as JSON text and back: one value mapping at every depth, for objects and
lines, the typed reading of that text (``json_values``) and the scan that finds the values
in it (``json_scan``)."""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import json
import random
import uuid

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from omconnect.codecs.json_scan import object_keys
from omconnect.codecs.json_text import (
    Decimals,
    base64_bytes,
    json_lines,
    json_objects,
    json_texts,
)
from omconnect.codecs.json_values import json_records, json_values
from omconnect.schemas import types as t
from omconnect.schemas.arrow import rows_to_arrow, to_arrow_field, to_arrow_schema
from omconnect.schemas.schema import Schema
from tests.support.schema_strategies import data_types, first_difference, random_batch

WHEN = dt.datetime(2024, 1, 31, 12, 30, tzinfo=dt.UTC)


def texts(column: pa.Array, decimals: Decimals = "string") -> list[str]:
    return json_texts(column, decimals).to_pylist()


@pytest.mark.parametrize(
    ("column", "expected"),
    [
        (pa.array([WHEN], pa.timestamp("us", "Europe/Paris")), '"2024-01-31T12:30:00.000000Z"'),
        (pa.array([WHEN.replace(tzinfo=None)], pa.timestamp("ms")), '"2024-01-31T12:30:00.000"'),
        (pa.array([decimal.Decimal("1.20")], pa.decimal128(5, 2)), '"1.20"'),
        (pa.array([b"ab"]), '"YWI="'),
        (pa.array(['é\x01"\\']), '"é\\u0001\\"\\\\"'),
        (pa.array([float("nan")]), '"NaN"'),
        (pa.array([float("-inf")], pa.float32()), '"-Infinity"'),
        (pa.array(np.array([np.inf], np.float16)), '"Infinity"'),
        (pa.array([-0.0]), "-0"),
        (pa.array([True]), "true"),
        (pa.array([2**64 - 1], pa.uint64()), "18446744073709551615"),
    ],
)
def test_nested_values_are_written_as_top_level_ones(column: pa.Array, expected: str) -> None:
    assert texts(column) == [expected]
    as_list = pa.ListArray.from_arrays(pa.array([0, 1], pa.int32()), column)
    assert texts(as_list) == [f"[{expected}]"]
    as_struct = pa.StructArray.from_arrays([column], names=["v"])
    assert texts(as_struct) == [f'{{"v":{expected}}}']
    as_map = pa.MapArray.from_arrays(pa.array([0, 1], pa.int32()), pa.array(["k"]), column)
    assert texts(as_map) == [f'{{"k":{expected}}}']


def test_decimals_as_numbers() -> None:
    column = pa.array([decimal.Decimal("-3.00"), None], pa.decimal128(5, 2))
    assert texts(column, decimals="number") == ["-3.00", "null"]
    nested = pa.array([[decimal.Decimal("1.20")]], pa.list_(pa.decimal128(5, 2)))
    assert texts(nested, decimals="number") == ["[1.20]"]


def test_maps_lists_and_structs_with_nulls_empties_and_slices() -> None:
    maps = pa.array(
        [[("a", 1)], None, [], [('q"', None), ("b", 2)]], pa.map_(pa.string(), pa.int64())
    )
    keyed = pa.array([[(1, "x")], [], None, [(2, "y")]], pa.map_(pa.int64(), pa.string()))
    lists = pa.array([[1, None], None, [], [3]], pa.list_(pa.int64()))
    structs = pa.array([{"x": [1]}, None, {"x": None}, {"x": []}])
    batch = pa.record_batch({"m": maps, "k": keyed, "l": lists, "s": structs})
    rows = [json.loads(o) for o in json_objects(batch).to_pylist()]
    assert rows == [
        {"m": {"a": 1}, "k": {"1": "x"}, "l": [1, None], "s": {"x": [1]}},
        {"m": None, "k": {}, "l": None, "s": None},
        {"m": {}, "k": None, "l": [], "s": {"x": None}},
        {"m": {'q"': None, "b": 2}, "k": {"2": "y"}, "l": [3], "s": {"x": []}},
    ]
    sliced = [json.loads(o) for o in json_objects(batch.slice(1, 2)).to_pylist()]
    assert sliced == rows[1:3]


def test_uuids_json_and_non_ascii_names() -> None:
    value = uuid.uuid4()
    batch = pa.record_batch(
        {
            "é": pa.ExtensionArray.from_storage(pa.uuid(), pa.array([value.bytes], pa.binary(16))),
            "j": pa.ExtensionArray.from_storage(pa.json_(), pa.array(['{"a": [1]}'])),
        }
    )
    assert json_objects(batch).to_pylist() == [f'{{"é":"{value}","j":{{"a": [1]}}}}'.encode()]


def test_lines_end_every_row_and_agree_with_objects() -> None:
    batch = pa.record_batch({"x": pa.array(range(6)), "s": pa.array(list("abcdef"))})
    part = batch.slice(2, 3)
    lines = json_lines(part).to_pybytes()
    assert lines == b"".join(o + b"\n" for o in json_objects(part).to_pylist())
    assert lines.count(b"\n") == 3
    assert json_lines(batch.slice(0, 0)).to_pybytes() == b""


def test_batches_without_columns() -> None:
    empty = pa.record_batch({"x": pa.array([1, 2])}).select([])
    assert json_objects(empty).to_pylist() == [b"{}", b"{}"]
    assert json_lines(empty).to_pybytes() == b"{}\n{}\n"


def json_strings(texts: pa.Array) -> pa.Array:
    """JSON string texts (and ``null``) as the strings they hold."""
    return pa.array([json.loads(text) for text in texts.to_pylist()], pa.string())


@settings(max_examples=50, deadline=None)
@given(st.lists(st.one_of(st.none(), st.binary(max_size=40)), max_size=30))
def test_base64_reads_back_what_is_written(blobs: list[bytes | None]) -> None:
    column = pa.array(blobs, pa.binary())
    decoded, invalid = base64_bytes(json_strings(json_texts(column)))
    assert decoded.to_pylist() == blobs
    assert not invalid.any()


def test_base64_refuses_what_is_not_padded_base64() -> None:
    texts = pa.array(["QQ==", "QQ=", "Q=Q=", "QUJD", "Q*JD", None, "", "QUI=", "=QUI", "AB==CD=="])
    decoded, invalid = base64_bytes(texts)
    assert invalid.tolist() == [False, True, True, False, True, False, False, False, True, True]
    assert decoded.to_pylist() == [b"A", None, None, b"ABC", None, None, b"", b"AB", None, None]
    assert [base64.b64encode(b).decode() for b in (b"A", b"ABC", b"AB")] == ["QQ==", "QUJD", "QUI="]


# Columns of every type (and types nested in each other) with awkward values: the texts
# json_texts writes for them read back as the same column.
EDGE_COLUMNS = {
    "uint64": pa.array([0, 2**63, 2**64 - 1, None], pa.uint64()),
    "int8": pa.array([-128, 127, None], pa.int8()),
    "float16": pa.array(np.array([0.5, -65504, 6e-8], np.float16)),
    "float32": pa.array(np.array([0.1, -3.4028235e38, 1e-45], np.float32)),
    "float64": pa.array([1 / 3, 5e-324, -0.0, None]),
    "decimal38": pa.array(
        [decimal.Decimal("-" + "9" * 28 + "." + "9" * 10)], pa.decimal128(38, 10)
    ),
    "decimal76": pa.array([decimal.Decimal("1" * 76), None], pa.decimal256(76, 0)),
    "date": pa.array([dt.date(1, 1, 1), dt.date(9999, 12, 31), dt.date(2024, 2, 29)]),
    "time": pa.array([dt.time(0, 0), dt.time(23, 59, 59, 999999)], pa.time64("us")),
    "time_ns": pa.array([0, 86_400 * 10**9 - 1], pa.int64()).cast(pa.time64("ns")),
    "ts_ns": pa.array([-(2**63) + 1, 2**63 - 1, -1, 1, None], pa.int64()).cast(
        pa.timestamp("ns", "UTC")
    ),
    "ts_us_paris": pa.array([-(10**15), 10**15, 0], pa.int64()).cast(
        pa.timestamp("us", "Europe/Paris")
    ),
    "ts_local": pa.array([-1, 1_700_000_000_123_456], pa.int64()).cast(pa.timestamp("us")),
    "null": pa.nulls(2),
    "uuid": pa.ExtensionArray.from_storage(
        pa.uuid(), pa.array([uuid.UUID(int=2**128 - 1).bytes, None], pa.binary(16))
    ),
    "json": pa.ExtensionArray.from_storage(
        pa.json_(), pa.array(['{"a": "}", "b": [1, {"c": "\\""}]}', "[]", '"x"', "1.5", None])
    ),
    "bytes": pa.array([b"", b"\x00\xff", None]),
    "string": pa.array(['{"not": "json"}', "\\", '"', "\n", ""]),
    "list_of_structs": pa.array(
        [[{"a": 1, "b": [b"x"]}, None], [], None],
        pa.list_(pa.struct([("a", pa.uint32()), ("b", pa.list_(pa.binary()))])),
    ),
    "map_int_keys": pa.array(
        [[(1, "a"), (-(2**63), None)], [], None], pa.map_(pa.int64(), pa.string())
    ),
    "map_date_keys": pa.array(
        [[(dt.date(2024, 1, 1), [1.5, None])], None], pa.map_(pa.date32(), pa.list_(pa.float64()))
    ),
    "map_of_maps": pa.array(
        [[("k", [(True, 1)])], [("", None)]], pa.map_(pa.string(), pa.map_(pa.bool_(), pa.int8()))
    ),
    "list_of_nulls": pa.array([[None, None], [], None, [None]], pa.list_(pa.null())),
    "list_of_json": pa.ListArray.from_arrays(
        pa.array([0, 2, 2], pa.int32()),
        pa.ExtensionArray.from_storage(pa.json_(), pa.array(['{"k": [1]}', "null"])),
    ),
}


@pytest.mark.parametrize("name", EDGE_COLUMNS)
def test_texts_read_back_as_the_column_they_were_written_from(name: str) -> None:
    column = EDGE_COLUMNS[name]
    values, failed = json_values(json_texts(column), pa.field(name, column.type))
    assert failed == {}
    if name == "list_of_json":  # a JSON document "null" reads as a null
        column = pa.ListArray.from_arrays(
            pa.array([0, 2, 2], pa.int32()),
            pa.ExtensionArray.from_storage(pa.json_(), pa.array(['{"k": [1]}', None])),
        )
    values.validate(full=True)
    assert values.type == column.type
    assert values.equals(column), f"{values} != {column}"


@settings(max_examples=60, deadline=None)
@given(data_types(), st.integers(0, 2**32 - 1))
def test_texts_of_random_types_read_back_exactly(dtype: t.DataType, seed: int) -> None:
    schema = Schema("t", (t.Field("v", dtype),))
    written = random_batch(schema, 20, random.Random(seed))
    values, failed = json_values(json_texts(written.column(0)), written.schema.field("v"))
    assert failed == {}
    values.validate(full=True)
    read = pa.RecordBatch.from_arrays([values], schema=written.schema)
    difference = first_difference(read, written)
    assert difference is None, difference


SPECIALS = [float("nan"), float("inf"), float("-inf"), -0.0, None, 1.5]


def floats(kind: type[np.floating], values: list[float | None]) -> pa.Array:
    """A float column (numpy builds float16 ones, which pyarrow takes no Python floats for)."""
    filled = np.array([0.0 if v is None else v for v in values], kind)
    return pa.array(filled, mask=np.array([v is None for v in values]))


# NaN, the infinities and -0.0 alone and inside lists, maps (values and keys) and structs.
SPECIAL_FLOAT_COLUMNS = {
    "float16": floats(np.float16, SPECIALS),
    "float32": floats(np.float32, SPECIALS),
    "float64": floats(np.float64, SPECIALS),
    "list_double": pa.ListArray.from_arrays(
        pa.array([0, 3, 3, 6], pa.int32()),
        floats(np.float64, SPECIALS),
        mask=pa.array([False, True, False]),
    ),
    "map_string_float16": pa.MapArray.from_arrays(
        pa.array([0, 4, 4, 6], pa.int32()), pa.array(list("abcdef")), floats(np.float16, SPECIALS)
    ),
    "map_float64_keys": pa.MapArray.from_arrays(
        pa.array([0, 3, 5], pa.int32()),
        floats(np.float64, [v for v in SPECIALS if v is not None]),
        pa.array(range(5), pa.int8()),
    ),
    "struct_of_list_float32": pa.StructArray.from_arrays(
        [pa.ListArray.from_arrays(pa.array([0, 2, 6], pa.int32()), floats(np.float32, SPECIALS))],
        names=["l"],
    ),
}


def strict_json(text: str) -> object:
    """``text`` read as RFC 8259 JSON, which has no NaN or infinity literals."""

    def refuse(constant: str) -> object:
        raise ValueError(f"not JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


@pytest.mark.parametrize("name", SPECIAL_FLOAT_COLUMNS)
def test_nan_and_infinities_are_strings_that_read_back_as_floats(name: str) -> None:
    column = SPECIAL_FLOAT_COLUMNS[name]
    written = json_texts(column).to_pylist()
    read_as_json = json.dumps([strict_json(text) for text in written])
    assert all(word in read_as_json for word in ('"NaN"', '"Infinity"', '"-Infinity"'))
    values, failed = json_values(pa.array(written), pa.field(name, column.type))
    assert failed == {}
    values.validate(full=True)
    assert values.type == column.type
    as_batch = {"v": values}, {"v": column}
    assert first_difference(*(pa.record_batch(b) for b in as_batch)) is None


def test_records_read_nan_among_numbers_beside_maps() -> None:
    """Floats at the top level are parsed as numbers, so a body with NaN in one makes the
    parse fail; the floats are then read from their text, the other fields as before."""
    schema = Schema(
        "t",
        (
            t.Field("x", t.float64()),
            t.Field("m", t.map_of(t.array(t.float32()))),
            t.Field("s", t.struct(t.Field("h", t.float16()), t.Field("n", t.uint64()))),
        ),
    )
    rows = [
        {"x": i / 3, "m": {"k": [i / 7]}, "s": {"h": 0.5, "n": 2**64 - 1 - i}} for i in range(500)
    ]
    plain = rows_to_arrow(rows, schema)
    records = json_records(json_objects(plain), plain.schema)
    assert records.failed == {} and first_difference(records.batch, plain) is None
    rows[100]["x"] = float("-inf")
    rows[200]["m"] = {"k": [float("nan"), -0.0]}
    rows[300]["s"] = {"h": float("inf"), "n": 0}
    special = rows_to_arrow(rows, schema)
    records = json_records(json_objects(special), special.schema)
    assert records.failed == {} and first_difference(records.batch, special) is None


def test_enums_read_as_indices_into_their_symbols() -> None:
    field = to_arrow_field(t.Field("size", t.enum("s", "m", "l")))
    values, failed = json_values(pa.array(['"l"', "null", '"xl"', '"s"']), field)
    assert list(failed) == [2] and '"xl" is not one of the symbols' in str(failed[2])
    assert values.dictionary.to_pylist() == ["s", "m", "l"]
    assert values.indices.to_pylist()[:2] == [2, None] and values.indices[3].as_py() == 0


def test_records_of_other_writers_layouts() -> None:
    """Whitespace, escaped keys, keys in another order, fields left out, brackets and quotes
    inside strings: the structural scan finds every member where a JSON parser would."""
    schema = Schema(
        "t",
        (
            t.Field('odd "name"', t.int16()),
            t.Field("m", t.map_of(t.json(), keys=t.uint8())),
            t.Field("s", t.struct(t.Field("j", t.json()), t.Field("n", t.time_ns()))),
        ),
    )
    bodies = [
        b'{ "s" : { "n" : "00:00:01.5" , "j" : { "x" : "}]\\\\" } } ,\n'
        b' "m" : { "1" : [ 1 , "]" ] , "2" : null } , "odd \\"name\\"" : -5 }',
        b'{"odd \\u0022name\\"":7,"m":{}}',
        b'{"m":{"255":"\\"}"}}',
        b"{}",
    ]
    records = json_records(pa.array(bodies), to_arrow_schema(schema))
    assert records.failed == {} and records.unknown_fields == ()
    rows = records.batch.to_pylist()
    assert [row['odd "name"'] for row in rows] == [-5, 7, None, None]
    assert rows[0]["m"] == [(1, '[ 1 , "]" ]'), (2, None)]
    assert rows[2]["m"] == [(255, '"\\"}"')]
    assert rows[0]["s"]["j"] == '{ "x" : "}]\\\\" }'
    assert records.batch.column("s").field("n")[0].value == 1_500_000_000
    assert rows[3] == {'odd "name"': None, "m": None, "s": None}


def test_a_refused_body_among_many_fails_alone_and_unknown_fields_are_named() -> None:
    schema = to_arrow_schema(Schema("t", (t.Field("n", t.uint16()), t.Field("d", t.date()))))
    bodies = [b'{"n":%d,"d":"2024-01-01"}' % i for i in range(1000)]
    bodies[17] = b'{"n":-1}'
    bodies[500] = b'{"n":1,"d":"2024-13-01"}'
    bodies[999] = b'{"n":1,"extra":{"x":[1]},"more":2}'
    records = json_records(pa.array(bodies), schema)
    assert sorted(records.failed) == [17, 500]
    assert "couldn't parse:-1" in str(records.failed[17])
    assert str(records.failed[500]) == 'd: "2024-13-01" is not a date'
    assert records.unknown_fields == ("extra", "more")
    assert records.batch.column("n")[998].as_py() == 998


def test_values_that_do_not_convert_fail_their_rows_in_the_one_call_read_too() -> None:
    schema = to_arrow_schema(Schema("t", (t.Field("d", t.date()), t.Field("x", t.float32()))))
    bodies = [b'{"d":"2024-02-29","x":1.5}', b'{"d":"2024-02-30","x":-0}', b'{"d":null,"x":null}']
    records = json_records(pa.array(bodies), schema)
    assert records.unknown_fields == () and records.keys is None  # no scan was needed
    assert {row: str(error) for row, error in records.failed.items()} == {
        1: 'd: "2024-02-30" is not a date'
    }
    assert records.batch.column("x").to_pylist()[::2] == [1.5, None]


def test_object_keys_of_every_body() -> None:
    bodies = [
        b'{"a":{"b":1},"c":"d:e,f"}',
        b"{}",
        b'{"\\"":1}',
        b'{"x": }',
        b"[1]",
        b'{"y":[1,"z"]}',
    ]
    keys = object_keys(pa.array(bodies))
    assert keys.names.to_pylist() == ["a", "c", '"', "y"]
    assert keys.objects.tolist() == [0, 0, 2, 5]
    assert sorted(keys.refused) == [3, 4]
    assert str(keys.refused[3]).startswith("the body: JSON parse error")

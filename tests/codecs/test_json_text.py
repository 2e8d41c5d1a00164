"""Arrow columns as JSON text: one value mapping at every depth, for objects and lines."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import uuid

import pyarrow as pa
import pytest

from omconnect.codecs.json_text import Decimals, json_lines, json_objects, json_texts

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
        (pa.array([float("nan")]), "null"),
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

"""The omconnect <-> Arrow mapping is exact, and Arrow relatives map to the right type."""

from __future__ import annotations

import random

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from omconnect.schemas import types as t
from omconnect.schemas.arrow import (
    from_arrow_field,
    from_arrow_schema,
    from_arrow_type,
    to_arrow_field,
    to_arrow_schema,
    to_arrow_type,
)
from omconnect.schemas.arrow import rows_to_arrow as arrow_batch
from omconnect.schemas.schema import Schema
from omconnect.schemas.types import Field
from tests.support.schema_strategies import data_types, random_value, schemas

EXPECTED_ARROW = [
    (t.boolean(), pa.bool_()),
    (t.int8(), pa.int8()),
    (t.int16(), pa.int16()),
    (t.int32(), pa.int32()),
    (t.int64(), pa.int64()),
    (t.float32(), pa.float32()),
    (t.float64(), pa.float64()),
    (t.string(), pa.string()),
    (t.binary(), pa.binary()),
    (t.date(), pa.date32()),
    (t.time(), pa.time64("us")),
    (t.uuid(), pa.uuid()),
    (t.json(), pa.json_()),
    (t.decimal(38, 10), pa.decimal128(38, 10)),
    (t.decimal(60, 20), pa.decimal256(60, 20)),
    (t.timestamp("UTC"), pa.timestamp("us", "UTC")),
    (t.timestamp("Europe/Paris"), pa.timestamp("us", "Europe/Paris")),
    (t.timestamp(None), pa.timestamp("us")),
    (t.array(t.int32()), pa.list_(pa.int32())),
    (t.array(t.int32(), False), pa.list_(pa.field("item", pa.int32(), nullable=False))),
    (t.map_of(t.string(), False), pa.map_(pa.string(), pa.field("value", pa.string(), False))),
    (t.struct(Field("a", t.int8(), False)), pa.struct([pa.field("a", pa.int8(), False)])),
    (t.enum("a", "b"), pa.dictionary(pa.int32(), pa.string())),
]


@pytest.mark.parametrize(("dtype", "arrow"), EXPECTED_ARROW, ids=lambda x: str(x))
def test_each_type_maps_to_its_arrow_type_and_back(dtype: t.DataType, arrow: pa.DataType) -> None:
    assert to_arrow_type(dtype) == arrow
    field = Field("f", dtype, nullable=False, doc="the f")
    assert from_arrow_field(to_arrow_field(field)) == field


def test_names_and_symbols_live_in_field_metadata() -> None:
    dtype = t.struct(
        Field("e", t.enum("red", "green", name="Colour")),
        Field("tags", t.array(t.enum("x", "y")), False),
        Field("by_key", t.map_of(t.struct(Field("n", t.int16()), name="Inner"))),
        name="Outer",
    )
    field = Field("s", dtype)
    arrow = to_arrow_field(field)
    assert arrow.metadata[b"omconnect.name"] == b"Outer"
    assert arrow.type.field("e").metadata[b"omconnect.enum"] == b'["red", "green"]'
    assert from_arrow_field(arrow) == field


@pytest.mark.parametrize(
    ("arrow", "expected"),
    [
        (pa.large_string(), t.string()),
        (pa.string_view(), t.string()),
        (pa.large_binary(), t.binary()),
        (pa.binary_view(), t.binary()),
        (pa.binary(7), t.binary()),
        (pa.date64(), t.date()),
        (pa.time32("ms"), t.time()),
        (pa.timestamp("ms", "Europe/Paris"), t.timestamp("Europe/Paris")),
        (pa.timestamp("s", "UTC"), t.timestamp("UTC")),
        (pa.large_list(pa.float32()), t.array(t.float32())),
        (pa.list_(pa.int8(), 3), t.array(t.int8())),
        (pa.dictionary(pa.int8(), pa.string()), t.string()),
        (pa.dictionary(pa.int16(), pa.int64()), t.int64()),
        (pa.decimal256(20, 2), t.decimal(20, 2)),
    ],
    ids=str,
)
def test_arrow_relatives_widen_to_the_type_holding_their_values(
    arrow: pa.DataType, expected: t.DataType
) -> None:
    assert from_arrow_type(arrow) == expected


@pytest.mark.parametrize(
    ("arrow", "expected"),
    [
        (pa.uint8(), t.uint8()),
        (pa.uint16(), t.uint16()),
        (pa.uint32(), t.uint32()),
        (pa.uint64(), t.uint64()),
        (pa.float16(), t.float16()),
        (pa.null(), t.null()),
        (pa.time64("ns"), t.time_ns()),
        (pa.timestamp("ns"), t.timestamp(None, "ns")),
        (pa.timestamp("ns", "Europe/Paris"), t.timestamp("Europe/Paris", "ns")),
        (pa.map_(pa.int32(), pa.string()), t.map_of(t.string(), keys=t.int32())),
        (
            pa.map_(pa.timestamp("ns"), pa.list_(pa.struct([("a", pa.uint64())]))),
            t.map_of(t.array(t.struct(Field("a", t.uint64()))), keys=t.timestamp(None, "ns")),
        ),
    ],
    ids=str,
)
def test_types_files_carry_map_exactly_and_back(arrow: pa.DataType, expected: t.DataType) -> None:
    assert from_arrow_type(arrow) == expected
    assert to_arrow_type(expected) == arrow


@pytest.mark.parametrize("arrow", [pa.duration("s"), pa.month_day_nano_interval()], ids=str)
def test_arrow_types_without_an_omconnect_type_are_refused_by_name(arrow: pa.DataType) -> None:
    with pytest.raises(TypeError, match=str(arrow).split("<")[0].split("[")[0]):
        from_arrow_type(arrow)


def test_schema_metadata_wins_over_the_name_argument() -> None:
    schema = Schema(
        "orders",
        (Field("id", t.int64(), False), Field("amount", t.decimal(12, 2))),
        version=4,
        key_fields=("id",),
        doc="one row per order",
    )
    arrow = to_arrow_schema(schema)
    assert from_arrow_schema(arrow, name="ignored") == schema
    plain = arrow.remove_metadata()
    assert from_arrow_schema(plain, name="o", key_fields=["id"]) == Schema(
        "o", schema.fields, key_fields=("id",)
    )


@settings(max_examples=100, deadline=None)
@given(schemas())
def test_random_schemas_round_trip(schema: Schema) -> None:
    assert from_arrow_schema(to_arrow_schema(schema), name="other") == schema


@settings(max_examples=60, deadline=None)
@given(data_types(), st.integers(0, 2**32))
def test_random_values_fit_the_arrow_type(dtype: t.DataType, seed: int) -> None:
    rng = random.Random(seed)
    schema = Schema("rows", (Field("v", dtype),))
    rows = [{"v": random_value(dtype, True, rng)} for _ in range(5)]
    batch = arrow_batch(rows, schema)
    assert from_arrow_schema(batch.schema, name="x") == schema
    assert batch.schema == to_arrow_schema(schema)
    assert batch.num_rows == 5
    assert batch.validate(full=True) is None

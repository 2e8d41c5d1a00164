"""Hypothesis strategies: Arrow record batches with the Avro schema omconnect gives them.

Each column kind pairs an Avro field type (written by hand in the shape of
``omconnect.schemas.avro.to_avro_schema``), the Arrow type, and a strategy for its values.
"""

from __future__ import annotations

import datetime as dt
import decimal
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
from hypothesis import strategies as st

_US_MIN = -62_135_596_800_000_000  # 0001-01-01, the first datetime Python can hold
_US_MAX = 253_402_300_799_999_999  # 9999-12-31T23:59:59.999999
_EPOCH = dt.datetime(1970, 1, 1)


@dataclass(frozen=True)
class ColumnKind:
    name: str
    avro: Any
    arrow: pa.DataType
    values: st.SearchStrategy[Any]


def _decimals(precision: int, scale: int) -> st.SearchStrategy[decimal.Decimal]:
    bound = 10**precision - 1
    edges = st.sampled_from([0, 1, -1, bound, -bound, 127, -128, 128, -129, 255, -256])
    unscaled = st.one_of(edges, st.integers(-bound, bound))
    exact = decimal.Context(prec=100)  # the default context would round 38-digit values
    return unscaled.map(lambda u: decimal.Decimal(u).scaleb(-scale, context=exact))


def _micros_as_datetime(tz: dt.tzinfo | None) -> st.SearchStrategy[dt.datetime]:
    def build(us: int) -> dt.datetime:
        naive = _EPOCH + dt.timedelta(microseconds=us)
        return naive.replace(tzinfo=tz) if tz else naive

    return st.integers(_US_MIN, _US_MAX).map(build)


def _decimal_kind(precision: int, scale: int) -> ColumnKind:
    arrow = pa.decimal128(precision, scale) if precision <= 38 else pa.decimal256(precision, scale)
    avro = {"type": "bytes", "logicalType": "decimal", "precision": precision, "scale": scale}
    return ColumnKind(f"dec_{precision}_{scale}", avro, arrow, _decimals(precision, scale))


INT64_EDGES = st.sampled_from([0, -1, 1, 63, -64, 64, 2**31, 2**63 - 1, -(2**63), 2**55, -(2**56)])

COLUMN_KINDS = [
    ColumnKind("flag", "boolean", pa.bool_(), st.booleans()),
    ColumnKind(
        "tiny", {"type": "int", "omconnect.type": "int8"}, pa.int8(), st.integers(-128, 127)
    ),
    ColumnKind(
        "small",
        {"type": "int", "omconnect.type": "int16"},
        pa.int16(),
        st.integers(-(2**15), 2**15 - 1),
    ),
    ColumnKind("int32", "int", pa.int32(), st.integers(-(2**31), 2**31 - 1)),
    ColumnKind(
        "int64", "long", pa.int64(), st.one_of(INT64_EDGES, st.integers(-(2**63), 2**63 - 1))
    ),
    ColumnKind("f32", "float", pa.float32(), st.floats(width=32, allow_nan=False)),
    ColumnKind("f64", "double", pa.float64(), st.floats(allow_nan=False)),
    ColumnKind("text", "string", pa.string(), st.text(max_size=40)),
    ColumnKind("blob", "bytes", pa.binary(), st.binary(max_size=40)),
    ColumnKind("day", {"type": "int", "logicalType": "date"}, pa.date32(), st.dates()),
    ColumnKind(
        "clock", {"type": "long", "logicalType": "time-micros"}, pa.time64("us"), st.times()
    ),
    ColumnKind(
        "ts_utc",
        {"type": "long", "logicalType": "timestamp-micros"},
        pa.timestamp("us", "UTC"),
        _micros_as_datetime(dt.UTC),
    ),
    ColumnKind(
        "ts_local",
        {"type": "long", "logicalType": "local-timestamp-micros"},
        pa.timestamp("us"),
        _micros_as_datetime(None),
    ),
    _decimal_kind(12, 2),
    _decimal_kind(38, 10),
    _decimal_kind(38, 0),
    _decimal_kind(76, 20),
    ColumnKind(
        "ident",
        {"type": "string", "logicalType": "uuid"},
        pa.uuid(),
        st.uuids().map(lambda u: u.bytes),
    ),
    ColumnKind(
        "doc",
        {"type": "string", "omconnect.type": "json"},
        pa.json_(),
        st.sampled_from(["{}", '{"a": [1, 2]}', "null", '"é"']),
    ),
    ColumnKind(
        "color",
        {"type": "enum", "name": "color", "symbols": ["RED", "GREEN", "BLUE"]},
        pa.dictionary(pa.int32(), pa.string()),
        st.sampled_from(["RED", "GREEN", "BLUE"]),
    ),
    ColumnKind(
        "point",
        {
            "type": "record",
            "name": "point",
            "fields": [
                {"name": "x", "type": "int"},
                {"name": "label", "type": ["null", "string"], "default": None},
                {
                    "name": "at",
                    "type": ["null", {"type": "long", "logicalType": "timestamp-micros"}],
                    "default": None,
                },
            ],
        },
        pa.struct(
            [
                pa.field("x", pa.int32(), nullable=False),
                ("label", pa.string()),
                ("at", pa.timestamp("us", "UTC")),
            ]
        ),
        st.fixed_dictionaries(
            {
                "x": st.integers(-(2**31), 2**31 - 1),
                "label": st.none() | st.text(max_size=5),
                "at": st.none() | _micros_as_datetime(dt.UTC),
            }
        ),
    ),
    ColumnKind(
        "longs",
        {"type": "array", "items": "long"},
        pa.list_(pa.int64()),
        st.lists(st.integers(-(2**63), 2**63 - 1), max_size=4),
    ),
    ColumnKind(
        "tags",
        {"type": "map", "values": ["null", "string"]},
        pa.map_(pa.string(), pa.string()),
        st.dictionaries(st.text(max_size=4), st.none() | st.text(max_size=4), max_size=3),
    ),
    ColumnKind(
        "shapes",
        {
            "type": "array",
            "items": {
                "type": "record",
                "name": "shape",
                "fields": [
                    {"name": "a", "type": "int"},
                    {"name": "b", "type": {"type": "array", "items": ["null", "string"]}},
                ],
            },
        },
        pa.large_list(
            pa.struct(
                [
                    pa.field("a", pa.int32(), nullable=False),
                    pa.field("b", pa.list_(pa.string()), nullable=False),
                ]
            )
        ),
        st.lists(
            st.fixed_dictionaries(
                {
                    "a": st.integers(-(2**31), 2**31 - 1),
                    "b": st.lists(st.none() | st.text(max_size=3), max_size=3),
                }
            ),
            max_size=3,
        ),
    ),
    ColumnKind(
        "grid",
        {"type": "array", "items": {"type": "array", "items": ["null", "double"]}},
        pa.list_(pa.field("item", pa.list_(pa.float64()), nullable=False)),
        st.lists(st.lists(st.none() | st.floats(allow_nan=False), max_size=5), max_size=3),
    ),
    ColumnKind(
        "blanks",
        {"type": "array", "items": "null"},
        pa.list_(pa.null()),
        st.lists(st.none(), max_size=5),
    ),
    ColumnKind(
        "digests",
        {"type": "map", "values": {"type": "fixed", "name": "digest", "size": 4}},
        pa.map_(pa.string(), pa.field("value", pa.binary(), nullable=False)),
        st.dictionaries(st.text(max_size=3), st.binary(min_size=4, max_size=4), max_size=3),
    ),
]


def _arrow_value(kind: ColumnKind, value: Any) -> Any:
    if pa.types.is_map(kind.arrow) and value is not None:
        return list(value.items())
    return value


@st.composite
def batches(
    draw: st.DrawFn, kinds: list[ColumnKind] = COLUMN_KINDS, max_rows: int = 12
) -> tuple[pa.RecordBatch, dict[str, Any]]:
    """A batch of some of ``kinds`` (each nullable or not) and its Avro record schema."""
    chosen = draw(
        st.lists(st.sampled_from(kinds), min_size=1, max_size=6, unique_by=lambda k: k.name)
    )
    num_rows = draw(st.integers(0, max_rows))
    columns, fields, avro_fields = [], [], []
    for index, kind in enumerate(chosen):
        nullable = draw(st.booleans())
        values = draw(
            st.lists(
                st.none() | kind.values if nullable else kind.values,
                min_size=num_rows,
                max_size=num_rows,
            )
        )
        name = f"c{index}_{kind.name}"
        columns.append(pa.array([_arrow_value(kind, v) for v in values], kind.arrow))
        fields.append(pa.field(name, kind.arrow, nullable))
        avro_type = _renamed(kind.avro, index)
        if nullable:
            avro_fields.append({"name": name, "type": ["null", avro_type], "default": None})
        else:
            avro_fields.append({"name": name, "type": avro_type})
    batch = pa.RecordBatch.from_arrays(columns, schema=pa.schema(fields))
    return batch, {"type": "record", "name": "row", "fields": avro_fields}


def _renamed(avro: Any, index: int) -> Any:
    """Named types get a per-column name so two columns of one kind do not clash."""
    if isinstance(avro, dict) and "name" in avro:
        return {**avro, "name": f"{avro['name']}_{index}"}
    return avro


def fastavro_rows(batch: pa.RecordBatch) -> list[dict[str, Any]]:
    """The rows as fastavro takes them (maps as dicts)."""
    rows: list[dict[str, Any]] = batch.to_pylist(maps_as_pydicts="strict")
    return rows

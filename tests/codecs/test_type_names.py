"""Type names in pipeline files: parsing, canonical formatting and the round trip."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ValidationError

from omconnect.codecs.type_names import TYPE_WORDS, format_type, parse_type
from omconnect.connectors.files.csv import CsvSourceSpec
from omconnect.schemas import types as t
from omconnect.schemas.types import Field
from omconnect.transforms.cast import CastSpec

ROUND_TRIP = [
    t.boolean(),
    t.int8(),
    t.int16(),
    t.int32(),
    t.int64(),
    t.uint8(),
    t.uint16(),
    t.uint32(),
    t.uint64(),
    t.float16(),
    t.float32(),
    t.float64(),
    t.string(),
    t.binary(),
    t.date(),
    t.time(),
    t.time_ns(),
    t.uuid(),
    t.json(),
    t.null(),
    t.decimal(12, 2),
    t.decimal(76, 0),
    t.timestamp(None),
    t.timestamp("UTC"),
    t.timestamp("Europe/Paris"),
    t.timestamp("+02:00"),
    t.timestamp(None, "ns"),
    t.timestamp("UTC", "ns"),
    t.timestamp("America/New_York", "ns"),
    t.array(t.int64()),
    t.array(t.string(), items_nullable=False),
    t.map_of(t.float64()),
    t.map_of(t.array(t.int32()), values_nullable=False),
    t.map_of(t.string(), keys=t.int64()),
    t.map_of(t.array(t.uint64(), False), False, keys=t.timestamp("UTC", "ns")),
    t.map_of(t.map_of(t.date(), keys=t.uuid()), keys=t.struct(Field("a", t.int8()))),
    t.struct(Field("id", t.int64(), nullable=False), Field("tags", t.array(t.string()))),
    t.struct(Field("odd name", t.string())),
    t.struct(),
    t.enum("small", "medium", "x-large"),
]


@pytest.mark.parametrize("dtype", ROUND_TRIP, ids=str)
def test_round_trip(dtype: t.DataType) -> None:
    assert parse_type(format_type(dtype)) == dtype


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("int64", t.int64()),
        ("  INT64 ", t.int64()),
        ("bigint", t.int64()),
        ("double", t.float64()),
        ("text", t.string()),
        ("bool", t.boolean()),
        ("timestamp", t.timestamp(None)),
        ("timestamptz", t.timestamp("UTC")),
        ("timestamp(UTC)", t.timestamp("UTC")),
        ("decimal(10)", t.decimal(10, 0)),
        ("decimal( 12 , 2 )", t.decimal(12, 2)),
        ("array< map<string, int64 not null> >", t.array(t.map_of(t.int64(), False))),
        ("timestamp_ns", t.timestamp(None, "ns")),
        ("TIMESTAMP_NS( UTC )", t.timestamp("UTC", "ns")),
        ("timestamp_ns(+02:00)", t.timestamp("+02:00", "ns")),
        ("time_ns", t.time_ns()),
        ("map<bigint, text>", t.map_of(t.string(), keys=t.int64())),
        ("map<text,int>", t.map_of(t.int32())),
    ],
)
def test_parse(text: str, expected: t.DataType) -> None:
    assert parse_type(text) == expected


def test_format_is_canonical() -> None:
    assert format_type(parse_type("bigint")) == "int64"
    assert format_type(t.timestamp(None)) == "timestamp"
    assert format_type(t.decimal(12, 2)) == "decimal(12,2)"
    assert format_type(t.timestamp(None, "ns")) == "timestamp_ns"
    assert format_type(t.timestamp("UTC", "ns")) == "timestamp_ns(UTC)"
    assert format_type(parse_type("map<bigint,varchar not null>")) == "map<int64,string not null>"
    assert format_type(t.map_of(t.int64())) == "map<string,int64>"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("int63", "unknown type 'int63' at position 1 (did you mean 'int64'?)"),
        ("decimal(100,2)", "precision must be 1..76"),
        ("decimal(4,5)", "scale must be 0..precision"),
        ("decimal(x)", "expected a number at position 9"),
        ("timestamp(Mars/Olympus)", "unknown time zone 'Mars/Olympus'"),
        ("timestamp_ns(Mars/Olympus)", "unknown time zone 'Mars/Olympus'"),
        (
            "timestamp_nz",
            "unknown type 'timestamp_nz' at position 1 (did you mean 'timestamp_ns'?)",
        ),
        ("map<int64 not null,string>", "map keys are never null"),
        ("map<int64>", "expected ','"),
        ("map<int65,string>", "unknown type 'int65' at position 5"),
        ("array<int64", "expected '>'"),
        ("int64 extra", "unexpected text after the type at position 7"),
        ("", "expected a name"),
    ],
)
def test_errors_name_the_position(text: str, fragment: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_type(text)
    assert fragment in str(caught.value)


# Every word the grammar knows, in the cases users write them, the parameterised forms, and
# texts that name no type: the csv `columns` option and the cast transform must agree on all.
SPELLINGS = [
    *TYPE_WORDS,
    *(word.upper() for word in TYPE_WORDS),
    "decimal(12,2)",
    "DECIMAL( 12 , 2 )",
    "decimal(5)",
    "timestamp(UTC)",
    "timestamp(Europe/Paris)",
    "timestamp(+02:00)",
    "array<varchar not null>",
    "map<text,int>",
    "map<bigint,timestamp_ns(UTC)>",
    "timestamp_ns(Europe/Paris)",
    "map<int64 not null,string>",
    "timestamp_ns(Mars/Olympus)",
    "struct<id:bigint not null,name:varchar>",
    "enum<s,m,l>",
    "int65",
    "decimal(0,0)",
    "timestamp(Mars/Olympus)",
    "array<int64",
    "varchar(10)",
    "",
]


def _accepts(model: type[BaseModel], options: dict[str, object]) -> str | None:
    """None when ``model`` accepts ``options``, else the first error's message."""
    try:
        model.model_validate(options)
    except ValidationError as error:
        return str(error.errors()[0]["msg"])
    return None


@pytest.mark.parametrize("text", SPELLINGS)
def test_csv_columns_and_cast_accept_the_same_type_names(text: str) -> None:
    csv = _accepts(CsvSourceSpec, {"path": "x.csv", "columns": {"a": text}})
    cast = _accepts(CastSpec, {"fields": {"a": text}})
    assert csv == cast


def test_the_spellings_cover_both_outcomes() -> None:
    outcomes = {_accepts(CastSpec, {"fields": {"a": text}}) is None for text in SPELLINGS}
    assert outcomes == {True, False}
    assert parse_type("varchar") == parse_type("VarChar") == t.string()

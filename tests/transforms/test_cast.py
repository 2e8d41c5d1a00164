"""The cast transform: safe casts, rows that do not convert set aside, the rest delivered."""

from __future__ import annotations

import datetime
import decimal
import uuid
from collections.abc import Sequence

import pyarrow as pa
import pytest
from pydantic import ValidationError

from omconnect.connectors.api import TransformRowErrors
from omconnect.connectors.api.errors import ConfigError
from omconnect.connectors.api.plugins import lookup
from omconnect.schemas import types as t
from omconnect.schemas.arrow import from_arrow_schema
from omconnect.schemas.record import Position, PositionMark, RecordBatch
from omconnect.transforms.cast import CastSpec, CastTransform


def make(fields: dict[str, str]) -> CastTransform:
    return CastTransform(CastSpec.model_validate({"fields": fields}))


def text_batch(**columns: Sequence[str | None]) -> RecordBatch:
    values = pa.record_batch({k: pa.array(v, pa.string()) for k, v in columns.items()})
    n = values.num_rows
    marks = tuple(PositionMark(i + 1, Position({"p": 0}, {"o": i})) for i in range(n))
    return RecordBatch(values, from_arrow_schema(values.schema, name="s"), marks=marks)


def test_casts_text_columns() -> None:
    batch = text_batch(
        id=["1", "2", None],
        amount=["1.50", "2", "-0.25"],
        ts=["2024-01-02T03:04:05", "2024-01-02 03:04:05+02:00", None],
        day=["2024-02-29", None, "1970-01-01"],
        at=["12:30:00", "00:00:01.5", None],
        ok=["true", "false", "1"],
    )
    spec = {"id": "int64", "amount": "decimal(12,2)", "ts": "timestamp(UTC)", "day": "date"}
    cast = make({**spec, "at": "time", "ok": "boolean"})
    cast.check(batch.schema)
    out = cast.apply(batch)
    assert out.values.column("id").to_pylist() == [1, 2, None]
    assert out.values.column("amount").to_pylist() == [
        decimal.Decimal("1.50"),
        decimal.Decimal("2.00"),
        decimal.Decimal("-0.25"),
    ]
    utc = datetime.UTC
    assert out.values.column("ts").to_pylist() == [
        datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=utc),
        datetime.datetime(2024, 1, 2, 1, 4, 5, tzinfo=utc),
        None,
    ]
    assert out.values.column("at").to_pylist()[1] == datetime.time(0, 0, 1, 500000)
    assert out.schema.type_of("amount") == t.decimal(12, 2)
    assert out.schema.type_of("ts") == t.timestamp("UTC")
    assert from_arrow_schema(out.values.schema, name="s") == out.schema
    assert out.marks == batch.marks


def test_zone_less_text_is_wall_clock_time_in_the_target_zone() -> None:
    out = make({"ts": "timestamp(Europe/Paris)"}).apply(text_batch(ts=["2024-07-01T12:00:00"]))
    instant = out.values.column("ts")[0].as_py()
    assert instant.astimezone(datetime.UTC).hour == 10


def test_bad_rows_are_reported_and_the_rest_delivered() -> None:
    batch = text_batch(
        id=["1", "x", "3", "4", None, "99999999999"], n=["1", "2", "3", "1.5", "5", "6"]
    )
    cast = make({"id": "int32", "n": "int64"})
    with pytest.raises(TransformRowErrors) as caught:
        cast.apply(batch)
    errors = caught.value
    assert sorted(errors.rows) == [1, 3, 5]
    assert "'x'" in errors.rows[1] and 'column "id"' in errors.rows[1]
    assert 'column "n"' in errors.rows[3]
    assert errors.good.values.column("id").to_pylist() == [1, 3, None]
    assert errors.good.values.column("n").to_pylist() == [1, 3, 5]
    assert errors.good.schema.type_of("id") == t.int32()
    # The good batch's marks still cover every input row's position.
    assert errors.good.positions == batch.positions
    assert [m.end_row for m in errors.good.marks] == [1, 1, 2, 2, 3, 3]


def test_many_bad_rows_in_a_large_batch() -> None:
    column = [str(i) if i % 1000 else f"bad{i}" for i in range(20_000)]
    with pytest.raises(TransformRowErrors) as caught:
        make({"v": "int64"}).apply(text_batch(v=column))
    assert sorted(caught.value.rows) == list(range(0, 20_000, 1000))
    assert caught.value.good.num_rows == 20_000 - 20


def test_uuid_and_enum_targets() -> None:
    ids = [uuid.uuid4() for _ in range(3)]
    batch = text_batch(u=[str(ids[0]), str(ids[1]).upper(), "nope"], size=["s", "m", "xl"])
    with pytest.raises(TransformRowErrors) as caught:
        make({"u": "uuid", "size": "enum<s,m,l>"}).apply(batch)
    assert sorted(caught.value.rows) == [2]
    good = caught.value.good
    assert good.values.column("u").to_pylist() == ids[:2]
    assert good.schema.type_of("size") == t.enum("s", "m", "l")
    back = make({"u": "string"}).apply(good)
    assert back.values.column("u").to_pylist() == [str(ids[0]), str(ids[1])]


def test_impossible_casts_are_refused_by_check() -> None:
    values = pa.record_batch({"ts": pa.array([0], pa.timestamp("us"))})
    schema = from_arrow_schema(values.schema, name="s")
    with pytest.raises(ConfigError, match='cannot cast column "ts" from timestamp to boolean'):
        make({"ts": "boolean"}).check(schema)


def test_spec_refuses_unknown_types_and_check_missing_columns() -> None:
    with pytest.raises(ValidationError, match="unknown type 'int65'"):
        CastSpec.model_validate({"fields": {"a": "int65"}})
    with pytest.raises(ConfigError, match='did you mean "id"'):
        make({"idd": "int64"}).check(text_batch(id=["1"]).schema)


def test_registered() -> None:
    assert lookup("transform", "cast").cls is CastTransform

"""Positions as tagged JSON: lossless round trips, plain JSON written as before, stable ids."""

from __future__ import annotations

import datetime as dt
import json
import math
import uuid
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from omconnect.schemas.position_codec import (
    decode_position_value,
    encode_position_value,
    position_from_json,
    position_to_json,
)
from omconnect.schemas.record import partition_id

leaves = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=2**60).map(lambda n: n**3)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text()
    | st.binary()
    | st.uuids()
    | st.decimals(allow_nan=True, allow_infinity=True)
    | st.dates()
    | st.times()
    | st.times(timezones=st.timezones())
    | st.datetimes()
    | st.datetimes(timezones=st.timezones())
    | st.datetimes(timezones=st.just(dt.UTC))
    | st.datetimes(
        timezones=st.builds(
            dt.timezone, st.integers(-1439, 1439).map(lambda m: dt.timedelta(minutes=m))
        )
    )
)
keys = st.text(max_size=8) | st.sampled_from(["$datetime", "$bytes", "$object", "$int", "$x"])
values = st.recursive(
    leaves,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=3),
    max_leaves=12,
)
positions = st.dictionaries(keys, values, max_size=4)
# Any key but a tag name (a one-key dict of a tag name is escaped; see the test below).
plain_keys = st.text().filter(lambda k: not k.startswith("$"))


def same(a: Any, b: Any) -> bool:
    """Equal and of the same type all the way down (NaNs equal, zones and folds compared)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and str(a) == str(b))
    if isinstance(a, Decimal):
        return a.compare_total(b) == 0
    if isinstance(a, (dt.datetime, dt.time)):
        return (
            a.replace(tzinfo=None) == b.replace(tzinfo=None)
            and a.utcoffset() == b.utcoffset()
            and getattr(a.tzinfo, "key", None) == getattr(b.tzinfo, "key", None)
        )
    return bool(a == b)


@settings(max_examples=300, deadline=None)
@given(positions)
def test_every_position_value_round_trips(position: dict[str, Any]) -> None:
    text = encode_position_value(position)
    back = decode_position_value(text)
    assert same(back, position)
    assert encode_position_value(back) == text
    assert same(position_from_json(json.loads(json.dumps(position_to_json(position)))), position)


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.text(max_size=6),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
            lambda inner: st.lists(inner, max_size=3) | st.dictionaries(plain_keys, inner),
            max_leaves=8,
        ),
    )
)
def test_plain_json_is_written_exactly_as_before(position: dict[str, Any]) -> None:
    before = json.dumps(position, sort_keys=True, separators=(",", ":"), default=str)
    assert encode_position_value(position) == before
    assert partition_id(position) == before


def test_tags_for_each_type_and_a_stable_partition_id() -> None:
    paris = ZoneInfo("Europe/Paris")
    position = {
        "at": dt.datetime(2024, 10, 27, 2, 30, 0, 5, tzinfo=paris, fold=1),
        "naive": dt.datetime(2024, 1, 31, 12, 0),
        "day": dt.date(2024, 2, 29),
        "clock": dt.time(23, 59, 59, 999999),
        "lsn": Decimal("12345678901234567890.000"),
        "gtid": b"\x00\xff",
        "id": uuid.UUID(int=7),
        "big": 10**5000,
    }
    text = encode_position_value(position)
    raw = json.loads(text)
    assert raw["at"] == {"$datetime": "2024-10-27T02:30:00.000005+01:00[Europe/Paris]"}
    assert raw["naive"] == {"$datetime": "2024-01-31T12:00:00"}
    assert raw["day"] == {"$date": "2024-02-29"}
    assert raw["lsn"] == {"$decimal": "12345678901234567890.000"}
    assert raw["gtid"] == {"$bytes": "AP8="}
    assert raw["id"] == {"$uuid": "00000000-0000-0000-0000-000000000007"}
    assert raw["big"]["$int"].startswith("0x")
    back = decode_position_value(text)
    assert same(back, position) and back["at"].fold == 1
    reordered = dict(reversed(list(position.items())))
    assert partition_id(reordered) == partition_id(position) == text


def test_a_dict_that_looks_like_a_tag_is_escaped() -> None:
    lookalike = {"x": {"$bytes": "AP8="}, "y": {"$other": 1}}
    text = encode_position_value(lookalike)
    assert json.loads(text) == {"x": {"$object": {"$bytes": "AP8="}}, "y": {"$other": 1}}
    assert decode_position_value(text) == lookalike


def test_values_a_position_cannot_hold_are_refused_naming_where() -> None:
    with pytest.raises(TypeError, match=r"position\.a\[1\]: .*cannot hold object"):
        encode_position_value({"a": [1, object()]})
    with pytest.raises(TypeError, match="keys must be strings"):
        encode_position_value({"a": {1: "x"}})


def test_malformed_tags_are_refused() -> None:
    with pytest.raises(ValueError, match="malformed position value"):
        decode_position_value('{"a": {"$date": "yesterday"}}')
    with pytest.raises(ValueError, match="must hold a string"):
        decode_position_value('{"a": {"$bytes": 1}}')
    with pytest.raises(ValueError, match="JSON object"):
        decode_position_value("[1]")

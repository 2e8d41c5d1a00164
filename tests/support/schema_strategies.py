"""Hypothesis strategies for random omconnect schemas, and random rows that fit them."""

from __future__ import annotations

import datetime
import decimal
import json
import random
import struct
from typing import Any

from hypothesis import strategies as st

from omconnect.schemas import types as t
from omconnect.schemas.schema import Schema
from omconnect.schemas.types import DataType, Field, Kind

# Names with characters Avro must sanitise, so the name round trips are exercised.
names = st.text(alphabet="abcXYZ_09-. é", min_size=1, max_size=6)
identifiers = st.from_regex(r"[a-z][a-z0-9_]{0,5}", fullmatch=True)
docs = st.none() | st.text(max_size=8)
timezones = st.sampled_from([None, "UTC", "Europe/Paris", "America/New_York"])

primitive_types = st.sampled_from(
    [
        t.Primitive(kind)
        for kind in Kind
        if kind not in (Kind.DECIMAL, Kind.TIMESTAMP, Kind.ARRAY, Kind.MAP, Kind.STRUCT, Kind.ENUM)
    ]
)
decimal_types = st.integers(1, 76).flatmap(
    lambda p: st.builds(t.Decimal, st.just(p), st.integers(0, p))
)
timestamp_types = st.builds(t.Timestamp, timezones, st.sampled_from(t.TIMESTAMP_UNITS))
# Map keys: strings mostly, and the other key types Parquet files carry.
key_types = st.sampled_from(
    [t.string(), t.string(), t.int32(), t.uint64(), t.date(), t.binary()]
) | st.builds(t.Timestamp, timezones, st.just("ns"))


def enum_types(name_strategy: st.SearchStrategy[str]) -> st.SearchStrategy[t.Enum]:
    return st.builds(
        t.Enum,
        st.lists(name_strategy, min_size=1, max_size=4, unique=True).map(tuple),
        st.none() | name_strategy,
    )


def fields_of(
    types: st.SearchStrategy[DataType], name_strategy: st.SearchStrategy[str], max_size: int = 4
) -> st.SearchStrategy[tuple[Field, ...]]:
    """Fields with unique names (JSON objects cannot hold two properties of one name)."""
    return st.lists(
        st.builds(Field, name_strategy, types, st.booleans(), docs),
        min_size=1,
        max_size=max_size,
        unique_by=lambda f: f.name,
    ).map(tuple)


def data_types(name_strategy: st.SearchStrategy[str] = names) -> st.SearchStrategy[DataType]:
    """Any omconnect type, nested a few levels deep."""
    leaves = primitive_types | decimal_types | timestamp_types | enum_types(name_strategy)

    def nest(children: st.SearchStrategy[DataType]) -> st.SearchStrategy[DataType]:
        return (
            # The null type inside lists and maps is not supported yet (issue 7 notes): such
            # types are not drawn.
            st.builds(t.Array, children.filter(_without_null_type), st.booleans())
            | st.builds(t.Map, children.filter(_without_null_type), st.booleans(), key_types)
            | st.builds(t.Struct, fields_of(children, name_strategy, 3), st.none() | name_strategy)
        )

    return st.recursive(leaves, nest, max_leaves=6)


def _without_null_type(dtype: DataType) -> bool:
    """Whether ``dtype`` holds no null type, at any depth."""
    if isinstance(dtype, t.Primitive):
        return dtype.kind != Kind.NULL
    if isinstance(dtype, t.Array):
        return _without_null_type(dtype.items)
    if isinstance(dtype, t.Map):
        return _without_null_type(dtype.values)
    if isinstance(dtype, t.Struct):
        return all(_without_null_type(f.type) for f in dtype.fields)
    return True


@st.composite
def schemas(draw: st.DrawFn, name_strategy: st.SearchStrategy[str] = names) -> Schema:
    """A random schema: nested types, random nullability, docs, version and key fields."""
    fields = draw(fields_of(data_types(name_strategy), name_strategy, 5))
    keys = draw(st.lists(st.sampled_from([f.name for f in fields]), unique=True, max_size=2))
    return Schema(
        name=draw(name_strategy),
        fields=fields,
        version=draw(st.integers(1, 1000)),
        key_fields=tuple(keys),
        doc=draw(docs),
    )


_INTEGER_BITS = {Kind.INT8: 8, Kind.INT16: 16, Kind.INT32: 32, Kind.INT64: 64}
_UNSIGNED_BITS = {Kind.UINT8: 8, Kind.UINT16: 16, Kind.UINT32: 32, Kind.UINT64: 64}
_NS_PER_DAY = 86_400 * 10**9
_EPOCH = datetime.datetime(1970, 1, 1)


def random_value(dtype: DataType, nullable: bool, rng: random.Random) -> Any:
    """A random Python value of ``dtype``, as ``pa.array`` accepts it (None when nullable)."""
    if nullable and rng.random() < 0.2:
        return None
    if isinstance(dtype, t.Primitive):
        return _random_primitive(dtype.kind, rng)
    if isinstance(dtype, t.Decimal):
        digits = tuple(rng.randrange(10) for _ in range(rng.randint(1, dtype.precision)))
        return decimal.Decimal((rng.randrange(2), digits, -dtype.scale))
    if isinstance(dtype, t.Timestamp) and dtype.unit == "ns":
        return rng.choice([-(2**63) + 1, 2**63 - 1, rng.randint(-(2**62), 2**62)])
    if isinstance(dtype, t.Timestamp):
        local = _EPOCH + datetime.timedelta(microseconds=rng.randint(-(2**60), 2**60) // 512)
        if dtype.timezone is None:
            return local
        return local.replace(tzinfo=datetime.UTC)
    if isinstance(dtype, t.Array):
        return [
            random_value(dtype.items, dtype.items_nullable, rng) for _ in range(rng.randint(0, 3))
        ]
    if isinstance(dtype, t.Map):
        drawn = [random_value(dtype.keys, False, rng) for _ in range(rng.randint(0, 3))]
        keys = list(dict.fromkeys(drawn)) if dtype.keys != t.string() else sorted(set(drawn))
        if dtype.keys != t.string():
            return [(k, random_value(dtype.values, dtype.values_nullable, rng)) for k in keys]
        return {k: random_value(dtype.values, dtype.values_nullable, rng) for k in sorted(keys)}
    if isinstance(dtype, t.Struct):
        return {f.name: random_value(f.type, f.nullable, rng) for f in dtype.fields}
    if isinstance(dtype, t.Enum):
        return rng.choice(dtype.symbols)
    raise TypeError(dtype)


def _random_primitive(kind: Kind, rng: random.Random) -> Any:
    if kind in _INTEGER_BITS:
        bits = _INTEGER_BITS[kind]
        return rng.choice([-(2 ** (bits - 1)), 2 ** (bits - 1) - 1, rng.randint(-99, 99)])
    if kind in _UNSIGNED_BITS:
        return rng.choice([0, 2 ** _UNSIGNED_BITS[kind] - 1, rng.randint(0, 99)])
    if kind == Kind.FLOAT16:
        return rng.choice([0.5, -65504.0, 65504.0, 6e-8, float("inf"), float("nan")])
    if kind == Kind.TIME_NS:
        return rng.choice([0, _NS_PER_DAY - 1, rng.randrange(_NS_PER_DAY)])
    if kind == Kind.NULL:
        return None
    if kind == Kind.BOOLEAN:
        return rng.random() < 0.5
    if kind == Kind.FLOAT32:
        # A float32 value, so that writing it as 32 bits keeps it exactly.
        return struct.unpack("f", struct.pack("f", rng.uniform(-1e6, 1e6)))[0]
    if kind == Kind.FLOAT64:
        return rng.uniform(-1e300, 1e300)
    if kind == Kind.STRING:
        return "".join(rng.choice("aé€😀 \n\"'") for _ in range(rng.randint(0, 5)))
    if kind == Kind.BYTES:
        return rng.randbytes(rng.randint(0, 5))
    if kind == Kind.DATE:
        return datetime.date.fromordinal(rng.randint(1, 3652059))
    if kind == Kind.TIME:
        return datetime.time(
            rng.randrange(24), rng.randrange(60), rng.randrange(60), rng.randrange(10**6)
        )
    if kind == Kind.UUID:
        return rng.randbytes(16)
    if kind == Kind.JSON:
        return json.dumps({"n": rng.randint(0, 9), "s": [None, True, "x"]})
    raise TypeError(kind)

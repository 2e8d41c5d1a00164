"""Hypothesis strategies for random omconnect schemas, random rows that fit them, and the
comparison that tells whether rows came back from a round trip unchanged.

The strategies and row makers are shared by the mapping tests (``tests/schemas``), the
converter round trips (``tests/converters``) and the end-to-end type tests (``tests/e2e``), so
every layer is exercised with the same types and the same awkward values (extreme integers,
NaN, nanosecond instants, names Avro must sanitise).
"""

from __future__ import annotations

import datetime
import decimal
import json
import random
import struct
from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from hypothesis import strategies as st

from omconnect.schemas import types as t
from omconnect.schemas.arrow import rows_to_arrow
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


def data_types(
    name_strategy: st.SearchStrategy[str] = names, lists_and_maps: bool = True
) -> st.SearchStrategy[DataType]:
    """Any omconnect type, nested a few levels deep; only structs nest when not
    ``lists_and_maps``."""
    leaves = primitive_types | decimal_types | timestamp_types | enum_types(name_strategy)

    def nest(children: st.SearchStrategy[DataType]) -> st.SearchStrategy[DataType]:
        structs = st.builds(
            t.Struct, fields_of(children, name_strategy, 3), st.none() | name_strategy
        )
        if not lists_and_maps:
            return structs
        return (
            st.builds(t.Array, children, st.booleans())
            | st.builds(t.Map, children, st.booleans(), key_types)
            | structs
        )

    return st.recursive(leaves, nest, max_leaves=6)


def holds_type(dtype: DataType, wanted: Callable[[DataType], bool]) -> bool:
    """Whether ``dtype`` or a type nested in it (items, map keys and values, struct fields)
    is ``wanted``."""
    if wanted(dtype):
        return True
    if isinstance(dtype, t.Array):
        return holds_type(dtype.items, wanted)
    if isinstance(dtype, t.Map):
        return holds_type(dtype.keys, wanted) or holds_type(dtype.values, wanted)
    if isinstance(dtype, t.Struct):
        return any(holds_type(f.type, wanted) for f in dtype.fields)
    return False


def is_list_or_map(dtype: DataType) -> bool:
    return isinstance(dtype, t.Array | t.Map)


@st.composite
def schemas(
    draw: st.DrawFn, name_strategy: st.SearchStrategy[str] = names, lists_and_maps: bool = True
) -> Schema:
    """A random schema: nested types, random nullability, docs, version and key fields (with
    lists and maps only when ``lists_and_maps``)."""
    fields = draw(fields_of(data_types(name_strategy, lists_and_maps), name_strategy, 5))
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
    """A random Python value of ``dtype``, as ``pa.array`` accepts it (None when nullable).

    Floats of every width are sometimes NaN or an infinity.
    """
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
        entries = [(k, random_value(dtype.values, dtype.values_nullable, rng)) for k in keys]
        return entries if dtype.keys != t.string() else dict(entries)
    if isinstance(dtype, t.Struct):
        return {f.name: random_value(f.type, f.nullable, rng) for f in dtype.fields}
    if isinstance(dtype, t.Enum):
        return rng.choice(dtype.symbols)
    raise TypeError(dtype)


def random_rows(schema: Schema, count: int, rng: random.Random) -> list[dict[str, Any]]:
    """``count`` random rows of ``schema`` (see ``random_value``)."""
    return [
        {f.name: random_value(f.type, f.nullable, rng) for f in schema.fields} for _ in range(count)
    ]


def random_batch(schema: Schema, count: int, rng: random.Random) -> pa.RecordBatch:
    """``count`` random rows of ``schema`` as the Arrow batch of its exact Arrow schema."""
    return rows_to_arrow(random_rows(schema, count, rng), schema)


_SPECIAL_FLOATS = [float("inf"), float("-inf"), float("nan"), -0.0]


def _random_primitive(kind: Kind, rng: random.Random) -> Any:
    if kind in _INTEGER_BITS:
        bits = _INTEGER_BITS[kind]
        return rng.choice([-(2 ** (bits - 1)), 2 ** (bits - 1) - 1, rng.randint(-99, 99)])
    if kind in _UNSIGNED_BITS:
        return rng.choice([0, 2 ** _UNSIGNED_BITS[kind] - 1, rng.randint(0, 99)])
    if kind == Kind.FLOAT16:
        return rng.choice([0.5, -65504.0, 65504.0, 6e-8, *_SPECIAL_FLOATS])
    if kind == Kind.TIME_NS:
        return rng.choice([0, _NS_PER_DAY - 1, rng.randrange(_NS_PER_DAY)])
    if kind == Kind.NULL:
        return None
    if kind == Kind.BOOLEAN:
        return rng.random() < 0.5
    if kind in (Kind.FLOAT32, Kind.FLOAT64) and rng.random() < 0.1:
        return rng.choice(_SPECIAL_FLOATS)
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


def comparable(array: pa.Array) -> pa.Array:
    """``array`` in a form where ``equals`` means "same values": dictionary-encoded values
    decoded (a dictionary's order is an encoding choice, not a value), extension values as
    their storage, and floats as their bits with every NaN one NaN (``equals`` holds NaN
    unequal to itself; the bits also tell -0.0 from 0.0). Nested values are rebuilt from
    their children, so the type of the result is not ``array``'s: compare types apart."""
    kind = array.type
    if pa.types.is_dictionary(kind):
        return comparable(array.dictionary_decode())
    if isinstance(kind, pa.BaseExtensionType):
        return comparable(array.storage)
    if pa.types.is_floating(kind):
        bits = pa.uint16() if pa.types.is_float16(kind) else pa.uint32()
        bits = pa.uint64() if pa.types.is_float64(kind) else bits
        canonical_nan = pa.array([float("nan")], kind).view(bits)[0]
        return pc.if_else(pc.is_nan(array), canonical_nan, array.view(bits))
    if pa.types.is_struct(kind):
        children = [comparable(array.field(i)) for i in range(kind.num_fields)]
        names = [kind.field(i).name for i in range(kind.num_fields)]
        return pa.StructArray.from_arrays(children, names=names, mask=array.is_null())
    if pa.types.is_map(kind):
        offsets, start, length = _own_children(array)
        keys = comparable(array.keys.slice(start, length))
        items = comparable(array.items.slice(start, length))
        return pa.MapArray.from_arrays(offsets, keys, items, mask=array.is_null())
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        offsets, start, length = _own_children(array)
        items = comparable(array.values.slice(start, length))
        return type(array).from_arrays(offsets, items, mask=array.is_null())
    return array


def _own_children(array: pa.ListArray | pa.MapArray) -> tuple[pa.Array, int, int]:
    """The offsets of a (maybe sliced) list array counted from 0, and the window of its
    child values they cover (Arrow rebuilds lists with nulls only from such offsets)."""
    offsets = array.offsets
    start, end = offsets[0].as_py(), offsets[-1].as_py()
    return pc.subtract(offsets, pa.scalar(start, offsets.type)), start, end - start


def first_difference(got: pa.RecordBatch, expected: pa.RecordBatch) -> str | None:
    """What differs first between two batches (column names, Arrow types and nullability,
    then values, as ``comparable`` sees them), or None when they are the same. Schema
    metadata is not looked at: compare it apart where it matters."""
    if got.schema.names != expected.schema.names:
        return f"columns {got.schema.names}, expected {expected.schema.names}"
    for name in expected.schema.names:
        have, want = got.schema.field(name), expected.schema.field(name)
        if (have.type, have.nullable) != (want.type, want.nullable):
            return f"column {name!r}: type {_typed(have)}, expected {_typed(want)}"
    if got.num_rows != expected.num_rows:
        return f"{got.num_rows} rows, expected {expected.num_rows}"
    for name in expected.schema.names:
        have_values, want_values = got.column(name), expected.column(name)
        if _same_values(have_values, want_values):
            continue
        # Only on a failure: find the first row that differs, to show it.
        rows = range(expected.num_rows)
        row = next(
            (i for i in rows if not _same_values(have_values.slice(i, 1), want_values.slice(i, 1))),
            None,
        )
        if row is None:
            return f"column {name!r}: {have_values}, expected {want_values}"
        return (
            f"column {name!r}, row {row}: {have_values.slice(row, 1)}, "
            f"expected {want_values.slice(row, 1)}"
        )
    return None


def _same_values(have: pa.Array, want: pa.Array) -> bool:
    return bool(comparable(have).equals(comparable(want)))


def _typed(f: pa.Field) -> str:
    return f"{f.type}" + ("" if f.nullable else " not null")

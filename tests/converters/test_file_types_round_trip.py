"""Types Parquet files carry (unsigned integers, float16, ns times and timestamps, the null
type) through the ``avro`` converter and back: same Arrow types, same values, and bodies that
fastavro reads as the right values."""

from __future__ import annotations

import io
import itertools
from pathlib import Path

import fastavro
import numpy as np
import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from omconnect.codecs.avro import encode_batch
from omconnect.runtime.converters.avro import AvroConverter
from omconnect.runtime.state.schema_registry import SqliteSchemaRegistry
from omconnect.schemas.arrow import from_arrow_schema
from omconnect.schemas.avro import to_avro_schema
from omconnect.schemas.record import RecordBatch

_NS_PER_DAY = 86_400 * 10**9
_RUNS = itertools.count()  # one registry per example: each draws an unrelated schema

# Arrow type -> values (as numpy-free Python ints/floats; ns types as their int64 counts).
_COLUMNS: dict[str, tuple[pa.DataType, st.SearchStrategy[object]]] = {
    "u8": (pa.uint8(), st.integers(0, 2**8 - 1)),
    "u16": (pa.uint16(), st.integers(0, 2**16 - 1)),
    "u32": (pa.uint32(), st.integers(0, 2**32 - 1)),
    "u64": (pa.uint64(), st.sampled_from([0, 2**63, 2**64 - 1]) | st.integers(0, 2**64 - 1)),
    "f16": (pa.float16(), st.floats(width=16, allow_nan=True)),
    "t_ns": (pa.time64("ns"), st.integers(0, _NS_PER_DAY - 1)),
    "ts_ns": (pa.timestamp("ns", "UTC"), st.integers(-(2**63) + 1, 2**63 - 1)),
    "ts_ns_local": (pa.timestamp("ns"), st.integers(-(2**63) + 1, 2**63 - 1)),
    "nothing": (pa.null(), st.none()),
}


def _column(kind: pa.DataType, values: list[object]) -> pa.Array:
    if pa.types.is_float16(kind):
        mask = np.array([v is None for v in values], dtype=np.bool_)
        floats = np.array([0.0 if v is None else v for v in values], dtype=np.float16)
        return pa.array(floats, kind, mask=mask)
    if pa.types.is_temporal(kind):
        return pa.array(values, pa.int64()).cast(kind)
    return pa.array(values, kind)


@st.composite
def file_batches(draw: st.DrawFn) -> pa.RecordBatch:
    names = draw(st.lists(st.sampled_from(sorted(_COLUMNS)), min_size=1, max_size=5, unique=True))
    rows = draw(st.integers(0, 8))
    fields, columns = [], []
    for name in names:
        kind, values = _COLUMNS[name]
        nullable = kind == pa.null() or draw(st.booleans())
        drawn = draw(
            st.lists(st.none() | values if nullable else values, min_size=rows, max_size=rows)
        )
        fields.append(pa.field(name, kind, nullable))
        columns.append(_column(kind, drawn))
    flat = pa.RecordBatch.from_arrays(columns, schema=pa.schema(fields))
    # The same columns again inside a struct, so the nested record path is covered too.
    nested = pa.StructArray.from_arrays(flat.columns, fields=list(flat.schema))
    return pa.RecordBatch.from_arrays(
        [*flat.columns, nested], schema=pa.schema([*fields, pa.field("inner", nested.type)])
    )


def _same(left: pa.Array, right: pa.Array) -> bool:
    """Equal values and type, NaN equal to NaN."""
    if left.type != right.type:
        return False
    if pa.types.is_struct(left.type):
        return left.is_valid().equals(right.is_valid()) and all(
            _same(left.field(i), right.field(i)) for i in range(left.type.num_fields)
        )
    if pa.types.is_floating(left.type):
        left, right = left.cast(pa.float32()), right.cast(pa.float32())
        return bool(
            np.array_equal(
                left.to_numpy(zero_copy_only=False), right.to_numpy(zero_copy_only=False), True
            )
        )
    return left.equals(right)


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(file_batches())
def test_file_types_round_trip_through_the_avro_converter(
    tmp_path: Path, values: pa.RecordBatch
) -> None:
    registry = SqliteSchemaRegistry(tmp_path / f"registry-{next(_RUNS)}.db")
    converter = AvroConverter(registry)
    schema = from_arrow_schema(values.schema, "files")
    encoded = converter.encode("files", RecordBatch(values=values, schema=schema))
    assert not encoded.failed
    decoded = converter.decode("files", encoded.values, None)
    if values.num_rows == 0:
        return
    (group,) = decoded.groups
    assert group.schema == schema
    for name in values.schema.names:
        assert _same(group.values.column(name), values.column(name)), name


def test_other_readers_get_the_values() -> None:
    registry_values = pa.RecordBatch.from_pydict(
        {
            "u64": pa.array([2**64 - 1, 0], pa.uint64()),
            "ts": pa.array([2**63 - 1, -1], pa.int64()).cast(pa.timestamp("ns", "UTC")),
            "f16": pa.array(np.array([0.5, -65504.0], dtype=np.float16)),
        }
    )
    schema = from_arrow_schema(registry_values.schema, "files")
    avro = to_avro_schema(schema)
    parsed = fastavro.parse_schema(avro)
    bodies = encode_batch(registry_values, avro).to_pylist()
    read = [fastavro.schemaless_reader(io.BytesIO(body), parsed, None) for body in bodies]
    assert [int(r["u64"]) for r in read] == [2**64 - 1, 0]
    assert [r["f16"] for r in read] == [0.5, -65504.0]
    assert avro["fields"][1]["type"][1]["logicalType"] == "timestamp-nanos"

"""The raw converter: bodies are a single column's bytes."""

from __future__ import annotations

import pyarrow as pa
import pytest

from omconnect.connectors.api.errors import ConfigError
from omconnect.runtime.converters.raw import RawConverter
from omconnect.schemas.arrow import from_arrow_schema
from omconnect.schemas.record import RecordBatch


def batch_of(values: pa.RecordBatch, key_fields: tuple[str, ...] = ()) -> RecordBatch:
    return RecordBatch(values, from_arrow_schema(values.schema, name="t", key_fields=key_fields))


def test_binary_and_string_columns_become_bodies_as_they_are() -> None:
    blobs = [b"\x00\xff", b"", None, "é".encode()]
    encoded = RawConverter().encode("t", batch_of(pa.record_batch({"b": blobs})))
    assert encoded.values.to_pylist() == blobs
    assert encoded.keys is None
    text = RawConverter().encode("t", batch_of(pa.record_batch({"s": ["é", None]})))
    assert text.values.to_pylist() == ["é".encode(), None]


def test_explicit_single_column_keys() -> None:
    values = pa.record_batch({"v": [b"1", b"2"]})
    batch = RecordBatch(
        values,
        from_arrow_schema(values.schema, name="t"),
        keys=pa.record_batch({"k": ["a", "b"]}),
    )
    encoded = RawConverter().encode("t", batch)
    assert encoded.keys is not None and encoded.keys.to_pylist() == [b"a", b"b"]


def test_decode_gives_one_value_column() -> None:
    bodies = pa.array([b"x", None, b"\x01"], pa.binary())
    decoded = RawConverter().decode("topic", bodies, pa.array([b"k1", b"k2", None]))
    [group] = decoded.groups
    rows, values, schema, keys = group.rows, group.values, group.schema, group.keys
    assert rows.to_pylist() == [0, 1, 2]
    assert values.schema.names == ["value"]
    assert values.column(0).to_pylist() == [b"x", None, b"\x01"]
    assert schema.name == "topic" and str(schema.type_of("value")) == "bytes"
    assert keys is not None and keys.column("key").to_pylist() == [b"k1", b"k2", None]
    assert decoded.failed == {}


@pytest.mark.parametrize(
    "values",
    [
        pa.record_batch({"a": [b"x"], "b": [b"y"]}),
        pa.record_batch({"n": [1]}),
    ],
)
def test_anything_else_is_refused_clearly(values: pa.RecordBatch) -> None:
    with pytest.raises(ConfigError, match="single binary or string column; found"):
        RawConverter().encode("t", batch_of(values))


def test_non_bytes_keys_are_refused() -> None:
    values = pa.record_batch({"id": [1], "v": [b"x"]})
    batch = RecordBatch(values.select(["v"]), from_arrow_schema(values.select(["v"]).schema, "t"))
    batch.keys = values.select(["id"])
    with pytest.raises(ConfigError, match="keys with a single binary or string column"):
        RawConverter().encode("t", batch)


def test_deletes_are_null_bodies_and_null_bodies_with_keys_decode_as_deletes() -> None:
    values = pa.record_batch({"v": [b"1", b"stale", b"3"]})
    batch = RecordBatch(
        values,
        from_arrow_schema(values.schema, "t"),
        keys=pa.record_batch({"k": ["a", "b", "c"]}),
        tombstones=pa.array([False, True, False]),
    )
    encoded = RawConverter().encode("t", batch)
    assert encoded.failed == {}
    assert encoded.values.to_pylist() == [b"1", None, b"3"]
    assert encoded.keys is not None and encoded.keys.to_pylist() == [b"a", b"b", b"c"]
    decoded = RawConverter().decode("t", encoded.values, pa.array([b"a", b"b", None]))
    assert decoded.failed == {}
    [group] = decoded.groups
    assert group.tombstones is not None and group.tombstones.to_pylist() == [False, True, False]
    assert group.keys is not None and group.keys.column("key").to_pylist() == [b"a", b"b", None]
    no_deletes = RawConverter().decode("t", pa.array([b"x", None]), pa.array([b"a", None]))
    assert no_deletes.groups[0].tombstones is None  # a null body without a key is a null value

"""The vectorised Avro encoder writes exactly what fastavro writes, and the decoder reads
fastavro's bodies back into the same Arrow values."""

from __future__ import annotations

import datetime as dt
import decimal
import io
from typing import Any

import fastavro
import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings

from omconnect.codecs.avro import decode_batch, encode_batch, encode_batch_lenient
from omconnect.runtime.converters.avro import header
from tests.support.avro_batch_strategies import (
    COLUMN_KINDS,
    batches,
    fastavro_rows,
)

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def fastavro_bodies(batch: pa.RecordBatch, schema: dict[str, Any], prefix: bytes = b"") -> list:
    parsed = fastavro.parse_schema(schema)
    bodies = []
    for row in fastavro_rows(batch):
        out = io.BytesIO()
        out.write(prefix)
        fastavro.schemaless_writer(out, parsed, row)
        bodies.append(out.getvalue())
    return bodies


@FAST
@given(batches(COLUMN_KINDS))
def test_encodes_byte_identical_to_fastavro(case) -> None:
    batch, schema = case
    prefix = header(7)
    assert encode_batch(batch, schema, prefix).to_pylist() == fastavro_bodies(batch, schema, prefix)


@FAST
@given(batches(COLUMN_KINDS))
def test_decodes_fastavro_bodies_to_the_same_values(case) -> None:
    batch, schema = case
    bodies = pa.array(fastavro_bodies(batch, schema, header(3)), pa.binary())
    decoded = decode_batch(bodies, schema, batch.schema, skip=5)
    assert decoded.schema == batch.schema
    assert decoded.to_pylist() == batch.to_pylist()


@FAST
@given(batches(COLUMN_KINDS, max_rows=20))
def test_slices_encode_like_whole_batches(case) -> None:
    batch, schema = case
    sliced = batch.slice(batch.num_rows // 3, batch.num_rows // 2)
    assert encode_batch(sliced, schema).to_pylist() == fastavro_bodies(sliced, schema)


def test_fastavro_decimal_lengths_for_negative_powers_of_two() -> None:
    values = [decimal.Decimal(v) for v in (-128, -129, 127, 128, 0, -1, -(10**38) + 1, 10**38 - 1)]
    batch = pa.RecordBatch.from_pydict({"d": pa.array(values, pa.decimal128(38, 0))})
    schema = {
        "type": "record",
        "name": "r",
        "fields": [
            {
                "name": "d",
                "type": {"type": "bytes", "logicalType": "decimal", "precision": 38, "scale": 0},
            }
        ],
    }
    encoded = encode_batch(batch, schema).to_pylist()
    assert encoded[0] == b"\x04\xff\x80"  # fastavro's length, not the minimal one
    assert encoded == fastavro_bodies(batch, schema)


def _decimal_schema(precision: int) -> dict:
    decimal_type = {"type": "bytes", "logicalType": "decimal", "precision": precision, "scale": 0}
    return {"type": "record", "name": "r", "fields": [{"name": "d", "type": decimal_type}]}


def _edges_of_18_digit_decimals() -> pa.RecordBatch:
    """The edges of every byte count, both signs, and 18 digits."""
    edges = [0, 10**18 - 1, -(10**18) + 1]
    for k in range(1, 9):
        edges += [
            (1 << (8 * k - 1)) - 1,
            1 << (8 * k - 1),
            -(1 << (8 * k - 1)),
            -(1 << (8 * k - 1)) - 1,
        ]
    values = [decimal.Decimal(v) for v in edges if abs(v) < 10**18]
    return pa.RecordBatch.from_pydict({"d": pa.array(values, pa.decimal128(18, 0))})


def test_decimals_of_at_most_18_digits_encode_like_fastavro_at_every_byte_count() -> None:
    # That path works in int64.
    batch = _edges_of_18_digit_decimals()
    assert encode_batch(batch, _decimal_schema(18)).to_pylist() == fastavro_bodies(
        batch, _decimal_schema(18)
    )


def test_decimals_of_at_most_18_digits_decode_at_every_byte_count() -> None:
    batch = _edges_of_18_digit_decimals()
    bodies = pa.array(fastavro_bodies(batch, _decimal_schema(18)), pa.binary())
    assert decode_batch(bodies, _decimal_schema(18), batch.schema).equals(batch)


def test_an_18_digit_decimal_too_wide_to_decode_fails_its_row() -> None:
    from omconnect.codecs.avro import decode_batch_lenient

    arrow = pa.schema([pa.field("d", pa.decimal128(18, 0), nullable=False)])

    def decoded(*values: bytes) -> tuple[list[object], list[int]]:
        bodies = pa.array([bytes([2 * len(v)]) + v for v in values], pa.binary())
        batch, failed = decode_batch_lenient(bodies, _decimal_schema(18), arrow)
        return batch.column(0).to_pylist(), sorted(failed)

    def signed(value: int, size: int) -> bytes:
        return value.to_bytes(size, "big", signed=True)

    # 10**18 and -(10**18) have 19 digits; the rows around them decode.
    assert decoded(signed(7, 1), signed(10**18, 8), signed(-(10**18), 8), signed(-5, 8)) == (
        [decimal.Decimal(7), decimal.Decimal(-5)],
        [1, 2],
    )
    # A value padded with its sign to 9 bytes (a writer other than fastavro may) decodes.
    assert decoded(signed(-5, 9), signed(10**18 - 1, 8)) == (
        [decimal.Decimal(-5), decimal.Decimal(10**18 - 1)],
        [],
    )


def test_an_18_digit_decimal_column_refuses_values_beyond_int64_rather_than_truncate() -> None:
    # Words that no valid decimal(18, 0) holds: 2**64 (the low limb 0) and 10**18.
    words = np.array([[5, 0], [0, 1], [10**18, 0]], dtype="<u8")
    array = pa.Array.from_buffers(pa.decimal128(18, 0), 3, [None, pa.py_buffer(words)])
    bodies, failed = encode_batch_lenient(
        pa.RecordBatch.from_arrays([array], ["d"]), _decimal_schema(18)
    )
    assert sorted(failed) == [1, 2]
    assert bodies.to_pylist()[0] == b"\x02\x05"


def test_null_in_non_nullable_field_fails_that_row_only() -> None:
    batch = pa.RecordBatch.from_pydict(
        {"id": pa.array([1, None, 3], pa.int64()), "name": pa.array(["a", "b", None])}
    )
    schema = {
        "type": "record",
        "name": "r",
        "fields": [{"name": "id", "type": "long"}, {"name": "name", "type": "string"}],
    }
    bodies, failed = encode_batch_lenient(batch, schema)
    assert sorted(failed) == [1, 2]
    assert "id" in str(failed[1]) and "name" in str(failed[2])
    assert bodies.to_pylist() == [fastavro_bodies(batch.slice(0, 1), schema)[0], None, None]


def test_decimal_wider_than_precision_fails_that_row() -> None:
    batch = pa.RecordBatch.from_pydict(
        {"d": pa.array([decimal.Decimal("1.5"), decimal.Decimal("123.4")], pa.decimal128(4, 1))}
    )
    schema = {
        "type": "record",
        "name": "r",
        "fields": [
            {
                "name": "d",
                "type": {"type": "bytes", "logicalType": "decimal", "precision": 3, "scale": 1},
            }
        ],
    }
    bodies, failed = encode_batch_lenient(batch, schema)
    assert list(failed) == [1]
    assert bodies[0].as_py() == fastavro_bodies(batch.slice(0, 1), schema)[0]


def test_timestamps_of_other_units_are_written_in_micros() -> None:
    moment = dt.datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=dt.UTC)
    schema = {
        "type": "record",
        "name": "r",
        "fields": [{"name": "t", "type": {"type": "long", "logicalType": "timestamp-micros"}}],
    }
    micros = pa.RecordBatch.from_pydict({"t": pa.array([moment], pa.timestamp("us", "UTC"))})
    nanos = pa.RecordBatch.from_pydict({"t": pa.array([moment], pa.timestamp("ns", "UTC"))})
    millis = pa.RecordBatch.from_pydict({"t": pa.array([moment], pa.timestamp("ms", "UTC"))})
    assert encode_batch(nanos, schema) == encode_batch(micros, schema)
    assert encode_batch(millis, schema) == pa.array(
        fastavro_bodies(
            pa.RecordBatch.from_pydict({"t": [moment.replace(microsecond=123000)]}), schema
        ),
        pa.binary(),
    )


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"\x02", "past the end"),  # string length 1 with no byte after it
        (b"\x02ab", "left after"),  # one byte too many
        (b"\x7f", "past the end"),  # length -64
        (b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", "varint"),
        (b"", "varint"),
    ],
)
def test_corrupt_bodies_are_reported_with_their_reason(body: bytes, reason: str) -> None:
    from omconnect.codecs.avro import CorruptBodiesError, decode_batch_lenient

    schema = {"type": "record", "name": "r", "fields": [{"name": "s", "type": "string"}]}
    arrow = pa.schema([pa.field("s", pa.string(), nullable=False)])
    bodies = pa.array([b"\x02a", body, b"\x00"], pa.binary())
    batch, failed = decode_batch_lenient(bodies, schema, arrow)
    assert list(failed) == [1]
    assert reason in str(failed[1])
    assert batch.column(0).to_pylist() == ["a", ""]
    with pytest.raises(CorruptBodiesError) as raised:
        decode_batch(bodies, schema, arrow)
    assert list(raised.value.rows) == [1]


_LISTS = {
    "type": "record",
    "name": "r",
    "fields": [
        {"name": "xs", "type": {"type": "array", "items": "long"}},
        {"name": "m", "type": {"type": "map", "values": "int"}},
        {"name": "n", "type": {"type": "array", "items": "null"}},
    ],
}
_LISTS_ARROW = pa.schema(
    [
        pa.field("xs", pa.list_(pa.int64()), nullable=False),
        pa.field("m", pa.map_(pa.string(), pa.int32()), nullable=False),
        pa.field("n", pa.list_(pa.null()), nullable=False),
    ]
)


def test_array_blocks_as_other_writers_cut_them_decode() -> None:
    """Several blocks per array, and blocks with a negative count followed by their byte size
    (as Java writers emit them), read like one block."""
    bodies = pa.array(
        [
            # xs: [1, 2] then [3]; m: {"a": 1} in a sized block; n: 3 nulls in two blocks
            b"\x04\x02\x04\x02\x06\x00" + b"\x01\x06\x02a\x02\x00" + b"\x04\x02\x00",
            b"\x00\x00\x00",
        ],
        pa.binary(),
    )
    batch = decode_batch(bodies, _LISTS, _LISTS_ARROW)
    assert batch.to_pylist() == [
        {"xs": [1, 2, 3], "m": [("a", 1)], "n": [None, None, None]},
        {"xs": [], "m": [], "n": []},
    ]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"\x06\x02\x04", "more items than the body holds"),  # 3 longs, 2 bytes left
        (b"\x04\x02\x04", "varint"),  # no closing block
        (b"\x00\x02\x08ab\x02", "past the end"),  # a map key that runs out
        (b"\x00\x00\x80\x80\x80\x80\x10\x00", "more items"),  # 2**31 nulls
    ],
)
def test_corrupt_array_blocks_fail_their_body_alone(body: bytes, reason: str) -> None:
    from omconnect.codecs.avro import decode_batch_lenient

    good = b"\x02\x0a\x00\x00\x00"
    bodies = pa.array([good, body, good], pa.binary())
    batch, failed = decode_batch_lenient(bodies, _LISTS, _LISTS_ARROW)
    assert list(failed) == [1]
    assert reason in str(failed[1])
    assert batch.column("xs").to_pylist() == [[5], [5]]


def test_invalid_utf8_and_bad_union_branch_are_corrupt() -> None:
    from omconnect.codecs.avro import decode_batch_lenient

    schema = {
        "type": "record",
        "name": "r",
        "fields": [{"name": "s", "type": ["null", "string"]}, {"name": "n", "type": "int"}],
    }
    arrow = pa.schema([("s", pa.string()), ("n", pa.int32())])
    bodies = pa.array([b"\x02\x02\xff\x02", b"\x04\x02", b"\x00\x04", b"\x02\x02h\x06"])
    batch, failed = decode_batch_lenient(bodies, schema, arrow)
    assert sorted(failed) == [0, 1]
    assert batch.to_pylist() == [{"s": None, "n": 2}, {"s": "h", "n": 3}]


def test_envelope_with_a_shared_named_struct_matches_fastavro() -> None:
    from omconnect.schemas import types as t
    from omconnect.schemas.arrow import rows_to_arrow
    from omconnect.schemas.avro import to_avro_schema
    from omconnect.schemas.schema import Schema
    from omconnect.schemas.types import Field

    value = t.struct(
        Field("id", t.int64(), False),
        Field("name", t.string()),
        Field("amount", t.decimal(10, 2)),
        name="Value",
    )
    pair = t.struct(Field("old", value, False), Field("new", value), name="Pair")
    envelope = Schema(
        "db.inventory.items",
        (
            Field("before", value),
            Field("after", value),
            Field("op", t.string(), False),
            Field("changes", t.array(pair, False)),  # the per-row path, with Value twice
        ),
    )
    avro = to_avro_schema(envelope)
    assert avro["fields"][1]["type"] == ["null", "db.inventory.Value"]
    one = {"id": 1, "name": "a", "amount": decimal.Decimal("1.50")}
    two = {"id": 2, "name": None, "amount": None}
    rows = [
        {"before": None, "after": one, "op": "c", "changes": []},
        {"before": one, "after": two, "op": "u", "changes": [{"old": one, "new": two}]},
        {"before": two, "after": None, "op": "d", "changes": None},
    ]
    batch = rows_to_arrow(rows, envelope)
    expected = fastavro_bodies(batch, avro, header(9))
    assert encode_batch(batch, avro, header(9)).to_pylist() == expected
    decoded = decode_batch(pa.array(expected, pa.binary()), avro, batch.schema, skip=5)
    assert decoded.to_pylist() == batch.to_pylist()


def test_a_few_very_long_arrays_among_short_ones_decode_to_the_same_values() -> None:
    """Rows whose arrays hold thousands of items are read apart from the others (row by row):
    every type still comes back exact, and rows keep their order."""
    from omconnect.schemas.arrow import from_arrow_schema
    from omconnect.schemas.avro import to_avro_schema

    long = 3000
    rows = [
        {"u": [2**64 - 1, 0], "m": [(1, "a")], "t": [5]},
        {"u": list(range(long)), "m": [(i, str(i)) for i in range(long)], "t": list(range(long))},
        {"u": None, "m": [], "t": []},
    ]
    schema = pa.schema(
        [
            ("u", pa.list_(pa.uint64())),
            ("m", pa.map_(pa.int64(), pa.string())),
            ("t", pa.list_(pa.timestamp("ns"))),
        ]
    )
    batch = pa.RecordBatch.from_pylist(rows, schema=schema)
    avro = to_avro_schema(from_arrow_schema(schema, "r"))
    decoded = decode_batch(encode_batch(batch, avro), avro, schema)
    assert decoded.equals(batch)

"""The codec's fast paths keep fastavro's bytes: fixed-width runs (varints of one length, text
of one length), wide and narrow varints, ASCII and non-ASCII text, and large batches decoded
piece by piece."""

from __future__ import annotations

import io
from typing import Any

import fastavro
import numpy as np
import pyarrow as pa
import pytest

from omconnect.codecs.avro import bodies as body_pieces
from omconnect.codecs.avro import (
    decode_batch,
    decode_batch_lenient,
    encode_batch,
    encode_batch_lenient,
)
from omconnect.codecs.avro.cursor import binary_of_spans
from omconnect.codecs.avro.varints import decode_varints, encode_varints
from omconnect.runtime.converters.avro import header


def _schema(fields: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "record",
        "name": "r",
        "fields": [{"name": name, "type": kind} for name, kind in fields.items()],
    }


def _fastavro_bodies(batch: pa.RecordBatch, schema: dict[str, Any], prefix: bytes) -> list:
    parsed = fastavro.parse_schema(schema)
    bodies = []
    for row in batch.to_pylist():
        out = io.BytesIO()
        out.write(prefix)
        fastavro.schemaless_writer(out, parsed, row)
        bodies.append(out.getvalue())
    return bodies


def _varint_boundaries() -> list[int]:
    """Values whose zigzag varint is just below, at and just above each length change."""
    values = [0, -1, 1, 2**63 - 1, -(2**63)]
    for length in range(1, 10):
        for zigzagged in ((1 << (7 * length)) - 1, 1 << (7 * length)):
            values.append((zigzagged >> 1) ^ -(zigzagged & 1))
    return values


_ARROW_TYPES = {
    "string": pa.string(),
    "bytes": pa.binary(),
    "long": pa.int64(),
    "double": pa.float64(),
    "boolean": pa.bool_(),
}


def _arrow_type(avro: Any) -> pa.DataType:
    """The Arrow type of a primitive field, or of the non-null branch of a nullable one."""
    primitive = next(t for t in avro if t != "null") if isinstance(avro, list) else avro
    return _ARROW_TYPES[primitive]


LAYOUTS: dict[str, tuple[dict[str, Any], dict[str, list[Any]]]] = {
    "text of one length": (
        {"code": "string", "note": ["null", "string"]},
        {"code": ["FR", "US", "DE", "JP"], "note": ["x" * 40, "y" * 40, "z" * 40, "w" * 40]},
    ),
    "text of one length with a null": (
        {"code": "string", "note": ["null", "string"]},
        {"code": ["FR", "US", "DE", "JP"], "note": ["x" * 40, None, "z" * 40, "w" * 40]},
    ),
    "empty text everywhere": (
        {"a": "string", "b": "bytes"},
        {"a": ["", "", ""], "b": [b"", b"", b""]},
    ),
    "non-ASCII text of one byte length": (
        {"a": "string", "b": ["null", "string"]},
        {"a": ["é", "ü", "ß"], "b": ["Zoë", "añb", "€"]},
    ),
    "longs of eight bytes": (
        {"t": "long", "u": ["null", "long"]},
        {"t": [2**50, 2**51, -(2**52)], "u": [2**54, 2**50 + 3, -(2**53)]},
    ),
    "longs of nine and ten bytes": (
        {"t": "long", "u": "long"},
        {"t": [2**56, 2**60, -(2**60)], "u": [2**63 - 1, -(2**63), 2**62]},
    ),
    "longs at every length boundary": (
        {"t": "long", "d": "double", "b": "boolean"},
        {
            "t": _varint_boundaries(),
            "d": [float(i) / 3 for i in range(len(_varint_boundaries()))],
            "b": [i % 2 == 0 for i in range(len(_varint_boundaries()))],
        },
    ),
    "nullable fields all null or all set": (
        {"n": ["null", "long"], "d": ["null", "double"], "s": ["string", "null"]},
        {"n": [None, None, None], "d": [1.5, 2.5, -0.0], "s": ["a", "bc", None]},
    ),
}


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_layouts_encode_like_fastavro_and_decode_back(layout: str) -> None:
    fields, columns = LAYOUTS[layout]
    schema = _schema(fields)
    batch = pa.RecordBatch.from_pydict(
        {name: pa.array(values, _arrow_type(fields[name])) for name, values in columns.items()}
    )
    prefix = header(9)
    bodies = encode_batch(batch, schema, prefix)
    assert bodies.to_pylist() == _fastavro_bodies(batch, schema, prefix)
    decoded = decode_batch(bodies, schema, batch.schema, skip=len(prefix))
    assert decoded.to_pylist() == batch.to_pylist()


def test_varints_match_fastavro_both_ways() -> None:
    values = np.array(_varint_boundaries() * 3, dtype=np.int64)
    matrix, lengths = encode_varints(values)
    used = lengths if lengths is not None else np.full(len(values), matrix.shape[1])
    written = [bytes(matrix[i, : used[i]]) for i in range(len(values))]
    expected = []
    for value in values.tolist():
        out = io.BytesIO()
        fastavro.schemaless_writer(out, "long", value)
        expected.append(out.getvalue())
    assert written == expected
    buffer = np.frombuffer(b"".join(expected) + bytes(16), dtype=np.uint8)
    starts = np.cumsum([0] + [len(b) for b in expected[:-1]]).astype(np.int64)
    decoded, read_lengths, ok = decode_varints(buffer, starts)
    assert ok is None or ok.all()
    assert decoded.tolist() == values.tolist()
    assert np.broadcast_to(read_lengths, len(values)).tolist() == [len(b) for b in expected]


def test_invalid_utf8_among_equal_length_strings_fails_that_body() -> None:
    schema = _schema({"s": "string"})
    arrow = pa.schema([pa.field("s", pa.string(), nullable=False)])
    bodies = pa.array([b"\x04ab", b"\x04\xff\xfe", b"\x04cd"], pa.binary())
    batch, failed = decode_batch_lenient(bodies, schema, arrow)
    assert list(failed) == [1]
    assert "UTF-8" in str(failed[1])
    assert batch.column(0).to_pylist() == ["ab", "cd"]


def test_large_batches_decode_piece_by_piece_with_the_same_failures(monkeypatch) -> None:
    schema = _schema({"id": "long", "name": ["null", "string"], "score": "double"})
    rows = 500
    batch = pa.RecordBatch.from_pydict(
        {
            "id": pa.array(np.arange(rows) * 1_000_003, pa.int64()),
            "name": pa.array([None if i % 7 == 0 else "n" * (i % 13) for i in range(rows)]),
            "score": pa.array(np.linspace(-1, 1, rows)),
        }
    )
    bodies = encode_batch(batch, schema).to_pylist()
    corrupt = {3: bodies[3][:-1], 250: bodies[250] + b"\x00", 499: b"\x80"}
    for row, body in corrupt.items():
        bodies[row] = body
    array = pa.array(bodies, pa.binary())
    whole, whole_failed = decode_batch_lenient(array, schema, batch.schema)
    monkeypatch.setattr(body_pieces, "PIECE_BYTES", 256)
    pieced, pieced_failed = decode_batch_lenient(array, schema, batch.schema)
    assert sorted(pieced_failed) == sorted(whole_failed) == sorted(corrupt)
    assert [str(e) for e in pieced_failed.values()] == [str(e) for e in whole_failed.values()]
    keep = np.ones(rows, dtype=np.bool_)
    keep[list(corrupt)] = False
    assert pieced.equals(whole)
    assert pieced.equals(batch.filter(pa.array(keep)))


def test_large_batches_encode_piece_by_piece_with_the_same_failures(monkeypatch) -> None:
    schema = _schema({"id": "long", "small": "int", "name": "string"})
    rows = 400
    ids = np.arange(rows) * 7_919
    batch = pa.RecordBatch.from_pydict(
        {
            "id": pa.array(ids, pa.int64()),
            "small": pa.array(np.where(ids % 11 == 0, 2**40, ids), pa.int64()),
            "name": pa.array([None if i % 97 == 5 else "é" * (i % 5) for i in range(rows)]),
        }
    )
    whole, whole_failed = encode_batch_lenient(batch, schema, header(2))
    monkeypatch.setattr(body_pieces, "PIECE_BYTES", 300)
    pieced, pieced_failed = encode_batch_lenient(batch, schema, header(2))
    assert len(whole_failed) > 4
    assert {row: str(e) for row, e in pieced_failed.items()} == {
        row: str(e) for row, e in whole_failed.items()
    }
    assert pieced.equals(whole)
    good = [row for row in range(rows) if row not in whole_failed]
    expected = _fastavro_bodies(batch.take(pa.array(good)), schema, header(2))
    assert [pieced[row].as_py() for row in good] == expected


def test_byte_spans_out_of_order_are_refused() -> None:
    buffer = np.frombuffer(b"abcdefgh" + bytes(64), dtype=np.uint8)
    spans = binary_of_spans(buffer, np.array([0, 4], np.int64), np.array([3, 2], np.int64))
    assert spans.to_pylist() == [b"abc", b"ef"]
    with pytest.raises(ValueError, match="out of order"):
        binary_of_spans(buffer, np.array([0, 2], np.int64), np.array([3, 1], np.int64))

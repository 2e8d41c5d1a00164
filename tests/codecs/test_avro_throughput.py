"""Throughput of the vectorised Avro codec against fastavro per row (printed, not asserted).

Run with ``pytest -s`` to see the numbers. The table is the standard 10-column one: bigint,
int, decimal(12,2), double, text, char(2), bool, two timestamptz and a 64-hex-digit text.
"""

from __future__ import annotations

import io
import time
from typing import Any

import fastavro
import numpy as np
import pyarrow as pa

from omconnect.codecs.avro import decode_batch, encode_batch
from omconnect.runtime.converters.avro import header

ROWS = 200_000
FASTAVRO_ROWS = 20_000  # fastavro's rate is steady; a tenth of the rows keeps the test short


def _nullable(avro_type: object) -> list:
    return ["null", avro_type]


SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "bench",
    "fields": [
        {"name": "id", "type": "long"},
        {"name": "qty", "type": _nullable("int"), "default": None},
        {
            "name": "amount",
            "type": _nullable(
                {"type": "bytes", "logicalType": "decimal", "precision": 12, "scale": 2}
            ),
            "default": None,
        },
        {"name": "score", "type": _nullable("double"), "default": None},
        {"name": "name", "type": _nullable("string"), "default": None},
        {"name": "country", "type": _nullable("string"), "default": None},
        {"name": "active", "type": _nullable("boolean"), "default": None},
        {
            "name": "created",
            "type": _nullable({"type": "long", "logicalType": "timestamp-micros"}),
            "default": None,
        },
        {
            "name": "updated",
            "type": _nullable({"type": "long", "logicalType": "timestamp-micros"}),
            "default": None,
        },
        {"name": "digest", "type": _nullable("string"), "default": None},
    ],
}


def bench_table(rows: int) -> pa.RecordBatch:
    rng = np.random.default_rng(7)
    hex_digits = np.frombuffer(b"0123456789abcdef", np.uint8)[rng.integers(0, 16, (rows, 64))]
    names = np.array(["alice", "bob", "charlotte", "dmitri", "eve-marie", "Zoë"])
    micros = 1_700_000_000_000_000 + rng.integers(0, 10**12, rows)
    cents = pa.array(rng.integers(-(10**9), 10**9, rows)).cast(pa.decimal128(19, 0))
    return pa.RecordBatch.from_arrays(
        [
            pa.array(np.arange(rows, dtype=np.int64)),
            pa.array(rng.integers(0, 1000, rows).astype(np.int32)),
            cents.cast(pa.decimal128(12, 2)),
            pa.array(rng.random(rows)),
            pa.array(names[rng.integers(0, len(names), rows)]),
            pa.array(np.array(["FR", "US", "DE"])[rng.integers(0, 3, rows)]),
            pa.array(rng.random(rows) > 0.5),
            pa.array(micros).cast(pa.timestamp("us", "UTC")),
            pa.array(micros + 5).cast(pa.timestamp("us", "UTC")),
            pa.array(hex_digits.view("S64").ravel(), pa.binary(64)).cast(pa.string()),
        ],
        names=[f["name"] for f in SCHEMA["fields"]],
    )


def test_throughput_against_fastavro_per_row() -> None:
    batch = bench_table(ROWS)
    prefix = header(1)

    started = time.perf_counter()
    bodies = encode_batch(batch, SCHEMA, prefix)
    encode_seconds = time.perf_counter() - started
    started = time.perf_counter()
    decoded = decode_batch(bodies, SCHEMA, batch.schema, skip=len(prefix))
    decode_seconds = time.perf_counter() - started
    assert decoded.equals(batch)

    sample = batch.slice(0, FASTAVRO_ROWS)
    parsed = fastavro.parse_schema(SCHEMA)
    started = time.perf_counter()
    written = []
    for row in sample.to_pylist():
        out = io.BytesIO()
        out.write(prefix)
        fastavro.schemaless_writer(out, parsed, row)
        written.append(out.getvalue())
    fastavro_encode = time.perf_counter() - started
    started = time.perf_counter()
    for body in written:
        fastavro.schemaless_reader(io.BytesIO(body[len(prefix) :]), parsed, None)
    fastavro_decode = time.perf_counter() - started
    assert written == bodies.slice(0, FASTAVRO_ROWS).to_pylist()

    print(
        f"\navro {ROWS} rows x 10 columns: "
        f"encode {ROWS / encode_seconds:,.0f} rows/s "
        f"(fastavro per row {FASTAVRO_ROWS / fastavro_encode:,.0f}), "
        f"decode {ROWS / decode_seconds:,.0f} rows/s "
        f"(fastavro per row {FASTAVRO_ROWS / fastavro_decode:,.0f})"
    )

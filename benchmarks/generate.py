"""Generate the ``t1m`` benchmark table deterministically, as CSV (or Parquet), streaming.

``t1m`` is the standard workload of the benchmarks: 1,000,000 rows x 10 columns (bigint
primary key, int, numeric(12,2), float8, text status, char(2) country, bool, two timestamptz,
64-character hex text). ``--rows`` scales it.

    python benchmarks/generate.py --rows 1000000 --out benchmarks/data/t1m.csv
    python benchmarks/generate.py --ddl          # CREATE TABLE for loading it into Postgres

Rows are built one block of ``BLOCK_ROWS`` at a time with numpy and written with pyarrow, so
memory stays flat whatever ``--rows`` is. Each column of each block draws from its own
generator seeded by (seed, block, column): the same seed and row count give the same bytes,
and a smaller ``--rows`` gives a prefix of a larger run.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

DEFAULT_SEED = 20_240_601
DEFAULT_ROWS = 1_000_000
BLOCK_ROWS = 65_536

T1M_SCHEMA = pa.schema(
    [
        pa.field("id", pa.int64(), nullable=False),
        pa.field("quantity", pa.int32(), nullable=False),
        pa.field("amount", pa.decimal128(12, 2), nullable=False),
        pa.field("score", pa.float64(), nullable=False),
        pa.field("status", pa.string(), nullable=False),
        pa.field("country", pa.string(), nullable=False),
        pa.field("active", pa.bool_(), nullable=False),
        pa.field("created_at", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("updated_at", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("payload", pa.string(), nullable=False),
    ]
)

T1M_DDL = """CREATE TABLE t1m (
    id          bigint PRIMARY KEY,
    quantity    integer NOT NULL,
    amount      numeric(12, 2) NOT NULL,
    score       double precision NOT NULL,
    status      text NOT NULL,
    country     char(2) NOT NULL,
    active      boolean NOT NULL,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    payload     text NOT NULL
);
-- COPY t1m FROM STDIN WITH (FORMAT csv, HEADER true);
"""

_STATUSES = pa.array(["new", "paid", "shipped", "delivered", "cancelled", "refunded"])
_STATUS_WEIGHTS = np.array([0.10, 0.25, 0.20, 0.35, 0.07, 0.03])
_COUNTRIES = pa.array(
    ["US", "DE", "FR", "GB", "NL", "ES", "IT", "PL", "SE", "BR", "IN", "JP", "CN", "CA", "AU", "MX"]
)
_EPOCH_2024_US = 1_704_067_200_000_000
_YEAR_US = 365 * 86_400 * 1_000_000
_MONTH_US = 30 * 86_400 * 1_000_000
# Row r of the hex table is the two ASCII characters of byte r.
_HEX_PAIRS = np.frombuffer(
    "".join(f"{b:02x}" for b in range(256)).encode("ascii"), dtype=np.uint8
).reshape(256, 2)


def _column_rng(seed: int, block: int, column: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(block, column)))


def _decimal_from_cents(cents: np.ndarray, precision: int, scale: int) -> pa.Array:
    """Exact decimals from unscaled int64 values: decimal128 is 16-byte two's complement."""
    words = np.empty((len(cents), 2), dtype=np.int64)
    words[:, 0] = cents
    words[:, 1] = cents >> 63  # sign extension into the high word
    return pa.Array.from_buffers(
        pa.decimal128(precision, scale), len(cents), [None, pa.py_buffer(words)]
    )


def _hex_strings(random_bytes: np.ndarray) -> pa.Array:
    """Lower-case hex text of each row of ``random_bytes`` (n x k uint8 -> n strings of 2k)."""
    rows, width = random_bytes.shape
    characters = _HEX_PAIRS[random_bytes].reshape(-1)
    offsets = np.arange(0, 2 * width * (rows + 1), 2 * width, dtype=np.int32)
    return pa.Array.from_buffers(
        pa.string(), rows, [None, pa.py_buffer(offsets), pa.py_buffer(characters)]
    )


def generate_block(first_id: int, rows: int, seed: int, block: int) -> pa.RecordBatch:
    """The ``block``-th block of the table: ``rows`` rows with ids from ``first_id``."""

    def rng(column: int) -> np.random.Generator:
        return _column_rng(seed, block, column)

    created = _EPOCH_2024_US + rng(7).integers(0, _YEAR_US, rows, dtype=np.int64)
    columns = [
        pa.array(np.arange(first_id, first_id + rows, dtype=np.int64)),
        pa.array(rng(1).integers(0, 10_000, rows, dtype=np.int32)),
        _decimal_from_cents(rng(2).integers(1, 100_000_000, rows, dtype=np.int64), 12, 2),
        pa.array(rng(3).normal(500.0, 150.0, rows)),
        _STATUSES.take(pa.array(rng(4).choice(len(_STATUSES), rows, p=_STATUS_WEIGHTS))),
        _COUNTRIES.take(pa.array(rng(5).integers(0, len(_COUNTRIES), rows, dtype=np.int8))),
        pa.array(rng(6).random(rows) < 0.8),
        pa.array(created, type=pa.timestamp("us", tz="UTC")),
        pa.array(
            created + rng(8).integers(0, _MONTH_US, rows, dtype=np.int64),
            type=pa.timestamp("us", tz="UTC"),
        ),
        _hex_strings(rng(9).integers(0, 256, (rows, 32), dtype=np.uint8)),
    ]
    return pa.RecordBatch.from_arrays(columns, schema=T1M_SCHEMA)


def generate_batches(rows: int, seed: int = DEFAULT_SEED) -> Iterator[pa.RecordBatch]:
    """The table of ``rows`` rows as batches of at most ``BLOCK_ROWS`` rows, ids 1..rows."""
    if rows < 0:
        raise ValueError(f"rows must be >= 0, not {rows}")
    for block, start in enumerate(range(0, rows, BLOCK_ROWS)):
        yield generate_block(start + 1, min(BLOCK_ROWS, rows - start), seed, block)


def write_csv(path: Path | str, rows: int, seed: int = DEFAULT_SEED) -> int:
    """Write the table as CSV with a header line; returns the number of rows written."""
    written = 0
    with pa_csv.CSVWriter(str(path), T1M_SCHEMA) as writer:
        for batch in generate_batches(rows, seed):
            writer.write_batch(batch)
            written += batch.num_rows
    return written


def write_parquet(path: Path | str, rows: int, seed: int = DEFAULT_SEED) -> int:
    """Write the table as one Parquet file, a row group per block; returns the rows written."""
    written = 0
    with pq.ParquetWriter(str(path), T1M_SCHEMA, compression="zstd") as writer:
        for batch in generate_batches(rows, seed):
            writer.write_batch(batch)
            written += batch.num_rows
    return written


def main(argv: list[str] | None = None) -> int:
    """Command line entry; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS, help="rows to generate")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="random seed")
    parser.add_argument("--out", type=Path, help="output file (.csv or .parquet)")
    parser.add_argument("--format", choices=["csv", "parquet"], help="default: from --out")
    parser.add_argument("--ddl", action="store_true", help="print the Postgres CREATE TABLE")
    args = parser.parse_args(argv)
    if args.ddl:
        print(T1M_DDL, end="")
        return 0
    if args.out is None:
        parser.error("--out is required unless --ddl is given")
    file_format = args.format or ("parquet" if args.out.suffix == ".parquet" else "csv")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    writer = write_parquet if file_format == "parquet" else write_csv
    written = writer(args.out, args.rows, args.seed)
    print(f"{args.out}: {written} rows ({file_format}, seed {args.seed})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

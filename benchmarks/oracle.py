"""The benchmark oracle: a key-set checksum (count, sum, xor of the keys) of a run's output.

Every benchmark run must verify its row count and key set (field notes: a peer reported
"wrote 1000000 rows" and wrote 436k). The checksum is independent of row order and of how the
output is split into files, so a Parquet directory written by any tool compares directly with
the generated table:

    python benchmarks/oracle.py out/t1m/ --expect-rows 1000000

``sum`` is taken modulo 2**64 and ``xor`` over the keys' 64-bit two's complement, so both stay
exact for any int64 key; for ids 1..N they equal the plain sum and xor. Duplicates raise the
count (and the sum) even where their xor cancels. The same numbers from Postgres:
``POSTGRES_CHECKSUM_SQL``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

_MODULUS = 1 << 64
READABLE_SUFFIXES = (".parquet", ".csv")

# The same checksum computed by Postgres (14+): format with ``key`` and ``table``.
POSTGRES_CHECKSUM_SQL = (
    "SELECT count(*) AS count, "
    "(coalesce(sum({key}::numeric), 0) % 18446744073709551616 + 18446744073709551616) "
    "% 18446744073709551616 AS sum, "
    "(coalesce(bit_xor({key}), 0)::numeric + 18446744073709551616) "
    "% 18446744073709551616 AS xor "
    "FROM {table}"
)


@dataclass(frozen=True)
class KeySetChecksum:
    """Count, sum (mod 2**64) and xor (as unsigned 64-bit) of a set of int64 keys."""

    count: int
    sum: int
    xor: int

    def __add__(self, other: KeySetChecksum) -> KeySetChecksum:
        return KeySetChecksum(
            self.count + other.count, (self.sum + other.sum) % _MODULUS, self.xor ^ other.xor
        )


EMPTY = KeySetChecksum(0, 0, 0)


def checksum_of_keys(keys: pa.Array | pa.ChunkedArray | np.ndarray) -> KeySetChecksum:
    """The checksum of one array of integer keys (nulls are refused: a key is never null)."""
    if isinstance(keys, pa.Array | pa.ChunkedArray):
        if keys.null_count:
            raise ValueError(f"{keys.null_count} null keys")
        keys = keys.to_numpy()
    unsigned = np.asarray(keys).astype(np.int64, copy=False).view(np.uint64)
    if unsigned.size == 0:
        return EMPTY
    # uint64 arithmetic wraps, which is exactly the sum modulo 2**64.
    return KeySetChecksum(
        count=int(unsigned.size),
        sum=int(unsigned.sum(dtype=np.uint64)),
        xor=int(np.bitwise_xor.reduce(unsigned)),
    )


def expected_checksum(rows: int, first_id: int = 1) -> KeySetChecksum:
    """The checksum of the ids ``first_id .. first_id + rows - 1``, in closed form."""
    if rows <= 0:
        return EMPTY
    last = first_id + rows - 1
    total = (first_id + last) * rows // 2
    return KeySetChecksum(rows, total % _MODULUS, _xor_up_to(last) ^ _xor_up_to(first_id - 1))


def _xor_up_to(n: int) -> int:
    """0 ^ 1 ^ ... ^ n for n >= 0 (the xor of a run of integers has a period of 4)."""
    if n < 0:
        raise ValueError("only non-negative ranges have a closed form here")
    return (n, 1, n + 1, 0)[n % 4]


def _key_batches(path: Path, key: str) -> Iterator[pa.Array]:
    if path.suffix == ".parquet":
        for batch in pq.ParquetFile(path).iter_batches(columns=[key], batch_size=1 << 20):
            yield batch.column(0)
    elif path.suffix == ".csv":
        options = pa_csv.ConvertOptions(include_columns=[key], column_types={key: pa.int64()})
        with pa_csv.open_csv(path, convert_options=options) as reader:
            for batch in reader:
                yield batch.column(0)
    else:
        raise ValueError(f"{path}: only {', '.join(READABLE_SUFFIXES)} files are read")


def output_files(path: Path | str) -> list[Path]:
    """``path`` itself, or the readable files under a directory (hidden ones skipped:
    sinks keep files in progress hidden)."""
    root = Path(path)
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such file or directory")
    return sorted(
        p
        for p in root.rglob("*")
        if p.is_file()
        and p.suffix in READABLE_SUFFIXES
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
    )


def key_set_checksum(path: Path | str, key: str = "id") -> KeySetChecksum:
    """The checksum of column ``key`` over a Parquet/CSV file or a directory of them.

    Reads only the key column, a batch at a time, so memory stays flat.
    """
    return sum_checksums(
        checksum_of_keys(keys) for file in output_files(path) for keys in _key_batches(file, key)
    )


def sum_checksums(parts: Iterable[KeySetChecksum]) -> KeySetChecksum:
    """The checksum of the union (with repeats) of the parts."""
    total = EMPTY
    for part in parts:
        total = total + part
    return total


def main(argv: list[str] | None = None) -> int:
    """Print the checksum as JSON; with ``--expect-rows N`` exit 1 unless it matches ids 1..N."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("path", type=Path, help="a .parquet/.csv file or a directory")
    parser.add_argument("--key", default="id", help="the key column (default: id)")
    parser.add_argument("--expect-rows", type=int, help="compare with the ids 1..N")
    args = parser.parse_args(argv)
    found = key_set_checksum(args.path, args.key)
    report: dict[str, object] = {"path": str(args.path), **asdict(found)}
    ok = True
    if args.expect_rows is not None:
        expected = expected_checksum(args.expect_rows)
        ok = found == expected
        report["expected"] = asdict(expected)
        report["ok"] = ok
    print(json.dumps(report))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

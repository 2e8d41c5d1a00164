"""The baseline contestant: plain pyarrow streaming a CSV file into one Parquet file.

    python benchmarks/pyarrow_csv_to_parquet.py IN.csv OUT_DIR/

This is the floor of what a Python tool built on Arrow can do for B3: ``pyarrow.csv.open_csv``
reads blocks with type inference (as omconnect's csv source does), and a ``ParquetWriter``
writes them with the settings of omconnect's parquet sink (zstd, 131,072-row row groups), so
the ratio of the two measures the runtime, the topic and the Avro encoding, not the codecs.
Memory stays flat: one block is held at a time (plus the writer's open row group).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

ROW_GROUP_ROWS = 131_072
COMPRESSION = "zstd"
BLOCK_BYTES = 8 << 20


def convert(source: Path, out_dir: Path) -> int:
    """Stream ``source`` into ``out_dir/part-0.parquet``; returns the rows written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / "part-0.parquet"
    written = 0
    read_options = pa_csv.ReadOptions(block_size=BLOCK_BYTES)
    with (
        pa_csv.open_csv(source, read_options=read_options) as reader,
        pq.ParquetWriter(target, reader.schema, compression=COMPRESSION) as writer,
    ):
        for batch in reader:
            writer.write_batch(batch, row_group_size=ROW_GROUP_ROWS)
            written += batch.num_rows
    return written


def main(argv: list[str] | None = None) -> int:
    """Command line entry; prints the rows written and returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path, help="the CSV file")
    parser.add_argument("out_dir", type=Path, help="the directory for the Parquet file")
    args = parser.parse_args(argv)
    print(f"rows={convert(args.source, args.out_dir)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

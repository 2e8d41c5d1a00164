"""The dlt contestant: CSV -> Parquet files with dlt's filesystem destination.

Runs under the peers' virtualenv (see ``peers.py``), never the project's:

    python benchmarks/dlt_csv_to_parquet.py IN.csv OUT_DIR/ --reader read_csv
    python benchmarks/dlt_csv_to_parquet.py IN.csv OUT_DIR/ --reader arrow

Two ways of reading, both writing ``loader_file_format="parquet"`` to a ``filesystem``
destination at ``OUT_DIR`` (table files land in ``OUT_DIR/t1m/t1m/``):

- ``read_csv``: what dlt's documentation shows for files, ``filesystem(...) | read_csv()``
  (pandas in chunks, then dlt's normalizer). This is what a dlt user writes.
- ``arrow``: dlt's best case, a resource yielding the ``pyarrow.csv.open_csv`` batches, so dlt
  takes Arrow tables straight to Parquet without per-row normalisation.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path

import dlt
import pyarrow as pa
import pyarrow.csv as pa_csv
from dlt.sources.filesystem import filesystem, read_csv

DATASET = "t1m"
TABLE = "t1m"
READ_CSV_CHUNK_ROWS = 65_536


def _arrow_resource(source: Path) -> object:
    @dlt.resource(name=TABLE, write_disposition="append")
    def batches() -> Iterator[pa.Table]:
        with pa_csv.open_csv(source) as reader:
            for batch in reader:
                yield pa.Table.from_batches([batch])

    return batches()


def _read_csv_resource(source: Path) -> object:
    files = filesystem(bucket_url=source.parent.resolve().as_uri(), file_glob=source.name)
    return (files | read_csv(chunksize=READ_CSV_CHUNK_ROWS)).with_name(TABLE)


def load(source: Path, out_dir: Path, reader: str, work_dir: Path) -> str:
    """Load ``source`` into Parquet under ``out_dir``; returns dlt's load info as text."""
    pipeline = dlt.pipeline(
        pipeline_name="bench_csv_to_parquet",
        destination=dlt.destinations.filesystem(bucket_url=out_dir.resolve().as_uri()),
        dataset_name=DATASET,
        pipelines_dir=str(work_dir / "dlt-pipelines"),
    )
    resource = _arrow_resource(source) if reader == "arrow" else _read_csv_resource(source)
    info = pipeline.run(resource, loader_file_format="parquet")
    return str(info)


def main(argv: list[str] | None = None) -> int:
    """Command line entry; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path, help="the CSV file")
    parser.add_argument("out_dir", type=Path, help="the filesystem destination's directory")
    parser.add_argument("--reader", choices=["read_csv", "arrow"], default="read_csv")
    args = parser.parse_args(argv)
    print(load(args.source, args.out_dir, args.reader, Path.cwd()))
    return 0


if __name__ == "__main__":
    sys.exit(main())

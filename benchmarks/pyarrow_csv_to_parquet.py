"""The baseline contestant: plain pyarrow streaming a CSV file into one Parquet file.

    python benchmarks/pyarrow_csv_to_parquet.py IN.csv OUT_DIR/
    python benchmarks/pyarrow_csv_to_parquet.py s3://bucket/IN.csv s3://bucket/out/ \\
        --s3-endpoint http://127.0.0.1:9000     # credentials: AWS_ACCESS_KEY_ID, ...

This is the floor of what a Python tool built on Arrow can do for B3: ``pyarrow.csv.open_csv``
reads blocks with type inference (as omconnect's csv source does), and a ``ParquetWriter``
writes them with the settings of omconnect's parquet sink (zstd, 131,072-row row groups), so
the ratio of the two measures the runtime, the topic and the Avro encoding, not the codecs.
Memory stays flat: one block is held at a time (plus the writer's open row group). On S3 both
go through ``pyarrow.fs.S3FileSystem`` with the endpoint given explicitly (streamed reads, a
multipart upload of the file as it is written).
"""

from __future__ import annotations

import argparse
import os
import sys
from contextlib import nullcontext
from pathlib import Path

import pyarrow.csv as pa_csv
import pyarrow.fs as pafs
import pyarrow.parquet as pq

ROW_GROUP_ROWS = 131_072
COMPRESSION = "zstd"
BLOCK_BYTES = 8 << 20


def s3_filesystem(endpoint_url: str) -> pafs.S3FileSystem:
    """pyarrow's S3 client of ``endpoint_url`` (``http://`` without TLS), with the credentials
    and region of the usual AWS variables."""
    scheme, _, host_port = endpoint_url.partition("://")
    return pafs.S3FileSystem(
        endpoint_override=host_port,
        scheme=scheme,
        region=os.environ.get("AWS_REGION", "us-east-1"),
        access_key=os.environ.get("AWS_ACCESS_KEY_ID"),
        secret_key=os.environ.get("AWS_SECRET_ACCESS_KEY"),
    )


def convert(source: str, out_dir: str, filesystem: pafs.FileSystem | None = None) -> int:
    """Stream ``source`` into ``out_dir/part-0.parquet``: local paths, or the ``bucket/key``
    paths of ``filesystem``; returns the rows written."""
    out = out_dir.rstrip("/")
    if filesystem is None:
        Path(out).mkdir(parents=True, exist_ok=True)
    written = 0
    read_options = pa_csv.ReadOptions(block_size=BLOCK_BYTES)
    with (
        filesystem.open_input_stream(source) if filesystem else nullcontext(source) as stream,
        pa_csv.open_csv(stream, read_options=read_options) as reader,
        pq.ParquetWriter(
            f"{out}/part-0.parquet", reader.schema, compression=COMPRESSION, filesystem=filesystem
        ) as writer,
    ):
        for batch in reader:
            writer.write_batch(batch, row_group_size=ROW_GROUP_ROWS)
            written += batch.num_rows
    return written


def main(argv: list[str] | None = None) -> int:
    """Command line entry; prints the rows written and returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", help="the CSV file (or s3://bucket/key)")
    parser.add_argument("out_dir", help="the directory for the Parquet file (or s3://bucket/dir/)")
    parser.add_argument("--s3-endpoint", help="the S3 endpoint of s3:// paths")
    args = parser.parse_args(argv)
    if args.source.startswith("s3://"):
        filesystem = s3_filesystem(args.s3_endpoint)
        rows = convert(
            args.source.removeprefix("s3://"), args.out_dir.removeprefix("s3://"), filesystem
        )
    else:
        rows = convert(args.source, args.out_dir)
    print(f"rows={rows}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

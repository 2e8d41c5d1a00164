"""The dlt contestant: CSV -> Parquet files with dlt's filesystem destination.

Runs under the peers' virtualenv (see ``peers.py``), never the project's:

    python benchmarks/dlt_csv_to_parquet.py IN.csv OUT_DIR/ --reader read_csv
    python benchmarks/dlt_csv_to_parquet.py IN.csv OUT_DIR/ --reader arrow
    python benchmarks/dlt_csv_to_parquet.py s3://bucket/IN.csv s3://bucket/out/ --reader arrow \
        --s3-endpoint http://127.0.0.1:9000        # credentials: AWS_ACCESS_KEY_ID, ...

Two ways of reading, both writing ``loader_file_format="parquet"`` to a ``filesystem``
destination at ``OUT_DIR`` (table files land in ``OUT_DIR/t1m/t1m/``):

- ``read_csv``: what dlt's documentation shows for files, ``filesystem(...) | read_csv()``
  (pandas in chunks, then dlt's normalizer). This is what a dlt user writes.
- ``arrow``: dlt's best case, a resource yielding the ``pyarrow.csv.open_csv`` batches, so dlt
  takes Arrow tables straight to Parquet without per-row normalisation.

On S3 (``dlt[s3]``: s3fs) the source is ``filesystem(bucket_url="s3://bucket", ...)`` and
the destination ``filesystem(bucket_url="s3://bucket/out")``, both with ``AwsCredentials``
naming the endpoint (``endpoint_url``); the ``arrow`` reader then opens the object dlt lists.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import dlt
import pyarrow as pa
import pyarrow.csv as pa_csv
from dlt.common.configuration.specs import AwsCredentials
from dlt.sources.filesystem import FileItemDict, filesystem, read_csv

DATASET = "t1m"
TABLE = "t1m"
READ_CSV_CHUNK_ROWS = 65_536


def s3_credentials(endpoint_url: str) -> AwsCredentials:
    """Credentials of the usual AWS variables, at ``endpoint_url``."""
    return AwsCredentials(
        aws_access_key_id=os.environ["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=os.environ["AWS_SECRET_ACCESS_KEY"],
        region_name=os.environ.get("AWS_REGION", "us-east-1"),
        endpoint_url=endpoint_url,
    )


def _arrow_tables(reader: pa_csv.CSVStreamingReader) -> Iterator[pa.Table]:
    for batch in reader:
        yield pa.Table.from_batches([batch])


def _arrow_resource(source: str) -> object:
    @dlt.resource(name=TABLE, write_disposition="append")
    def batches() -> Iterator[pa.Table]:
        with pa_csv.open_csv(source) as reader:
            yield from _arrow_tables(reader)

    return batches()


def _files(source: str, credentials: AwsCredentials | None) -> object:
    """dlt's ``filesystem`` resource listing ``source`` (a local path or ``s3://`` URL)."""
    if credentials is None:
        path = Path(source).resolve()
        return filesystem(bucket_url=path.parent.as_uri(), file_glob=path.name)
    bucket_url, _, key = source.rpartition("/")
    return filesystem(bucket_url=bucket_url, credentials=credentials, file_glob=key)


def _s3_arrow_resource(source: str, credentials: AwsCredentials) -> object:
    @dlt.transformer(name=TABLE, write_disposition="append")
    def batches(items: list[FileItemDict]) -> Iterator[pa.Table]:
        for item in items:
            with item.open() as stream, pa_csv.open_csv(stream) as reader:
                yield from _arrow_tables(reader)

    return _files(source, credentials) | batches


def _read_csv_resource(source: str, credentials: AwsCredentials | None) -> object:
    files = _files(source, credentials)
    return (files | read_csv(chunksize=READ_CSV_CHUNK_ROWS)).with_name(TABLE)


def load(
    source: str, out_dir: str, reader: str, work_dir: Path, s3_endpoint: str | None = None
) -> str:
    """Load ``source`` into Parquet under ``out_dir`` (local, or ``s3://`` at
    ``s3_endpoint``); returns dlt's load info as text."""
    credentials = s3_credentials(s3_endpoint) if s3_endpoint else None
    if credentials is None:
        destination = dlt.destinations.filesystem(bucket_url=Path(out_dir).resolve().as_uri())
    else:
        destination = dlt.destinations.filesystem(
            bucket_url=out_dir.rstrip("/"), credentials=credentials
        )
    pipeline = dlt.pipeline(
        pipeline_name="bench_csv_to_parquet",
        destination=destination,
        dataset_name=DATASET,
        pipelines_dir=str(work_dir / "dlt-pipelines"),
    )
    if reader == "read_csv":
        resource = _read_csv_resource(source, credentials)
    elif credentials is None:
        resource = _arrow_resource(source)
    else:
        resource = _s3_arrow_resource(source, credentials)
    info = pipeline.run(resource, loader_file_format="parquet")
    return str(info)


def main(argv: list[str] | None = None) -> int:
    """Command line entry; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", help="the CSV file (or s3://bucket/key)")
    parser.add_argument("out_dir", help="the filesystem destination's directory (or s3://...)")
    parser.add_argument("--reader", choices=["read_csv", "arrow"], default="read_csv")
    parser.add_argument("--s3-endpoint", help="the S3 endpoint of s3:// paths")
    args = parser.parse_args(argv)
    print(load(args.source, args.out_dir, args.reader, Path.cwd(), args.s3_endpoint))
    return 0


if __name__ == "__main__":
    sys.exit(main())

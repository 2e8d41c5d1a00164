"""The options of every file sink (``FileSinkSpec``) and their checks (``FileSinkConnector``)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import Field

from omconnect.connectors.api import ConfigError, ConnectorSpec, SinkConnector
from omconnect.connectors.files._delete_rows import DeleteMode
from omconnect.connectors.files._object_upload import MIN_PART_SIZE
from omconnect.connectors.files._partitioning import PartitionKey, duplicate_directory_names
from omconnect.connectors.files._s3 import S3Location, S3Options, is_s3_path


class FileSinkSpec(ConnectorSpec):
    """Options of every file sink (csv, jsonl, parquet, avro)."""

    path: str = Field(
        description=(
            "The directory to write into (created if missing), or `s3://bucket/prefix`. Each "
            "topic partition gets its own files, named `<topic>-<partition>-<first offset, "
            "20 digits>.<ext>`, so a replay overwrites instead of duplicating. Locally, files "
            "being written are hidden (`.<name>.<writer>.tmp`) until they are complete, and "
            "one pipeline at a time writes a directory: a second one is refused (the lock is "
            "`.omconnect.lock` in the directory). On S3 a file is uploaded to its final key "
            "and appears only once complete (large files in parts of `upload_part_size`); "
            "the lock object `<prefix>/.omconnect.lock` keeps other pipelines out."
        )
    )
    s3: S3Options | None = Field(
        default=None,
        description=(
            "With an `s3://` path: the endpoint, region and credentials (left out: AWS's "
            "endpoint and the usual AWS credential chain)."
        ),
    )
    partition_by: list[PartitionKey] = Field(
        default_factory=list,
        description=(
            "Hive-style directories, one level per entry: a field name partitions by its "
            "value (`region=eu/`), `{field: ts, granularity: day}` by the time bucket of a "
            "timestamp or date field (`ts_day=2026-12-01/`; `hour` `ts_hour=2026-12-01T13`, "
            "`month` `ts_month=2026-12`, `year` `ts_year=2026`; UTC for zoned timestamps). "
            "Values are percent-escaped, nulls go to `__HIVE_DEFAULT_PARTITION__`, and a "
            "value field's column is left out of the files (readers with Hive partitioning "
            "add it back from the directory names). Each directory gets its own rolling files."
        ),
    )
    max_rows: int = Field(
        default=1_000_000, ge=1, description="Start a new file after this many rows."
    )
    max_bytes: int = Field(
        default=256 * 1024 * 1024,
        ge=1,
        description="Start a new file once the open one holds about this many bytes.",
    )
    max_age: float = Field(
        default=300.0,
        gt=0,
        description=(
            "Start a new file when the open one is older than this many seconds (checked "
            "when rows arrive). Every flush of the pipeline also completes the open files."
        ),
    )
    max_open_files: int = Field(
        default=64,
        ge=1,
        description=(
            "The most files written at once (one per topic partition and directory); past "
            "it, the file written least recently is completed. Each open file buffers up to "
            "a row group (Parquet) and, on S3, spools up to a part on local disk."
        ),
    )
    upload_part_size: int = Field(
        default=8 * 1024 * 1024,
        ge=MIN_PART_SIZE,
        description=(
            "On S3: a file is uploaded in parts of this many bytes (at least 5 MiB) while it "
            "is written; a smaller file is uploaded whole when complete."
        ),
    )
    deletes: DeleteMode = Field(
        default="skip",
        description=(
            "What a delete (a tombstone: a message with a key and no value) becomes. `skip`: "
            "it is not written; each flush logs how many were skipped. `mark`: it is written "
            "as a row with the key columns set and every other column null, and every row "
            "gets a boolean `__deleted` column, true for deletes and false for the other rows "
            "(Debezium's delete rewrite); the columns other than the key are then nullable. "
            "A delete without a key cannot be marked and goes to the dead letter topic."
        ),
    )


class FileSinkConnector(SinkConnector):
    """A file sink: checks ``path`` (a directory, or an S3 prefix with its options) and
    ``partition_by``; one task per pipeline."""

    spec: ClassVar[type[ConnectorSpec]] = FileSinkSpec

    def validate(self) -> None:
        config = self.config
        assert isinstance(config, FileSinkSpec)
        duplicated = duplicate_directory_names(config.partition_by)
        if duplicated:
            raise ConfigError(
                f"partition_by names the directory level {duplicated[0]!r} twice",
                key="partition_by",
            )
        if is_s3_path(config.path):
            S3Location.parse(config.path)
            if config.s3 is not None:
                config.s3.check_credentials()
            return
        for option in ("s3", "upload_part_size"):
            if option in config.model_fields_set:
                raise ConfigError(
                    f"{option} is for s3:// paths ({config.path!r} is a local path)", key=option
                )
        path = Path(config.path)
        if path.exists() and not path.is_dir():
            raise ConfigError(f"{config.path!r} is a file, not a directory", key="path")

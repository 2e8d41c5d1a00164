"""What every file source shares: the common options and the check of ``path`` (local, or
``s3://`` with the ``s3`` options)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import pyarrow as pa
from pydantic import AliasChoices, Field

from omconnect.codecs.type_names import parse_type
from omconnect.connectors.api import ConfigError, ConnectorSpec, SourceConnector, TypeNames
from omconnect.connectors.files._file_position import FilePosition
from omconnect.connectors.files._file_store import file_store
from omconnect.connectors.files._s3 import S3Options
from omconnect.schemas.arrow import to_arrow_type


class FileSourceSpec(ConnectorSpec):
    """Options of every file source (csv, jsonl, parquet, avro)."""

    path: str = Field(
        description=(
            "A file, a directory (its files, not its subdirectories) or a glob pattern such as "
            "`data/*.csv` (`**` matches every depth: `data/**/*.csv`), local or in S3: "
            "`s3://bucket/dir/` (the objects directly under `dir/`), `s3://bucket/key` (that "
            "object, else the objects directly under `key/`), `s3://bucket/dir/**/*.csv`; "
            "with the `s3` options. Files are read in sorted "
            "order; hidden files (names starting with `.`) are skipped. New files, and rows "
            "appended to CSV and JSON Lines files, are read by the next run, or within "
            "`poll_interval` when running continuously; a last line without its line break "
            "waits for it (or for the file to stay unchanged for a minute). Parquet and Avro "
            "files are read once, when complete: write them under a hidden name and rename "
            "them (one cut short waits a minute for its writer, then counts as unreadable). "
            "S3 objects are read as they are listed (they appear whole): one whose ETag "
            "changed was replaced (see `on_file_change`); their partitions are named "
            "`s3://bucket/key`."
        )
    )
    s3: S3Options | None = Field(
        default=None,
        description=(
            "How to reach S3 when `path` is `s3://bucket/...`: `endpoint_url` (MinIO, a "
            "local server; AWS when left out), `region`, `access_key_id` with "
            "`secret_access_key` (and `session_token`). Credentials left out come from the "
            "usual AWS chain (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, AWS_PROFILE, the "
            "instance or container role). Objects are listed with ListObjectsV2 and read "
            "with ranged GETs, a block at a time. Refused with a local `path`."
        ),
    )
    batch_size: int = Field(
        default=65_536,
        ge=1,
        description="The most rows in one emitted batch. A batch never spans two files.",
    )
    key: list[str] = Field(
        default_factory=list,
        description=(
            "Columns that identify a row (the message key). Every file must have them; a file "
            "without one fails the task with an error naming the file and the column."
        ),
    )
    poll_interval: float = Field(
        default=5.0,
        gt=0,
        description=(
            "When running continuously, the seconds between two scans of `path` for new and "
            "grown files."
        ),
    )
    on_file_change: Literal["reread", "fail", "skip"] = Field(
        default="reread",
        description=(
            "What to do with a file that changed since it was read, other than by rows "
            "appended: replaced, rewritten or truncated (its fingerprint, the digests of its "
            "first bytes and of those before where reading stopped, no longer matches). "
            "`reread` reads it again from its start (duplicates rather than loss), `fail` "
            "stops with an error naming the file, `skip` leaves what it holds now unread and "
            "reads only rows appended later. Each is logged as a warning naming the file and "
            "what changed. A file that went to the dead letter topic because it could not be "
            "read is read again when it changes, whatever this says."
        ),
    )


class TypedColumnsSpec(FileSourceSpec):
    """Options of file sources whose format has no types of its own (csv, jsonl)."""

    columns: TypeNames | None = Field(
        default=None,
        validation_alias=AliasChoices("columns", "schema"),
        description=(
            "Explicit column types, `{name: type}`, also accepted as `schema`, written as in "
            "the `cast` transform: `boolean`, `int8`..`int64`, `float32`, `float64`, "
            "`decimal(p,s)`, `string`, `bytes`, `date`, `time`, `timestamp` (no zone), "
            "`timestamp(ZONE)`, and SQL spellings such as `int`, `bigint`, `double`, "
            "`varchar`, `text`, `timestamptz`; `array<..>` and `struct<..>` in jsonl, "
            "`enum<..>` in csv. Columns left out are inferred from the first block of "
            "each file (a number column whose text a number would change, such as `08123`, "
            "stays a string); a value that does not fit its column's type is a bad row."
        ),
    )

    @classmethod
    def reads(cls, arrow_type: pa.DataType) -> bool:
        """Whether the format's reader can parse a column straight into ``arrow_type``."""
        return True

    def unreadable_columns(self) -> dict[str, str]:
        """Column -> type text, for each ``columns`` entry the format's reader cannot parse."""
        return {
            name: text
            for name, text in (self.columns or {}).items()
            if not self.reads(to_arrow_type(parse_type(text)))
        }


def arrow_column_types(columns: Mapping[str, str]) -> dict[str, pa.DataType]:
    """The Arrow type of every column in a ``columns`` option (validated already)."""
    return {name: to_arrow_type(parse_type(text)) for name, text in columns.items()}


class FileSourceConnector(SourceConnector):
    """A file source: checks ``path`` before anything runs; one task reads every file."""

    spec: ClassVar[type[ConnectorSpec]] = FileSourceSpec

    def validate(self) -> None:
        """Refuse a ``columns`` type the format cannot read, ``s3`` options with a local
        ``path``, and a ``path`` that can never match: its directory (or bucket) does not
        exist, or S3 refuses the credentials or the access.

        An existing directory with no matching file is fine: there is nothing to read yet.
        """
        config = self.config
        assert isinstance(config, FileSourceSpec)
        if isinstance(config, TypedColumnsSpec):
            for name, text in config.unreadable_columns().items():
                raise ConfigError(
                    f"the {self.name} source cannot read a column as {text!r}; read it as "
                    "string (or leave it out) and convert it with a transform",
                    key=f"columns.{name}",
                )
        file_store(config.path, config.s3).check()

    def validate_offset(self, partition: Mapping[str, Any], offset: Mapping[str, Any]) -> None:
        """Refuse a position the task could not resume from: a partition that is not
        ``{"file": name}`` (a local path or ``s3://bucket/key``), an offset whose fields the
        task reads are of the wrong kind."""
        if not isinstance(partition.get("file"), str) or not partition["file"]:
            raise ConfigError('expected {"file": "<file name>"}', key="partition")
        try:
            FilePosition.from_offset(offset)
        except ValueError as error:
            raise ConfigError(str(error), key="offset") from None

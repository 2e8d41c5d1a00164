"""What every file source shares: the common options and the check of ``path``."""

from __future__ import annotations

import re
from pathlib import Path
from typing import ClassVar

from pydantic import AliasChoices, Field, field_validator

from omconnect.connectors.api import ConfigError, ConnectorSpec, SourceConnector
from omconnect.connectors.files._column_types import parse_column_type
from omconnect.connectors.files._glob import is_glob, match_files, search_root


class FileSourceSpec(ConnectorSpec):
    """Options of every file source (csv, jsonl, parquet, avro)."""

    path: str = Field(
        description=(
            "A file, a directory (its files, not its subdirectories) or a glob pattern such as "
            "`data/*.csv` (`**` matches every depth: `data/**/*.csv`). Files are read in sorted "
            "order; hidden files (names starting with `.`) are skipped. Files that appear later "
            "are read by the next run, or within `poll_interval` when running continuously."
        )
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
            "When running continuously, the seconds between two scans of `path` for new files."
        ),
    )


class TypedColumnsSpec(FileSourceSpec):
    """Options of file sources whose format has no types of its own (csv, jsonl)."""

    columns: dict[str, str] | None = Field(
        default=None,
        validation_alias=AliasChoices("columns", "schema"),
        description=(
            "Explicit column types, `{name: type}`, also accepted as `schema`. Types: "
            "`boolean`, `int8`..`int64`, `float32`, `float64`, `string`, `bytes`, `date`, "
            "`time`, `timestamp` (no zone), `timestamptz` or `timestamp(ZONE)`, "
            "`decimal(p,s)`, `json`. Columns left out are inferred from the first block of "
            "each file; later blocks of the file must fit the types found there."
        ),
    )

    @field_validator("columns")
    @classmethod
    def _known_types(cls, columns: dict[str, str] | None) -> dict[str, str] | None:
        for text in (columns or {}).values():
            parse_column_type(text)
        return columns


class FileSourceConnector(SourceConnector):
    """A file source: checks ``path`` before anything runs; one task reads every file."""

    spec: ClassVar[type[ConnectorSpec]] = FileSourceSpec

    def validate(self) -> None:
        """Refuse a ``path`` that can never match: its directory does not exist.

        An existing directory with no matching file is fine: there is nothing to read yet.
        """
        config = self.config
        assert isinstance(config, FileSourceSpec)
        if match_files(config.path):
            return
        root = search_root(config.path)
        if not root.is_dir():
            what = "directory" if is_glob(config.path) or config.path.endswith("/") else "path"
            raise ConfigError(
                f"no files match {config.path!r}: the {what} {str(root)!r} does not exist",
                key="path",
            )


_NOT_IDENTIFIER = re.compile(r"[^A-Za-z0-9_]")


def schema_name_of(pattern: str) -> str:
    """A record name for what ``pattern`` reads, stable across its files.

    The file's stem for a single file (``orders.csv`` -> ``orders``), else the name of the
    directory searched (``data/orders/*.csv`` -> ``orders``). Only letters, digits and ``_``
    remain, so the name is also a valid Avro record name.
    """
    root = search_root(pattern)
    if not is_glob(pattern) and not Path(pattern).is_dir():
        stem = Path(pattern).stem
    else:
        stem = root.resolve().name
    name = _NOT_IDENTIFIER.sub("_", stem) or "records"
    return f"_{name}" if name[0].isdigit() else name

"""``partition_by``: the Hive-style directories a file sink splits its rows into.

Each entry of ``partition_by`` is a directory level, in order: a field name partitions by the
field's value (``region=eu``); ``{field: ts, granularity: day}`` partitions by the time
bucket of a timestamp or date field (``ts_day=2026-12-01``). Buckets are written
``ts_year=2026``, ``ts_month=2026-12``, ``ts_day=2026-12-01``, ``ts_hour=2026-12-01T13``;
a timestamp with a time zone is bucketed in UTC, one without as it is written.

As in Hive, Spark and ``pyarrow.dataset``, a value field's column is not written into the
files (its value is in the directory name; readers with Hive partitioning add it back, as a
type they infer from the names); the field of a time bucket stays in the files. Values are
percent-escaped (``a/b`` becomes ``a%2Fb``, as Hive readers decode them), a value longer than
150 bytes once escaped keeps its first characters and a digest of the
rest, and a null goes to ``__HIVE_DEFAULT_PARTITION__``, the directory Hive readers read as
null. A value field must hold scalars that have a text form (not bytes, lists or structs).

Splitting rows is Arrow compute: the key columns are computed whole, rows are grouped by them
(``Table.group_by``), and only the groups, never the rows, are visited in Python.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any, Literal
from urllib.parse import quote

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field

from omconnect.connectors.api import ConnectorError

NULL_DIRECTORY = "__HIVE_DEFAULT_PARTITION__"

Granularity = Literal["hour", "day", "month", "year"]

_BUCKET_FORMATS: dict[str, str] = {
    "year": "%Y",
    "month": "%Y-%m",
    "day": "%Y-%m-%d",
    "hour": "%Y-%m-%dT%H",
}

# Directory names stay well under the usual 255-byte limit: a longer escaped value keeps its
# first characters and a digest of the whole.
_VALUE_BYTES = 150

RowIndices = npt.NDArray[np.int64]


class TimePartition(BaseModel):
    """A directory level by the time bucket of a timestamp or date field."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    field: str = Field(min_length=1, description="The timestamp or date field.")
    granularity: Granularity = Field(
        description="The bucket: `hour`, `day`, `month` or `year` (UTC for timestamps with a zone)."
    )


PartitionKey = str | TimePartition


def directory_name(key: PartitionKey) -> str:
    """The name a key's directories start with: ``region`` or ``ts_day``."""
    if isinstance(key, TimePartition):
        return f"{key.field}_{key.granularity}"
    return key


def duplicate_directory_names(keys: Sequence[PartitionKey]) -> list[str]:
    names = [directory_name(k) for k in keys]
    return sorted({n for n in names if names.count(n) > 1})


class Partitioner:
    """Computes the partition directories of rows for ``partition_by``; ``where`` names the
    sink in errors."""

    def __init__(self, keys: Sequence[PartitionKey], where: str) -> None:
        self.keys = list(keys)
        self._where = where
        self._names = [quote(directory_name(k), safe="") for k in self.keys]
        self.value_fields = [k for k in self.keys if isinstance(k, str)]
        """The fields whose columns are not written into the files."""

    def key_columns(self, values: pa.RecordBatch) -> list[pa.Array]:
        """One text column per key, the value of each row's directory level (null: null).

        Raises:
            ConnectorError: a field is missing, or its type cannot partition.
        """
        return [self._key_column(values, key) for key in self.keys]

    def directory(self, key_values: Sequence[str | None]) -> str:
        """The relative directory of one group: ``region=eu/ts_day=2026-12-01``."""
        return "/".join(
            f"{name}={_escaped(value)}" for name, value in zip(self._names, key_values, strict=True)
        )

    def _key_column(self, values: pa.RecordBatch, key: PartitionKey) -> pa.Array:
        name = key.field if isinstance(key, TimePartition) else key
        if name not in values.schema.names:
            raise ConnectorError(
                f"{self._where}: partition_by: the rows have no field {name!r} "
                f"(they have {', '.join(values.schema.names)})"
            )
        column = values.column(name)
        kind = column.type
        if isinstance(kind, pa.BaseExtensionType):
            column, kind = column.storage, kind.storage_type
        if isinstance(key, TimePartition):
            if pa.types.is_timestamp(kind):
                # The UTC wall time of a zoned timestamp: the stored value without its zone.
                column = column.cast(pa.timestamp(kind.unit))
            elif not pa.types.is_date(kind):
                raise ConnectorError(
                    f"{self._where}: partition_by: {name!r} is {kind}; a granularity needs a "
                    "timestamp or date field"
                )
            return pc.strftime(column, format=_BUCKET_FORMATS[key.granularity])
        if (
            pa.types.is_nested(kind)
            or pa.types.is_binary(kind)
            or pa.types.is_large_binary(kind)
            or pa.types.is_fixed_size_binary(kind)
        ):
            raise ConnectorError(
                f"{self._where}: partition_by: {name!r} is {kind}; a partition field holds "
                "scalars with a text form (strings, numbers, booleans, dates)"
            )
        try:
            return column.cast(pa.string())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as err:
            raise ConnectorError(
                f"{self._where}: partition_by: {name!r} ({kind}) has no text form: {err}"
            ) from err


def group_rows(columns: Sequence[pa.Array]) -> list[tuple[tuple[Any, ...], RowIndices]]:
    """The rows grouped by the values of ``columns`` (nulls form a group): each group's
    values and row indices, groups in the order of their first row, rows in order."""
    names = [f"k{i}" for i in range(len(columns))]
    rows = pa.array(np.arange(len(columns[0]), dtype=np.int64))
    table = pa.table([*columns, rows], names=[*names, "row"])
    grouped = table.group_by(names, use_threads=False).aggregate([("row", "list")])
    keys = list(zip(*(grouped.column(n).to_pylist() for n in names), strict=True))
    lists = grouped.column("row_list").combine_chunks()
    bounds = lists.offsets.to_numpy()
    flat = lists.values.to_numpy()
    return [(key, flat[bounds[i] : bounds[i + 1]]) for i, key in enumerate(keys)]


def _escaped(value: str | None) -> str:
    if value is None:
        return NULL_DIRECTORY
    escaped = quote(value, safe="")
    if len(escaped) > _VALUE_BYTES:
        kept = escaped[: _VALUE_BYTES - 17]
        cut_escape = kept.rfind("%", len(kept) - 2)
        if cut_escape != -1:
            kept = kept[:cut_escape]
        escaped = f"{kept}~{hashlib.blake2b(value.encode(), digest_size=8).hexdigest()}"
    return escaped

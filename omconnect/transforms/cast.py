"""The ``cast`` transform: change the types of columns, sending unconvertible rows aside."""

from __future__ import annotations

import dataclasses

import numpy as np
import pyarrow as pa
from pydantic import Field

from omconnect.codecs.type_names import format_type, parse_type
from omconnect.connectors.api.errors import ConfigError
from omconnect.connectors.api.plugins import register
from omconnect.connectors.api.spec import ConnectorSpec, TypeNames
from omconnect.connectors.api.transform import Transform, TransformRowErrors
from omconnect.schemas.arrow import to_arrow_field, to_arrow_type
from omconnect.schemas.record import RecordBatch
from omconnect.schemas.schema import Schema
from omconnect.schemas.types import DataType
from omconnect.transforms._arrow_columns import rebuild_values
from omconnect.transforms._column_names import require_columns
from omconnect.transforms.column_cast import cast_column


class CastSpec(ConnectorSpec):
    """Options of the ``cast`` transform."""

    fields: TypeNames = Field(
        min_length=1,
        description=(
            'Column -> type, e.g. {amount: "decimal(12,2)", ts: "timestamp(UTC)", id: int64}. '
            "Types: boolean, int8..int64, float32, float64, decimal(p,s), string, bytes, "
            "date, time, timestamp, timestamp(ZONE), uuid, json, array<..>, map<string,..>, "
            "struct<..>, enum<..>."
        ),
    )


class CastTransform(Transform):
    """Casts columns to other types with safe casts: nothing is silently truncated.

    Rows whose values do not fit the new type (text that is not a number, an overflowing
    integer, a fraction cast to an integer) do not fail the batch: ``apply`` raises
    ``TransformRowErrors`` with the failed row indices and reasons, and ``good``, the batch of
    the other rows cast. The failing rows are found by bisecting the failing column with
    vectorised casts, so the cost grows with the number of bad rows, not the batch size.
    A cast Arrow cannot do at all (a timestamp to a boolean) is refused by ``check``.
    """

    name = "cast"
    spec = CastSpec
    description = "Change column types; rows that do not convert go to the dead letter topic."

    def __init__(self, config: CastSpec) -> None:
        super().__init__(config)
        self.targets: dict[str, DataType] = {n: parse_type(s) for n, s in config.fields.items()}

    def check(self, schema: Schema) -> None:
        require_columns(self.targets, schema.names, key="fields")
        for name, target in self.targets.items():
            empty = pa.array([], to_arrow_type(schema.type_of(name)))
            try:
                cast_column(empty, target)
            except (pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
                source = format_type(schema.type_of(name))
                message = f'cannot cast column "{name}" from {source} to {format_type(target)}'
                raise ConfigError(f"{message}: {exc}", f"fields.{name}") from None

    def apply(self, batch: RecordBatch) -> RecordBatch:
        require_columns(self.targets, batch.schema.names, key="fields")
        failed: dict[int, str] = {}
        for name, target in self.targets.items():
            column = batch.values.column(name)
            try:
                cast_column(column, target)
            except pa.ArrowInvalid as exc:
                for row, reason in _failing_rows(column, target, exc).items():
                    failed.setdefault(row, f'column "{name}": {reason}')
        if not failed:
            return self._cast(batch)
        keep = np.ones(batch.num_rows, dtype=bool)
        keep[list(failed)] = False
        raise TransformRowErrors(failed, self._cast(batch.filter(pa.array(keep))))

    def _cast(self, batch: RecordBatch) -> RecordBatch:
        columns = list(batch.values.columns)
        arrow_fields = list(batch.values.schema)
        fields = list(batch.schema.fields)
        for name, target in self.targets.items():
            i = batch.values.schema.get_field_index(name)
            j = batch.schema.names.index(name)
            fields[j] = dataclasses.replace(fields[j], type=target)
            columns[i] = cast_column(columns[i], target)
            arrow_fields[i] = to_arrow_field(fields[j])
        schema = dataclasses.replace(batch.schema, fields=tuple(fields))
        return batch.with_values(
            rebuild_values(batch.values, columns, arrow_fields, schema), schema
        )


def _failing_rows(column: pa.Array, target: DataType, error: pa.ArrowInvalid) -> dict[int, str]:
    """The rows of ``column`` that do not cast to ``target`` (whose cast raised ``error``).

    Halves the column and recasts each half, descending only into halves that fail.
    """
    if len(column) == 1:
        return {0: f"cannot cast {column[0].as_py()!r} to {format_type(target)}: {error}"}
    middle = len(column) // 2
    found: dict[int, str] = {}
    for offset, part in ((0, column.slice(0, middle)), (middle, column.slice(middle))):
        try:
            cast_column(part, target)
        except pa.ArrowInvalid as exc:
            found.update({offset + r: why for r, why in _failing_rows(part, target, exc).items()})
    return found


register(CastTransform)

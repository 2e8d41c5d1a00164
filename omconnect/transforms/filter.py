"""The ``filter`` transform: keep (or drop) the rows where an expression is true."""

from __future__ import annotations

from typing import Literal

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, field_validator

from omconnect.connectors.api.errors import ConfigError
from omconnect.connectors.api.plugins import register
from omconnect.connectors.api.spec import ConnectorSpec
from omconnect.connectors.api.transform import Transform
from omconnect.schemas.arrow import to_arrow_schema
from omconnect.schemas.record import RecordBatch
from omconnect.schemas.schema import Schema
from omconnect.transforms.expression import parse_expression


class FilterSpec(ConnectorSpec):
    """Options of the ``filter`` transform."""

    where: str = Field(
        description=(
            "A condition over the columns, e.g. \"amount > 0 and status in ('paid', 'shipped')\""
            ": comparisons, and/or/not, + - * / %, in (...), is [not] null, literals, and the "
            "functions lower, upper, length, starts_with, ends_with, contains, coalesce."
        )
    )
    mode: Literal["keep", "drop"] = Field(
        default="keep",
        description="keep: keep the rows where the condition is true; drop: drop them.",
    )

    @field_validator("where")
    @classmethod
    def _parses(cls, where: str) -> str:
        try:
            parse_expression(where)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return where


class FilterTransform(Transform):
    """Keeps the rows where ``where`` is true (``mode: keep``) or drops them (``mode: drop``).

    The condition is evaluated with Arrow compute kernels over the whole batch. A row whose
    condition is null (``amount > 0`` with a null ``amount``) does not match: ``keep`` drops
    it and ``drop`` keeps it. Dropped rows leave the batch through ``RecordBatch.filter``, so
    the batch's positions still cover them and they are committed, not replayed.
    """

    name = "filter"
    spec = FilterSpec
    description = "Keep or drop the rows where a condition is true."

    def __init__(self, config: FilterSpec) -> None:
        super().__init__(config)
        self.condition = parse_expression(config.where)
        self.keep = config.mode == "keep"

    def check(self, schema: Schema) -> None:
        """Refuse unknown columns and operations that do not fit the columns' types.

        The condition is evaluated over an empty batch of ``schema``: every kernel is
        resolved against the real types, so a type mismatch is a config error up front.
        """
        self.condition.check_columns(schema.names, key="where")
        empty = pa.RecordBatch.from_pylist([], schema=to_arrow_schema(schema))
        try:
            self.condition.condition(empty)
        except ConfigError as exc:
            raise ConfigError(str(exc), key="where") from None

    def apply(self, batch: RecordBatch) -> RecordBatch:
        matches = pc.fill_null(self.condition.condition(batch.values), False)
        mask: pa.BooleanArray = matches if self.keep else pc.invert(matches)
        return batch.filter(mask)


register(FilterTransform)

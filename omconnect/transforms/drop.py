"""The ``drop`` transform: remove columns."""

from __future__ import annotations

from pydantic import Field

from omconnect.connectors.api.errors import ConfigError
from omconnect.connectors.api.plugins import register
from omconnect.connectors.api.spec import ConnectorSpec
from omconnect.connectors.api.transform import Transform
from omconnect.schemas.record import RecordBatch
from omconnect.schemas.schema import Schema
from omconnect.transforms._column_names import require_columns


class DropSpec(ConnectorSpec):
    """Options of the ``drop`` transform."""

    fields: list[str] = Field(description="The columns to remove.", min_length=1)
    ignore_missing: bool = Field(
        default=False,
        description="Skip names that are not columns instead of refusing the pipeline.",
    )


class DropTransform(Transform):
    """Removes columns from every row.

    Key fields cannot be dropped (the message key and upserting sinks need them): drop them
    after re-keying, or rename instead. Dropping every column is refused too.
    """

    name = "drop"
    spec = DropSpec
    description = "Remove columns."

    def __init__(self, config: DropSpec) -> None:
        super().__init__(config)
        self.dropped = list(dict.fromkeys(config.fields))
        self.ignore_missing = config.ignore_missing

    def check(self, schema: Schema) -> None:
        self.remaining_schema(schema)

    def remaining_schema(self, schema: Schema) -> Schema:
        """``schema`` without the dropped columns.

        Raises:
            ConfigError: a name is not a column (unless ``ignore_missing``), a key field would
                be dropped, or no column would remain.
        """
        if not self.ignore_missing:
            require_columns(self.dropped, schema.names, key="fields")
        keys = [k for k in schema.key_fields if k in self.dropped]
        if keys:
            raise ConfigError(f"cannot drop key field {keys[0]!r}", "fields")
        fields = tuple(f for f in schema.fields if f.name not in self.dropped)
        if not fields:
            raise ConfigError("drop would remove every column", "fields")
        return schema.with_fields(fields)

    def apply(self, batch: RecordBatch) -> RecordBatch:
        schema = self.remaining_schema(batch.schema)
        # ``select`` keeps field and schema metadata; the header's key fields are unchanged
        # because key fields are never dropped.
        values = batch.values.select(schema.names)
        return batch.with_values(values, schema)


register(DropTransform)

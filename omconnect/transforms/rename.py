"""The ``rename`` transform: give columns new names."""

from __future__ import annotations

import dataclasses

from pydantic import Field

from omconnect.connectors.api.errors import ConfigError
from omconnect.connectors.api.plugins import register
from omconnect.connectors.api.spec import ConnectorSpec
from omconnect.connectors.api.transform import Transform
from omconnect.schemas.record import RecordBatch
from omconnect.schemas.schema import Schema
from omconnect.transforms._arrow_columns import rebuild_values
from omconnect.transforms._column_names import require_columns


class RenameSpec(ConnectorSpec):
    """Options of the ``rename`` transform."""

    fields: dict[str, str] = Field(
        description="Old column name -> new column name, e.g. {amt: amount}.", min_length=1
    )


class RenameTransform(Transform):
    """Renames value columns; the schema's key fields follow their columns.

    Every old name must be a column, and no two columns may end up with the same name (a
    swap ``{a: b, b: a}`` is fine). Explicit keys (``RecordBatch.keys``) are not renamed.
    """

    name = "rename"
    spec = RenameSpec
    description = "Rename columns."

    def __init__(self, config: RenameSpec) -> None:
        super().__init__(config)
        self.mapping = dict(config.fields)

    def check(self, schema: Schema) -> None:
        self.renamed_schema(schema)

    def renamed_schema(self, schema: Schema) -> Schema:
        """``schema`` with the columns and key fields renamed.

        Raises:
            ConfigError: an old name is not a column, or two columns would share a name.
        """
        require_columns(self.mapping, schema.names, key="fields")
        names = [self.mapping.get(n, n) for n in schema.names]
        clashing = sorted({n for n in names if names.count(n) > 1})
        if clashing:
            raise ConfigError(f"renaming would give two columns the name {clashing[0]!r}", "fields")
        fields = tuple(
            dataclasses.replace(f, name=new) for f, new in zip(schema.fields, names, strict=True)
        )
        keys = tuple(self.mapping.get(k, k) for k in schema.key_fields)
        return dataclasses.replace(schema, fields=fields, key_fields=keys)

    def apply(self, batch: RecordBatch) -> RecordBatch:
        schema = self.renamed_schema(batch.schema)
        arrow_fields = [f.with_name(self.mapping.get(f.name, f.name)) for f in batch.values.schema]
        values = rebuild_values(batch.values, batch.values.columns, arrow_fields, schema)
        return batch.with_values(values, schema)


register(RenameTransform)

"""The ``mask`` transform: hide the values of sensitive columns."""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Literal

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import ConfigDict, Field, model_validator

from omconnect.connectors.api.errors import ConfigError
from omconnect.connectors.api.plugins import register
from omconnect.connectors.api.spec import ConnectorSpec
from omconnect.connectors.api.transform import Transform
from omconnect.schemas import types as t
from omconnect.schemas.arrow import to_arrow_type
from omconnect.schemas.record import RecordBatch
from omconnect.schemas.schema import Schema
from omconnect.schemas.types import DataType, Kind
from omconnect.transforms._arrow_columns import rebuild_values
from omconnect.transforms._column_names import require_columns
from omconnect.transforms._string_columns import as_text, is_bytes, is_text


class MaskSpec(ConnectorSpec):
    """Options of the ``mask`` transform. Give at most one of ``with``, ``hash``, ``keep_last``;
    with none of them every value becomes ``***``."""

    model_config = ConfigDict(validate_by_name=True, validate_by_alias=True)

    fields: list[str] = Field(description="The columns to mask.", min_length=1)
    with_: str | None = Field(
        default=None, alias="with", description='Replace every value with this text ("***").'
    )
    hash: Literal["sha256"] | None = Field(
        default=None,
        description="Replace every value with the hex digest of its UTF-8 text (or bytes).",
    )
    keep_last: int | None = Field(
        default=None, ge=0, description="Mask every character but the last N."
    )
    char: str = Field(
        default="*", min_length=1, max_length=1, description="The masking character (keep_last)."
    )
    cast_to_string: bool = Field(
        default=False,
        description="Mask non-text columns by turning them into text first (they become string).",
    )

    @model_validator(mode="after")
    def _one_method(self) -> MaskSpec:
        given = [k for k in ("with_", "hash", "keep_last") if getattr(self, k) is not None]
        if len(given) > 1:
            names = " and ".join(k.rstrip("_") for k in given)
            raise ValueError(f"give only one of with, hash and keep_last (got {names})")
        return self


class MaskTransform(Transform):
    """Masks the values of ``fields``; nulls stay null.

    - ``with: "***"`` replaces each value with a fixed text;
    - ``hash: sha256`` replaces it with the hex SHA-256 of its UTF-8 text (bytes columns: of
      the bytes), so equal values still join. The digest is computed once per distinct value
      of the batch (dictionary encoding), the only Python loop of the transforms;
    - ``keep_last: N`` replaces all but the last N characters with ``char`` (shorter values
      stay as they are).

    Text columns are masked as they are. Other columns are refused unless
    ``cast_to_string: true``, which turns them into text first (their type becomes string);
    ``hash`` also takes bytes columns. Lists, maps and structs cannot be masked.
    """

    name = "mask"
    spec = MaskSpec
    description = "Mask sensitive columns: fixed text, SHA-256 digest, or all but the last N."

    def __init__(self, config: MaskSpec) -> None:
        super().__init__(config)
        self.options = config
        self.columns = list(dict.fromkeys(config.fields))

    def check(self, schema: Schema) -> None:
        require_columns(self.columns, schema.names, key="fields")
        for name in self.columns:
            self._output_type(name, schema.type_of(name))

    def _output_type(self, name: str, dtype: DataType) -> DataType:
        """The omconnect type of column ``name`` once masked; refuses what cannot be masked."""
        if dtype.kind == Kind.STRING:
            return dtype
        if dtype.kind == Kind.BYTES and self.options.hash is not None:
            return t.string()
        if dtype.kind in (Kind.ARRAY, Kind.MAP, Kind.STRUCT):
            raise ConfigError(f'column "{name}" is {dtype}: it cannot be masked', "fields")
        if not self.options.cast_to_string:
            raise ConfigError(
                f'column "{name}" is {dtype}, not string: set cast_to_string: true to mask it '
                "as text",
                "fields",
            )
        return t.string()

    def apply(self, batch: RecordBatch) -> RecordBatch:
        require_columns(self.columns, batch.schema.names, key="fields")
        columns = list(batch.values.columns)
        arrow_fields = list(batch.values.schema)
        fields = list(batch.schema.fields)
        for name in self.columns:
            i = batch.values.schema.get_field_index(name)
            dtype = self._output_type(name, batch.schema.type_of(name))
            masked = self._mask(columns[i])
            if dtype != batch.schema.type_of(name):
                arrow_fields[i] = arrow_fields[i].with_type(to_arrow_type(dtype))
                j = batch.schema.names.index(name)
                fields[j] = dataclasses.replace(fields[j], type=dtype)
            columns[i] = masked.cast(arrow_fields[i].type)
        schema = dataclasses.replace(batch.schema, fields=tuple(fields))
        values = rebuild_values(batch.values, columns, arrow_fields, schema)
        return batch.with_values(values, schema)

    def _mask(self, column: pa.Array) -> pa.Array:
        if self.options.hash is not None:
            return _sha256_hex(column if is_bytes(column.type) else _text(column))
        text = _text(column)
        if self.options.keep_last is not None:
            return _keep_last(text, self.options.keep_last, self.options.char)
        replacement = pa.scalar(self.options.with_ or "***", pa.string())
        return pc.if_else(pc.is_valid(text), replacement, pa.scalar(None, pa.string()))


def _text(column: pa.Array) -> pa.Array:
    return column.cast(pa.string()) if is_text(column.type) else as_text(column)


def _keep_last(text: pa.Array, keep: int, char: str) -> pa.Array:
    hidden = pc.max_element_wise(pc.subtract(pc.utf8_length(text), keep), 0)
    prefix = pc.binary_repeat(pa.scalar(char), hidden)
    tail = pc.utf8_slice_codeunits(text, start=-keep) if keep else pa.scalar("")
    return pc.binary_join_element_wise(prefix, tail, "")


def _sha256_hex(column: pa.Array) -> pa.Array:
    """Hex SHA-256 of each value, hashing each distinct value of the column once."""
    encoded = pc.dictionary_encode(column)
    distinct = encoded.dictionary.cast(pa.binary()).to_pylist()
    digests = pa.array([hashlib.sha256(v).hexdigest() for v in distinct], pa.string())
    return digests.take(encoded.indices)


register(MaskTransform)

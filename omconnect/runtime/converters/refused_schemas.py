"""``errors.incompatible_schema: dead_letter``: a batch whose schema the registry refuses
becomes failed rows instead of stopping the pipeline.

A converter raises ``IncompatibleSchemaError`` when the schema registry refuses to register
the schema of a batch (its subject's compatibility mode forbids the change). By default that
stops the pipeline with the registry's reason: a pipeline problem, not a row problem. Wrapped
in ``RefusedSchemaRows``, every row of such a batch fails with that reason instead, so the
runtime sends the rows to the dead letter topic (``omconnect.error.reason`` holds the
refusal) and the batches the registry accepts flow on.
"""

from __future__ import annotations

import pyarrow as pa

from omconnect.runtime.converters.base import Converter, Decoded, DecodedGroup, Encoded
from omconnect.runtime.state.schema_registry import IncompatibleSchemaError
from omconnect.schemas.record import RecordBatch


class RefusedSchemaRows(Converter):
    """``converter``, with a refused schema turned into failed rows on ``encode``."""

    def __init__(self, converter: Converter) -> None:
        self.converter = converter
        self.name = converter.name
        self.content_type = converter.content_type

    def encode(self, topic: str, batch: RecordBatch) -> Encoded:
        try:
            return self.converter.encode(topic, batch)
        except IncompatibleSchemaError as refused:
            rows = batch.num_rows
            return Encoded(
                values=pa.nulls(rows, pa.binary()),
                keys=None,
                failed=dict.fromkeys(range(rows), refused),
            )

    def decode(self, topic: str, values: pa.BinaryArray, keys: pa.BinaryArray | None) -> Decoded:
        return self.converter.decode(topic, values, keys)

    def decode_with_headers(
        self,
        topic: str,
        values: pa.BinaryArray,
        keys: pa.BinaryArray | None,
        headers: pa.MapArray | None,
    ) -> Decoded:
        return self.converter.decode_with_headers(topic, values, keys, headers)

    def decoded_form(self, topic: str, batch: RecordBatch) -> DecodedGroup | None:
        return self.converter.decoded_form(topic, batch)

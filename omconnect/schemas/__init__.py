"""The standard message model and schema system. Imports no other omconnect package."""

from omconnect.schemas.arrow import (
    from_arrow_field,
    from_arrow_schema,
    from_arrow_type,
    rows_to_arrow,
    to_arrow_field,
    to_arrow_schema,
    to_arrow_type,
)
from omconnect.schemas.avro import from_avro_schema, to_avro_schema
from omconnect.schemas.jsonschema import from_json_schema, to_json_schema
from omconnect.schemas.message import ExtensionHeader, Header, Message, messages_to_batch
from omconnect.schemas.message_batch import MessageBatch
from omconnect.schemas.message_ids import MessageIdRuns
from omconnect.schemas.record import Position, PositionMark, Record, RecordBatch, partition_id
from omconnect.schemas.schema import Schema
from omconnect.schemas.types import DataType, Field, Kind

__all__ = [
    "DataType",
    "ExtensionHeader",
    "Field",
    "Header",
    "Kind",
    "Message",
    "MessageBatch",
    "MessageIdRuns",
    "Position",
    "PositionMark",
    "Record",
    "RecordBatch",
    "Schema",
    "from_arrow_field",
    "from_arrow_schema",
    "from_arrow_type",
    "from_avro_schema",
    "from_json_schema",
    "messages_to_batch",
    "partition_id",
    "rows_to_arrow",
    "to_arrow_field",
    "to_arrow_schema",
    "to_arrow_type",
    "to_avro_schema",
    "to_json_schema",
]

"""The standard message model and schema system. Imports no other omconnect package."""

from omconnect.schemas.message_batch import MessageBatch
from omconnect.schemas.record import Position, PositionMark, Record, RecordBatch, partition_id
from omconnect.schemas.schema import Schema
from omconnect.schemas.types import DataType, Field, Kind

__all__ = [
    "DataType",
    "Field",
    "Kind",
    "MessageBatch",
    "Position",
    "PositionMark",
    "Record",
    "RecordBatch",
    "Schema",
    "partition_id",
]

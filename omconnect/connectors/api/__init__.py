"""The public connector API: everything a connector may import besides ``omconnect.schemas``."""

from omconnect.connectors.api.context import OffsetReader, TaskContext
from omconnect.connectors.api.errors import (
    ConfigError,
    ConnectorError,
    ErrorReporter,
    RetriableError,
)
from omconnect.connectors.api.plugins import (
    Registration,
    UnknownPluginError,
    load_plugins,
    lookup,
    register,
    registrations,
)
from omconnect.connectors.api.sink import SinkConnector, SinkTask, TopicPartition
from omconnect.connectors.api.source import AsyncSourceTask, PollResult, SourceConnector, SourceTask
from omconnect.connectors.api.spec import ConnectorSpec, SecretStr, TypeNames, secret_fields
from omconnect.connectors.api.transform import Transform, TransformRowErrors
from omconnect.schemas.record import Position, PositionMark, Record, RecordBatch

__all__ = [
    "AsyncSourceTask",
    "ConfigError",
    "ConnectorError",
    "ConnectorSpec",
    "ErrorReporter",
    "OffsetReader",
    "PollResult",
    "Position",
    "PositionMark",
    "Record",
    "RecordBatch",
    "Registration",
    "RetriableError",
    "SecretStr",
    "SinkConnector",
    "SinkTask",
    "SourceConnector",
    "SourceTask",
    "TaskContext",
    "TopicPartition",
    "Transform",
    "TransformRowErrors",
    "TypeNames",
    "UnknownPluginError",
    "load_plugins",
    "lookup",
    "register",
    "registrations",
    "secret_fields",
]

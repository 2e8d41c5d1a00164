"""Pipeline files: loading, validation, interpolation, secrets and the editor JSON Schema."""

from omconnect.runtime.config.connector_blocks import ValidatedConnector
from omconnect.runtime.config.cron import CronSchedule, parse_cron
from omconnect.runtime.config.durations import ByteSize, Duration, parse_duration, parse_size
from omconnect.runtime.config.json_schema import pipeline_json_schema
from omconnect.runtime.config.loader import (
    LoadedPipeline,
    load_pipeline,
    load_pipelines,
    pipeline_files,
    redacted_config,
    validate_connectors,
)
from omconnect.runtime.config.model import (
    BatchingConfig,
    ConnectorBlock,
    ErrorsConfig,
    PipelineConfig,
    TransformBlock,
)
from omconnect.runtime.config.problems import (
    PipelineConfigError,
    Problem,
    format_key_path,
    parse_key_path,
)
from omconnect.runtime.config.redaction import RedactingFilter, Redactor

__all__ = [
    "BatchingConfig",
    "ByteSize",
    "ConnectorBlock",
    "CronSchedule",
    "Duration",
    "ErrorsConfig",
    "LoadedPipeline",
    "PipelineConfig",
    "PipelineConfigError",
    "Problem",
    "RedactingFilter",
    "Redactor",
    "TransformBlock",
    "ValidatedConnector",
    "format_key_path",
    "load_pipeline",
    "load_pipelines",
    "parse_cron",
    "parse_duration",
    "parse_key_path",
    "parse_size",
    "pipeline_files",
    "pipeline_json_schema",
    "redacted_config",
    "validate_connectors",
]

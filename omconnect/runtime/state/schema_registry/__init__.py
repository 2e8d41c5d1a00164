"""The schema registry: Avro schemas under subjects with global ids (Confluent's model)."""

from omconnect.runtime.state.schema_registry.compatibility import incompatibilities, reader_problems
from omconnect.runtime.state.schema_registry.protocol import (
    DEFAULT_COMPATIBILITY,
    CompatibilityMode,
    IncompatibleSchemaError,
    SchemaNotFoundError,
    SchemaRegistry,
    key_subject,
    value_subject,
)
from omconnect.runtime.state.schema_registry.sqlite import SqliteSchemaRegistry, canonical_json

__all__ = [
    "DEFAULT_COMPATIBILITY",
    "CompatibilityMode",
    "IncompatibleSchemaError",
    "SchemaNotFoundError",
    "SchemaRegistry",
    "SqliteSchemaRegistry",
    "canonical_json",
    "incompatibilities",
    "key_subject",
    "reader_problems",
    "value_subject",
]

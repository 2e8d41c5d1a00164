"""The schema registry: Avro schemas under subjects with global ids (Confluent's model).

``SqliteSchemaRegistry`` is the embedded one; ``HttpSchemaRegistry`` an external
Confluent-compatible one by URL; ``SchemaRegistryApi`` serves any of them with Confluent's
REST API.
"""

from omconnect.runtime.state.schema_registry.compatibility import incompatibilities, reader_problems
from omconnect.runtime.state.schema_registry.http_client import (
    HttpSchemaRegistry,
    SchemaRegistryError,
    SchemaRegistryUnavailableError,
)
from omconnect.runtime.state.schema_registry.protocol import (
    DEFAULT_COMPATIBILITY,
    CompatibilityMode,
    IncompatibleSchemaError,
    SchemaNotFoundError,
    SchemaRegistry,
    key_subject,
    value_subject,
)
from omconnect.runtime.state.schema_registry.registration import canonical_json
from omconnect.runtime.state.schema_registry.rest_api import SchemaRegistryApi
from omconnect.runtime.state.schema_registry.sqlite import SqliteSchemaRegistry

__all__ = [
    "DEFAULT_COMPATIBILITY",
    "CompatibilityMode",
    "HttpSchemaRegistry",
    "IncompatibleSchemaError",
    "SchemaNotFoundError",
    "SchemaRegistry",
    "SchemaRegistryApi",
    "SchemaRegistryError",
    "SchemaRegistryUnavailableError",
    "SqliteSchemaRegistry",
    "canonical_json",
    "incompatibilities",
    "key_subject",
    "reader_problems",
    "value_subject",
]

"""The schema registry contract: Avro schemas stored under subjects, with global ids.

It follows the Confluent Schema Registry model so that bodies in the Confluent wire format
(magic byte + 4-byte schema id) can be read by any Confluent-compatible consumer: a schema
gets one global id however many subjects use it; each subject keeps an ordered list of
versions; a new version must be compatible with earlier ones under the subject's mode.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

AvroSchema = Any
"""An Avro schema as fastavro takes it: a dict, a list (union) or a type name."""


class CompatibilityMode(StrEnum):
    """Which earlier versions a new version of a subject must be compatible with, and how.

    BACKWARD: the new schema reads data written with the latest one. FORWARD: the latest
    reads data written with the new one. FULL: both. ``_TRANSITIVE``: against every earlier
    version, not only the latest. NONE: no check.
    """

    BACKWARD = "BACKWARD"
    BACKWARD_TRANSITIVE = "BACKWARD_TRANSITIVE"
    FORWARD = "FORWARD"
    FORWARD_TRANSITIVE = "FORWARD_TRANSITIVE"
    FULL = "FULL"
    FULL_TRANSITIVE = "FULL_TRANSITIVE"
    NONE = "NONE"


DEFAULT_COMPATIBILITY = CompatibilityMode.BACKWARD


class SchemaNotFoundError(KeyError):
    """No schema has the requested id."""


class IncompatibleSchemaError(ValueError):
    """A new schema version breaks the subject's compatibility mode.

    Attributes:
        subject: the subject registered to.
        mode: the mode it broke.
        problems: one line per incompatibility, each naming the field path.
    """

    def __init__(self, subject: str, mode: CompatibilityMode, problems: list[str]) -> None:
        self.subject = subject
        self.mode = mode
        self.problems = problems
        super().__init__(
            f"schema for subject {subject!r} is not {mode.value} compatible: " + "; ".join(problems)
        )


@runtime_checkable
class SchemaRegistry(Protocol):
    """Stores Avro schemas under subjects; implementations must be safe across threads."""

    def register(self, subject: str, avro_schema: AvroSchema) -> int:
        """The id of ``avro_schema`` under ``subject``, registering a new version if needed.

        Idempotent: a schema already registered under the subject returns its id and adds no
        version. Raises ``IncompatibleSchemaError`` when the subject's mode refuses it.
        """
        ...

    def get(self, schema_id: int) -> AvroSchema:
        """The schema with ``schema_id``; raises ``SchemaNotFoundError``."""
        ...

    def latest(self, subject: str) -> tuple[int, int, AvroSchema] | None:
        """(id, version, schema) of the subject's latest version, or None."""
        ...

    def version(self, subject: str, version: int) -> tuple[int, AvroSchema] | None:
        """(id, schema) of version ``version`` of the subject, or None when it has none."""
        ...

    def subjects(self) -> list[str]:
        """Every subject with at least one version, sorted."""
        ...

    def versions(self, subject: str) -> list[int]:
        """The subject's version numbers, ascending (empty when unknown)."""
        ...

    def set_compatibility(self, mode: CompatibilityMode | str, subject: str | None = None) -> None:
        """Set the mode of ``subject``, or the registry-wide default when None."""
        ...

    def compatibility(self, subject: str | None = None) -> CompatibilityMode:
        """The mode in force for ``subject`` (its own, else the default)."""
        ...


def value_subject(topic: str) -> str:
    """Confluent's TopicNameStrategy subject of a topic's message values."""
    return f"{topic}-value"


def key_subject(topic: str) -> str:
    """Confluent's TopicNameStrategy subject of a topic's message keys."""
    return f"{topic}-key"

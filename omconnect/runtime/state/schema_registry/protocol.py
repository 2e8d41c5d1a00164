"""The schema registry contract: Avro schemas stored under subjects, with global ids.

It follows the Confluent Schema Registry model so that bodies in the Confluent wire format
(magic byte + 4-byte schema id) can be read by any Confluent-compatible consumer: a schema
gets one global id however many subjects use it; each subject keeps an ordered list of
versions; a new version must be compatible with earlier ones under the subject's mode.

Versions can be deleted as in Confluent's registry: a soft delete hides a version (it no longer
counts as the latest, in compatibility checks or for idempotent registration, and new version
numbers keep counting past it) but keeps it readable on request; a permanent delete removes
it. A schema id keeps its meaning for ever, so ``get`` still answers for deleted versions: data
written with them stays readable.
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
        mode: the mode it broke (None when an external registry refused without saying).
        problems: one line per incompatibility, each naming the field path (or the external
            registry's own message).
    """

    def __init__(self, subject: str, mode: CompatibilityMode | None, problems: list[str]) -> None:
        self.subject = subject
        self.mode = mode
        self.problems = problems
        what = f"{mode.value} compatible" if mode is not None else "compatible"
        super().__init__(f"schema for subject {subject!r} is not {what}: " + "; ".join(problems))


@runtime_checkable
class SchemaRegistry(Protocol):
    """Stores Avro schemas under subjects; implementations must be safe across threads."""

    def register(self, subject: str, avro_schema: AvroSchema) -> int:
        """The id of ``avro_schema`` under ``subject``, registering a new version if needed.

        Idempotent: a schema already registered under the subject (in a version that is not
        deleted) returns its id and adds no version. Raises ``IncompatibleSchemaError`` when
        the subject's mode refuses it, ``ValueError`` when it is not a valid Avro schema.
        """
        ...

    def get(self, schema_id: int) -> AvroSchema:
        """The schema with ``schema_id``; raises ``SchemaNotFoundError``."""
        ...

    def latest(self, subject: str) -> tuple[int, int, AvroSchema] | None:
        """(id, version, schema) of the subject's latest version that is not deleted, or None."""
        ...

    def version(
        self, subject: str, version: int, deleted: bool = False
    ) -> tuple[int, AvroSchema] | None:
        """(id, schema) of version ``version`` of the subject, or None when it has none (or it
        is soft-deleted and ``deleted`` is false)."""
        ...

    def subjects(self, deleted: bool = False) -> list[str]:
        """Every subject with at least one version, sorted; soft-deleted versions count only
        when ``deleted`` is true."""
        ...

    def versions(self, subject: str, deleted: bool = False) -> list[int]:
        """The subject's version numbers, ascending (empty when unknown); soft-deleted ones
        only when ``deleted`` is true."""
        ...

    def delete_versions(self, subject: str, versions: list[int], permanent: bool = False) -> None:
        """Soft-delete ``versions`` of the subject, or with ``permanent`` remove them (soft-
        deleted or not). Versions the subject does not have are ignored."""
        ...

    def set_compatibility(
        self, mode: CompatibilityMode | str | None, subject: str | None = None
    ) -> None:
        """Set the mode of ``subject``, or the registry-wide default when None. A ``mode`` of
        None removes the subject's own mode (the default applies again), or resets the
        default to ``DEFAULT_COMPATIBILITY``."""
        ...

    def compatibility(self, subject: str | None = None) -> CompatibilityMode:
        """The mode in force for ``subject`` (its own, else the default)."""
        ...

    def subject_compatibility(self, subject: str) -> CompatibilityMode | None:
        """The subject's own mode, or None when the default applies to it."""
        ...


def value_subject(topic: str) -> str:
    """Confluent's TopicNameStrategy subject of a topic's message values."""
    return f"{topic}-value"


def key_subject(topic: str) -> str:
    """Confluent's TopicNameStrategy subject of a topic's message keys."""
    return f"{topic}-key"

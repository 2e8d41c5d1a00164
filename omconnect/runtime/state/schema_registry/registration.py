"""The registry's rules that do not depend on where schemas are stored.

Every embedded registry (SQLite, Postgres) applies the same rules around its own storage: a
schema is valid Avro and is identified by its canonical JSON; a new version of a subject
must pass the subject's compatibility mode against the earlier versions; the mode in force is
the subject's own, else the registry-wide default (stored under ``DEFAULT_SUBJECT``), else
``DEFAULT_COMPATIBILITY``. Nothing here does I/O.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import fastavro

from omconnect.runtime.state.schema_registry.compatibility import incompatibilities
from omconnect.runtime.state.schema_registry.protocol import (
    DEFAULT_COMPATIBILITY,
    AvroSchema,
    CompatibilityMode,
    IncompatibleSchemaError,
)

DEFAULT_SUBJECT = ""
"""The subject under which a store keeps the registry-wide default mode."""


def canonical_json(avro_schema: AvroSchema) -> str:
    """The identity of a schema: its JSON with sorted keys and no spaces.

    Unlike Avro's Parsing Canonical Form, this keeps logical types and custom attributes,
    which change how omconnect reads the data.
    """
    return json.dumps(avro_schema, sort_keys=True, separators=(",", ":"))


def checked_canonical_json(subject: str, avro_schema: AvroSchema) -> str:
    """``canonical_json(avro_schema)`` once Avro accepts the schema.

    Raises:
        ValueError: the schema is not valid Avro (the message names the subject).
    """
    try:
        fastavro.parse_schema(avro_schema)
    except Exception as error:  # fastavro raises several types for a malformed schema
        raise ValueError(f"subject {subject!r}: not a valid Avro schema: {error}") from error
    return canonical_json(avro_schema)


def require_compatible(
    subject: str,
    mode: CompatibilityMode,
    avro_schema: AvroSchema,
    earlier: list[tuple[int, AvroSchema]],
) -> None:
    """Refuse ``avro_schema`` as the next version of ``subject`` when ``mode`` forbids it
    after the ``earlier`` (version, schema) list, oldest first.

    Raises:
        IncompatibleSchemaError: one problem per line, each naming the field path.
    """
    problems = incompatibilities(mode, avro_schema, earlier)
    if problems:
        raise IncompatibleSchemaError(subject, mode, problems)


def compatibility_mode(mode: CompatibilityMode | str) -> CompatibilityMode:
    """``mode`` as a ``CompatibilityMode`` (any case).

    Raises:
        ValueError: not a mode.
    """
    return CompatibilityMode(str(mode).upper())


def mode_in_force(stored: Mapping[str, str], subject: str | None) -> CompatibilityMode:
    """The mode of ``subject`` given the stored ``{subject: mode}`` rows (its own, else the
    registry-wide default under ``DEFAULT_SUBJECT``, else ``DEFAULT_COMPATIBILITY``)."""
    mode = stored.get(subject or DEFAULT_SUBJECT) or stored.get(DEFAULT_SUBJECT)
    return CompatibilityMode(mode) if mode else DEFAULT_COMPATIBILITY

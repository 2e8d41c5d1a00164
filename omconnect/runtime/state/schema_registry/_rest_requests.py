"""What a Confluent Schema Registry REST request carries, read as Confluent's registry reads
it: path parameters, boolean and paging query parameters, version ids, JSON bodies and the
schema of a registration; bad input raises the ``_rest_errors`` Confluent gives for it."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import fastavro

from omconnect.runtime.state.schema_registry import _rest_errors as errors
from omconnect.runtime.state.schema_registry.protocol import AvroSchema

MAX_VERSION = 2**31 - 1


@dataclass(frozen=True)
class RegistryRequest:
    """One request: ``params`` from the path (``subject``, ``version``, ``id``), the query's
    values, and the body's bytes."""

    params: dict[str, str]
    query: Mapping[str, Sequence[str]]
    body: bytes

    def flag(self, name: str) -> bool:
        """A boolean parameter (``true`` in any case; clients send ``True`` too)."""
        values = self.query.get(name)
        return values is not None and len(values) > 0 and values[-1].lower() == "true"

    def number(self, name: str, default: int) -> int:
        values = self.query.get(name)
        if not values:
            return default
        try:
            return int(values[-1])
        except ValueError:
            raise errors.bad_request(f"{name} must be an integer, not {values[-1]!r}") from None

    def page(self, items: list[Any]) -> list[Any]:
        """``items`` from ``?offset=`` and at most ``?limit=`` of them (all when negative)."""
        offset, limit = max(self.number("offset", 0), 0), self.number("limit", -1)
        return items[offset : offset + limit] if limit >= 0 else items[offset:]

    def version(self) -> int | None:
        """The path's version: a number from 1 to 2^31-1, or None for ``latest`` (or -1)."""
        text = self.params.get("version", "latest")
        if text in ("latest", "-1"):
            return None
        try:
            number = int(text)
        except ValueError:
            raise errors.invalid_version(text) from None
        if not 1 <= number <= MAX_VERSION:
            raise errors.invalid_version(text)
        return number

    def json(self) -> dict[str, Any]:
        """The body's JSON object (an empty body is ``{}``)."""
        try:
            value = json.loads(self.body or b"{}")
        except ValueError as error:
            raise errors.bad_request(f"the request body is not JSON: {error}") from None
        if not isinstance(value, dict):
            raise errors.bad_request("the request body must be a JSON object")
        return value

    def schema(self) -> AvroSchema:
        """The Avro schema of a body such as ``{"schema": "...", "schemaType": "AVRO"}``."""
        fields = self.json()
        schema_type = fields.get("schemaType") or "AVRO"
        if str(schema_type).upper() != "AVRO":
            raise errors.unsupported_schema_type(str(schema_type))
        if fields.get("references"):
            raise errors.invalid_schema("schema references are not supported")
        text = fields.get("schema")
        if not isinstance(text, str) or not text.strip():
            raise errors.invalid_schema('the request has no "schema" string')
        try:
            schema = json.loads(text)
            fastavro.parse_schema(schema)
        except Exception as error:  # json and fastavro raise several types for bad input
            raise errors.invalid_schema(f"{text[:200]}, details: {error}") from None
        return schema


def match_path(pattern: list[str], segments: list[str]) -> dict[str, str] | None:
    """The parameters of ``segments`` when they fit ``pattern`` (``{name}`` takes any
    non-empty segment), else None."""
    if len(pattern) != len(segments):
        return None
    params: dict[str, str] = {}
    for expected, segment in zip(pattern, segments, strict=True):
        if expected.startswith("{"):
            if not segment:
                return None
            params[expected[1:-1]] = segment
        elif expected != segment:
            return None
    return params

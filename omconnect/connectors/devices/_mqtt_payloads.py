"""MQTT payloads and topics as Arrow columns: what the ``mqtt`` source makes of what it took.

Payloads are read a poll at a time, as one Arrow array:

- ``json``: each payload is one JSON object. With declared ``columns`` every payload is read
  with those types in one call (``omconnect.codecs.json_values``); fields not declared are
  not read. Without them ``pyarrow.json`` infers the fields and types of the poll's payloads
  together; when the poll's payloads cannot share one schema (a value that is a number in
  one and text in another), they are split in halves until each part parses, so the poll
  gives several batches in order, and a payload that parses alone in no way (not JSON, not
  an object) is a bad payload.
- ``string``: the payload as UTF-8 text (a payload that is not valid UTF-8 is bad);
- ``bytes``: the payload as it is.

``TopicTemplate`` turns the levels of a topic into string columns
(``plant/{site}/{device}/telemetry``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import pyarrow as pa

from omconnect.codecs.json_scan import read_json_objects
from omconnect.codecs.json_values import json_records

PAYLOAD_COLUMN = "payload"
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True)
class Decoded:
    """Payloads ``start`` to ``end`` (indices into the poll's) as rows of ``table``, or, for
    one payload that could not be read (``table`` None), the reason."""

    start: int
    end: int
    table: pa.Table | None = None
    error: Exception | None = None


class PayloadReader:
    """Reads the payloads of a poll as ``kind`` says; ``declared`` are the Arrow types of the
    ``columns`` option (json only)."""

    def __init__(self, kind: str, declared: Mapping[str, pa.DataType]) -> None:
        self.kind = kind
        self.declared = pa.schema(list(declared.items())) if declared else None

    def read(self, payloads: list[bytes]) -> list[Decoded]:
        """The payloads as consecutive parts, in order, covering every payload once."""
        if not payloads:
            return []
        if self.kind == "bytes":
            return [Decoded(0, len(payloads), pa.table({PAYLOAD_COLUMN: pa.array(payloads)}))]
        if self.kind == "string":
            return _texts(payloads)
        bodies = pa.array(payloads, pa.binary())
        if self.declared is not None:
            return _typed(bodies, self.declared)
        return _inferred(bodies, 0)


def _texts(payloads: list[bytes]) -> list[Decoded]:
    parts: list[Decoded] = []
    start = 0
    texts: list[str] = []

    def flush(end: int) -> None:
        if end > start:
            parts.append(Decoded(start, end, pa.table({PAYLOAD_COLUMN: pa.array(texts)})))

    for index, payload in enumerate(payloads):
        try:
            texts.append(payload.decode())
        except UnicodeDecodeError as error:
            flush(index)
            parts.append(Decoded(index, index + 1, error=ValueError(f"not UTF-8 text: {error}")))
            start, texts = index + 1, []
    flush(len(payloads))
    return parts


def _typed(bodies: pa.BinaryArray, schema: pa.Schema) -> list[Decoded]:
    """Every body read with the declared types, one part of good rows between bad ones."""
    records = json_records(bodies, schema)
    table = pa.Table.from_batches([records.batch])
    parts: list[Decoded] = []
    start = 0
    for index, error in records.failed.items():
        if index > start:
            parts.append(Decoded(start, index, table.slice(start, index - start)))
        parts.append(Decoded(index, index + 1, error=ValueError(f"{error}")))
        start = index + 1
    if start < len(bodies):
        parts.append(Decoded(start, len(bodies), table.slice(start)))
    return parts


def _inferred(bodies: pa.BinaryArray, first: int) -> list[Decoded]:
    """Bodies ``first..`` parsed together, else in halves (see the module docstring); parts
    next to each other with one schema are joined."""
    try:
        table = read_json_objects(bodies)
    except (pa.ArrowInvalid, ValueError) as error:
        if len(bodies) == 1:
            return [Decoded(first, first + 1, error=_reason(error))]
        half = len(bodies) // 2
        parts = _inferred(bodies.slice(0, half), first) + _inferred(
            bodies.slice(half), first + half
        )
        return _joined(parts)
    return [Decoded(first, first + len(bodies), _nulls_as_strings(table))]


def _joined(parts: list[Decoded]) -> list[Decoded]:
    joined: list[Decoded] = []
    for part in parts:
        last = joined[-1] if joined else None
        if (
            last is not None
            and last.table is not None
            and part.table is not None
            and last.table.schema.equals(part.table.schema)
        ):
            joined[-1] = Decoded(last.start, part.end, pa.concat_tables([last.table, part.table]))
        else:
            joined.append(part)
    return joined


def _nulls_as_strings(table: pa.Table) -> pa.Table:
    """A field null in every payload of the poll is a string (its type is not known)."""
    for index, field in enumerate(table.schema):
        if pa.types.is_null(field.type):
            table = table.set_column(index, field.name, table.column(index).cast(pa.string()))
    return table


def _reason(error: Exception) -> ValueError:
    text = " ".join(str(error).split())
    if "changed from object to" in text or "1 bodies held 0" in text:
        return ValueError(f"the payload is not a JSON object: {text}")
    return ValueError(f"the payload is not JSON: {text}")


class TopicTemplate:
    """``plant/{site}/{device}/telemetry``: the topic levels that become fields (strings).
    A topic with other levels than the template's (another count, another literal level)
    gives nulls."""

    def __init__(self, template: str) -> None:
        self.levels = template.split("/")
        self.fields = [m[1] for level in self.levels if (m := _PLACEHOLDER.fullmatch(level))]
        self._cache: dict[str, tuple[str | None, ...]] = {}

    @staticmethod
    def check(template: str) -> list[str]:
        """The field names of ``template``.

        Raises:
            ValueError: a level holds a placeholder and other text, a name repeats, or
                there is no placeholder.
        """
        names = []
        for level in template.split("/"):
            match = _PLACEHOLDER.fullmatch(level)
            if match is not None:
                names.append(match[1])
            elif "{" in level or "}" in level:
                raise ValueError(
                    f"level {level!r}: a level is either {{name}} (a letter or _ then letters, "
                    "digits, _) or literal text"
                )
        if not names:
            raise ValueError("no {name} level: say which levels become fields")
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"{repeated[0]!r} names two levels")
        return names

    def values(self, topic: str) -> tuple[str | None, ...]:
        """The field values of ``topic``, in field order."""
        found = self._cache.get(topic)
        if found is None:
            found = self._cache[topic] = self._match(topic)
            if len(self._cache) > 100_000:  # many devices: forget, do not grow for ever
                self._cache.clear()
        return found

    def _match(self, topic: str) -> tuple[str | None, ...]:
        levels = topic.split("/")
        if len(levels) != len(self.levels):
            return (None,) * len(self.fields)
        found = []
        for pattern, level in zip(self.levels, levels, strict=True):
            if _PLACEHOLDER.fullmatch(pattern):
                found.append(level)
            elif pattern != level:
                return (None,) * len(self.fields)
        return tuple(found)

    def columns(self, topics: list[str]) -> dict[str, pa.Array]:
        """The field columns of ``topics``."""
        rows = [self.values(topic) for topic in topics]
        return {
            name: pa.array([row[i] for row in rows], pa.string())
            for i, name in enumerate(self.fields)
        }

"""Avro schema compatibility, by the Avro specification's schema resolution rules.

A reader schema can read data written with a writer schema when, recursively: types are
equal or the writer's promotes to the reader's (int -> long -> float -> double, string <->
bytes); every reader field exists in the writer or has a default (writer fields the reader
lacks are skipped); every writer enum symbol is known to the reader (or the reader enum has a
default); each branch a writer union may hold is readable by the reader; named types keep
their name (or the reader lists the old one in ``aliases``).
"""

from __future__ import annotations

from typing import Any

from fastavro.schema import expand_schema

from omconnect.runtime.state.schema_registry.protocol import AvroSchema, CompatibilityMode

_PROMOTIONS = {
    "int": {"long", "float", "double"},
    "long": {"float", "double"},
    "float": {"double"},
    "string": {"bytes"},
    "bytes": {"string"},
}
_BACKWARD = {CompatibilityMode.BACKWARD, CompatibilityMode.BACKWARD_TRANSITIVE}
_FORWARD = {CompatibilityMode.FORWARD, CompatibilityMode.FORWARD_TRANSITIVE}
_TRANSITIVE = {
    CompatibilityMode.BACKWARD_TRANSITIVE,
    CompatibilityMode.FORWARD_TRANSITIVE,
    CompatibilityMode.FULL_TRANSITIVE,
}


def incompatibilities(
    mode: CompatibilityMode, new: AvroSchema, earlier: list[tuple[int, AvroSchema]]
) -> list[str]:
    """Why ``new`` may not follow the ``earlier`` (version, schema) list, oldest first,
    under ``mode``; empty when it may."""
    if mode == CompatibilityMode.NONE or not earlier:
        return []
    against = earlier if mode in _TRANSITIVE else earlier[-1:]
    problems: list[str] = []
    for version, old in against:
        if mode not in _FORWARD:  # BACKWARD and FULL: the new schema reads old data
            problems += [
                f"new schema cannot read version {version} data: {p}"
                for p in reader_problems(new, old)
            ]
        if mode not in _BACKWARD:  # FORWARD and FULL: old readers read new data
            problems += [
                f"version {version} cannot read new data: {p}" for p in reader_problems(old, new)
            ]
    return problems


def reader_problems(reader: AvroSchema, writer: AvroSchema) -> list[str]:
    """Why data written with ``writer`` cannot be read with ``reader``; empty when it can."""
    reader, writer = expand_schema(reader), expand_schema(writer)
    return _problems(reader, writer, _name_of(reader) or "value")


def _node(schema: Any) -> Any:
    while isinstance(schema, dict) and isinstance(schema["type"], (dict, list)):
        schema = schema["type"]
    return schema


def _kind(schema: Any) -> str:
    schema = _node(schema)
    if isinstance(schema, list):
        return "union"
    return str(schema["type"]) if isinstance(schema, dict) else str(schema)


def _name_of(schema: Any) -> str | None:
    schema = _node(schema)
    if isinstance(schema, dict) and "name" in schema:
        return str(schema["name"]).rsplit(".", 1)[-1]
    return None


def _problems(reader: Any, writer: Any, path: str) -> list[str]:
    reader, writer = _node(reader), _node(writer)
    reader_kind, writer_kind = _kind(reader), _kind(writer)
    if writer_kind == "union":
        return [p for branch in writer for p in _problems(reader, branch, path)]
    if reader_kind == "union":
        if any(not _problems(branch, writer, path) for branch in reader):
            return []
        same_kind = [b for b in reader if _kind(b) == writer_kind]
        if len(same_kind) == 1:  # the branch meant to read it: say what is wrong with it
            return _problems(same_kind[0], writer, path)
        return [f"{path}: no branch of {[_kind(b) for b in reader]} reads {writer_kind}"]
    if reader_kind != writer_kind:
        if reader_kind in _PROMOTIONS.get(writer_kind, set()):
            return []
        return [f"{path}: type {writer_kind} cannot be read as {reader_kind}"]
    if reader_kind in ("record", "enum", "fixed"):
        aliases = {str(a).rsplit(".", 1)[-1] for a in reader.get("aliases", [])}
        if _name_of(writer) != _name_of(reader) and _name_of(writer) not in aliases:
            return [f"{path}: {reader_kind} name {_name_of(writer)!r} became {_name_of(reader)!r}"]
    if reader_kind == "record":
        return _record_problems(reader, writer, path)
    if reader_kind == "enum":
        missing = [s for s in writer["symbols"] if s not in reader["symbols"]]
        if missing and "default" not in reader:
            return [f"{path}: enum symbols {missing} are unknown to the reader"]
        return []
    if reader_kind == "fixed" and reader["size"] != writer["size"]:
        return [f"{path}: fixed size {writer['size']} became {reader['size']}"]
    if reader_kind == "array":
        return _problems(reader["items"], writer["items"], f"{path}[]")
    if reader_kind == "map":
        return _problems(reader["values"], writer["values"], f"{path}{{}}")
    return _decimal_problems(reader, writer, path)


def _record_problems(reader: dict[str, Any], writer: dict[str, Any], path: str) -> list[str]:
    written = {f["name"]: f for f in writer["fields"]}
    problems: list[str] = []
    for field in reader["fields"]:
        field_path = f"{path}.{field['name']}"
        names = [field["name"], *field.get("aliases", [])]
        source = next((written[n] for n in names if n in written), None)
        if source is None:
            if "default" not in field:
                problems.append(f"{field_path}: field is new and has no default value")
            continue
        problems += _problems(field["type"], source["type"], field_path)
    return problems


def _decimal_problems(reader: Any, writer: Any, path: str) -> list[str]:
    """A decimal's scale fixes what its unscaled bytes mean; precision may only grow."""
    is_decimal = [
        isinstance(s, dict) and s.get("logicalType") == "decimal" for s in (reader, writer)
    ]
    if not any(is_decimal):
        return []
    if not all(is_decimal):
        return [f"{path}: decimal and non-decimal {_kind(reader)} do not mix"]
    if reader.get("scale", 0) != writer.get("scale", 0):
        return [f"{path}: decimal scale {writer.get('scale', 0)} became {reader.get('scale', 0)}"]
    if reader["precision"] < writer["precision"]:
        return [f"{path}: decimal precision {writer['precision']} shrank to {reader['precision']}"]
    return []

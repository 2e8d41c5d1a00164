"""The JSON Schema of pipeline files, for editor completion (yaml-language-server).

Generated from ``PipelineConfig`` and the spec of every registered connector and transform:
``source``/``sink`` are a ``oneOf`` over the connectors of that kind, each told apart by a
``connector`` const; ``transforms`` items likewise by ``type``. The result is draft-07, the
dialect yaml-language-server understands; an editor uses it with a first line such as
``# yaml-language-server: $schema=pipeline.schema.json``.
"""

from __future__ import annotations

from typing import Any, cast

from pydantic import BaseModel

from omconnect.connectors.api.plugins import Registration, registrations
from omconnect.runtime.config.connector_blocks import BlockKind, name_key
from omconnect.runtime.config.model import PipelineConfig

DRAFT_07 = "http://json-schema.org/draft-07/schema#"


def pipeline_json_schema() -> dict[str, Any]:
    """A draft-07 JSON Schema for pipeline files, covering every registered plugin."""
    definitions: dict[str, Any] = {}
    root = _model_schema(PipelineConfig, "", definitions)
    for unused in ("ConnectorBlock", "TransformBlock"):
        definitions.pop(unused, None)
    properties = root["properties"]
    for kind in ("source", "sink"):
        description = properties[kind].get("description")
        properties[kind] = {
            "oneOf": [*_block_schemas(kind, definitions), {"type": "null"}],
            "description": description,
        }
    properties["transforms"] = {
        "type": "array",
        "items": {"oneOf": _block_schemas("transform", definitions)},
        "description": properties["transforms"].get("description"),
        "default": [],
    }
    schema = {
        "$schema": DRAFT_07,
        **root,
        "title": "omconnect pipeline",
        "definitions": definitions,
    }
    return cast(dict[str, Any], _to_draft07(schema))


def _block_schemas(kind: BlockKind, definitions: dict[str, Any]) -> list[dict[str, Any]]:
    found = registrations(kind)
    key = name_key(kind)
    if not found:
        # Nothing registered: accept any named block rather than nothing at all.
        return [{"type": "object", "properties": {key: {"type": "string"}}, "required": [key]}]
    return [_block_schema(kind, registration, definitions) for registration in found]


def _block_schema(
    kind: BlockKind, registration: Registration, definitions: dict[str, Any]
) -> dict[str, Any]:
    key = name_key(kind)
    spec = _model_schema(registration.spec, f"{kind}-{registration.name}-", definitions)
    spec["title"] = f"{registration.name} ({kind})"
    if registration.description:
        spec["description"] = registration.description
    spec["properties"] = {
        key: {"const": registration.name, "description": f"The {kind} {registration.name}."},
        **spec.get("properties", {}),
    }
    spec["required"] = [key, *spec.get("required", [])]
    spec["additionalProperties"] = False
    return spec


def _model_schema(model: type[BaseModel], prefix: str, definitions: dict[str, Any]) -> Any:
    """``model``'s schema with its nested definitions moved into ``definitions`` under
    ``prefix`` (so two connectors' same-named nested models do not collide)."""
    schema = model.model_json_schema(ref_template=f"#/definitions/{prefix}{{model}}")
    for name, definition in schema.pop("$defs", {}).items():
        definitions[prefix + name] = definition
    return schema


def _to_draft07(node: Any) -> Any:
    """Rewrite the few 2020-12 keywords pydantic emits into their draft-07 spelling."""
    if isinstance(node, list):
        return [_to_draft07(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted = {key: _to_draft07(value) for key, value in node.items()}
    if "prefixItems" in converted:
        rest = converted.pop("items", None)
        converted["items"] = converted.pop("prefixItems")
        if rest is not None:
            converted["additionalItems"] = rest
    return converted

"""The JSON Schemas of the bodies ``serve``'s API sends and takes: the ``components`` of its
OpenAPI document (``openapi``). ``tests/serve/test_openapi_fuzz.py`` checks real answers
against them, so a change to an ``as_json`` that they do not follow fails there."""

from __future__ import annotations

from typing import Any

from omconnect.runtime.serve.pipeline_state import PipelineState, RunResult


def ref(name: str) -> dict[str, str]:
    """A reference to the component schema ``name``."""
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(kind: str) -> dict[str, Any]:
    return {"type": [kind, "null"]}


OBJECT = {"type": "object"}
_COUNTERS = ("records_read", "records_published", "records_consumed", "records_written")
_RUN = {
    "type": "object",
    "required": ["started", "ended", "result", "error", "records_written"],
    "properties": {
        "started": {"type": "string"},
        "ended": _nullable("string"),
        "result": {"enum": [result.value for result in RunResult]},
        "error": _nullable("string"),
        "records_written": {"type": "integer"},
    },
}
_PROBLEM = {
    "type": "object",
    "required": ["file", "line", "key", "message", "suggestion", "text"],
    "properties": {
        "file": {"type": "string"},
        "line": _nullable("integer"),
        "key": {"type": "string"},
        "message": {"type": "string"},
        "suggestion": _nullable("string"),
        "text": {"type": "string", "description": "FILE:LINE: KEY: PROBLEM"},
    },
}
_VALIDATION_PROPERTIES = {
    "name": _nullable("string"),
    "kind": {"enum": ["source", "sink", "transform"]},
    "error_count": {"type": "integer", "minimum": 0},
    "configs": {
        "type": "array",
        "items": {
            "type": "object",
            "required": ["name", "errors"],
            "properties": {
                "name": {"type": "string"},
                "errors": {"type": "array", "items": {"type": "string"}},
            },
        },
    },
    "problems": {"type": "array", "items": _PROBLEM},
}
_OFFSET_ENTRY = {
    "type": "object",
    "required": ["kind", "partition", "offset"],
    "properties": {"kind": {"enum": ["source", "sink"]}, "partition": OBJECT, "offset": OBJECT},
}

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error_code", "message"],
        "properties": {"error_code": {"type": "integer"}, "message": {"type": "string"}},
    },
    "Health": {
        "type": "object",
        "required": ["status"],
        "properties": {"status": {"enum": ["ok", "starting", "stopping"]}},
    },
    "PipelineStatus": {
        "type": "object",
        "required": ["name", "state", "mode", "error", "restarts", "counters", "runs"],
        "properties": {
            "name": {"type": "string"},
            "state": {"enum": [state.value for state in PipelineState]},
            "mode": {"enum": ["continuous", "scheduled"]},
            "schedule": _nullable("string"),
            "description": _nullable("string"),
            "topic": {"type": "string"},
            "error": _nullable("string"),
            "next_run": _nullable("string"),
            "restarts": {"type": "integer"},
            "skipped_ticks": {"type": "integer"},
            "last_run": {"oneOf": [_RUN, {"type": "null"}]},
            "runs": {"type": "array", "items": _RUN},
            "counters": {
                "type": "object",
                "properties": {name: {"type": "integer"} for name in _COUNTERS},
            },
        },
    },
    "PipelineInfo": {
        "type": "object",
        "required": ["name", "file", "config"],
        "properties": {"name": {"type": "string"}, "file": {"type": "string"}, "config": OBJECT},
    },
    "PipelineWritten": {
        "type": "object",
        "required": ["name", "file", "config", "status"],
        "properties": {
            "name": {"type": "string"},
            "file": {"type": "string"},
            "config": OBJECT,
            "status": {"oneOf": [ref("PipelineStatus"), {"type": "null"}]},
        },
    },
    "PipelineDocument": {
        "type": "object",
        "description": "A pipeline file's content (docs/pipeline.schema.json has every key); "
        "its name may be left out only where another one is given (the URL's of PUT "
        "/pipelines/{name}/config, the wrapper's of a PipelineCreate).",
        "properties": {"name": {"type": "string"}, "source": OBJECT, "sink": OBJECT},
    },
    "PipelineCreate": {
        "type": "object",
        "description": "Kafka Connect's POST /connectors body: the pipeline's name beside its "
        "content; config.name, when given, must agree with name.",
        "required": ["config"],
        "additionalProperties": False,
        "properties": {"name": {"type": "string"}, "config": ref("PipelineDocument")},
    },
    "Validation": {
        "type": "object",
        "required": ["name", "error_count", "configs", "problems"],
        "properties": _VALIDATION_PROPERTIES,
    },
    "Invalid": {
        "type": "object",
        "required": ["error_code", "message", "error_count", "problems"],
        "properties": {
            "error_code": {"const": 422},
            "message": {"type": "string"},
            **_VALIDATION_PROPERTIES,
        },
    },
    "Offsets": {
        "type": "object",
        "required": ["offsets"],
        "properties": {"offsets": {"type": "array", "items": _OFFSET_ENTRY}},
    },
    "OffsetsPatch": {
        "type": "object",
        "required": ["offsets"],
        "properties": {
            "offsets": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "required": ["partition", "offset"],
                    "properties": {
                        "partition": OBJECT,
                        "offset": {"oneOf": [OBJECT, {"type": "null"}]},
                    },
                },
            }
        },
    },
    "OffsetsChanged": {
        "type": "object",
        "required": ["message"],
        "properties": {
            "message": {"type": "string"},
            "changed": {"type": "integer"},
            "removed": {"type": "integer"},
        },
    },
    "Plugin": {
        "type": "object",
        "required": ["name", "kind", "class", "description"],
        "properties": {
            "name": {"type": "string"},
            "kind": {"enum": ["source", "sink", "transform"]},
            "class": {"type": "string"},
            "description": {"type": "string"},
        },
    },
    "PluginDetail": {
        "type": "object",
        "required": ["name", "plugins"],
        "properties": {
            "name": {"type": "string"},
            "plugins": {
                "type": "array",
                "items": {
                    "allOf": [ref("Plugin")],
                    "type": "object",
                    "required": ["spec", "options"],
                    "properties": {
                        "spec": {"type": "object", "description": "JSON Schema of the options"},
                        "options": {"type": "array", "items": OBJECT},
                    },
                },
            },
        },
    },
}

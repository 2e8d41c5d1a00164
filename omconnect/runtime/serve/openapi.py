"""The OpenAPI 3.1 document of ``serve``'s API, served at ``/openapi.json``.

The document is built from the application's own routes: each ``(path, method)`` the router
answers must have an operation in ``OPERATIONS`` (a route without one fails at start-up), so
the document lists exactly what is served. Request and response bodies are the JSON Schemas
of ``openapi_schemas``; ``tests/serve/test_openapi_fuzz.py`` checks real answers against them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from omconnect.runtime.serve.openapi_schemas import OBJECT, SCHEMAS, ref
from omconnect.runtime.state.schema_registry.rest_api import CONTENT_TYPE as REGISTRY_TYPE
from omconnect.runtime.state.schema_registry.rest_api import ROOTS as REGISTRY_ROOTS

JSON = "application/json"
YAML = "application/yaml"


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def _status_answer(description: str) -> dict[str, Any]:
    return _json(ref("PipelineStatus"), description)


_ERROR = _json(ref("Error"), "refused (401 no token, 403 origin, 415 content type, ...)")
_NAME = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}


def _pipeline_body(schema: dict[str, Any], yaml_text: str) -> dict[str, Any]:
    return {
        "required": True,
        "content": {
            JSON: {"schema": schema},
            YAML: {"schema": {"type": "string", "description": yaml_text}},
        },
    }


_PIPELINE_BODY = _pipeline_body(ref("PipelineDocument"), "the pipeline file as YAML")
_NEW_PIPELINE_BODY = _pipeline_body(
    {"anyOf": [ref("PipelineDocument"), ref("PipelineCreate")]},
    "the pipeline file, or a PipelineCreate, as YAML",
)


def _op(
    summary: str,
    responses: dict[str, Any],
    parameters: Iterable[dict[str, Any]] = (),
    body: dict[str, Any] | None = None,
    default: dict[str, Any] = _ERROR,
) -> dict[str, Any]:
    operation: dict[str, Any] = {"summary": summary, "responses": {**responses, "default": default}}
    if parameters:
        operation["parameters"] = list(parameters)
    if body is not None:
        operation["requestBody"] = body
    return operation


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "schema": schema, "description": description}


_KIND = _query("kind", {"enum": ["source", "sink", "transform"]}, "only plugins of this kind")
_PIPELINE_OPS: dict[tuple[str, str], dict[str, Any]] = {
    ("/pipelines", "GET"): _op(
        "pipeline names, or name -> details with ?expand=status|info",
        {"200": _json({"type": ["array", "object"]}, "names, or a map with ?expand")},
        [
            _query(
                "expand",
                {"type": "array", "items": {"enum": ["status", "info"]}},
                "add status and/or info",
            )
        ],
    ),
    ("/pipelines", "POST"): _op(
        "create a pipeline (its file is written into the folder; it starts): the pipeline "
        'file, or Kafka Connect\'s {"name": ..., "config": {...}}',
        {
            "201": _json(ref("PipelineWritten"), "created"),
            "409": _json(ref("Error"), "the name is taken"),
            "422": _json(ref("Invalid"), "invalid: the problems (names that disagree too)"),
        },
        body=_NEW_PIPELINE_BODY,
    ),
    ("/pipelines/config/validate", "PUT"): _op(
        "validate a pipeline without writing it (either body of POST /pipelines)",
        {"200": _json(ref("Validation"), "error_count 0 when valid, else the problems")},
        body=_NEW_PIPELINE_BODY,
    ),
    ("/pipelines/{name}", "GET"): _op(
        "the effective configuration, secrets masked",
        {"200": _json(ref("PipelineInfo"), "the pipeline")},
        [_NAME],
    ),
    ("/pipelines/{name}", "DELETE"): _op(
        "stop the pipeline and remove its file (its offsets are kept)",
        {"204": {"description": "deleted"}},
        [_NAME],
    ),
    ("/pipelines/{name}/config", "GET"): _op(
        "the effective configuration, secrets masked",
        {"200": _json(OBJECT, "the config")},
        [_NAME],
    ),
    ("/pipelines/{name}/config", "PUT"): _op(
        "create or replace a pipeline (a replaced one restarts with its new configuration); "
        "a body without a name takes the URL's, as Kafka Connect's bare config map",
        {
            "200": _json(ref("PipelineWritten"), "replaced"),
            "201": _json(ref("PipelineWritten"), "created"),
            "422": _json(ref("Invalid"), "invalid: the problems"),
        },
        [_NAME],
        _PIPELINE_BODY,
    ),
    ("/pipelines/{name}/status", "GET"): _op(
        "state, error, last runs, counters", {"200": _status_answer("the status")}, [_NAME]
    ),
    ("/pipelines/{name}/pause", "PUT"): _op(
        "stop cleanly; start nothing until resumed", {"202": _status_answer("pausing")}, [_NAME]
    ),
    ("/pipelines/{name}/stop", "PUT"): _op(
        "stop cleanly into STOPPED, where offsets may change",
        {"202": _status_answer("stopping")},
        [_NAME],
    ),
    ("/pipelines/{name}/resume", "PUT"): _op(
        "resume a paused or stopped pipeline", {"202": _status_answer("resuming")}, [_NAME]
    ),
    ("/pipelines/{name}/restart", "POST"): _op(
        "stop cleanly and start again now (409 while paused)",
        {"202": _status_answer("restarting")},
        [_NAME],
    ),
    ("/pipelines/{name}/run", "POST"): _op(
        "run now (409 while running, paused or stopped)",
        {"202": _status_answer("run requested")},
        [_NAME],
    ),
    ("/pipelines/{name}/offsets", "GET"): _op(
        "source positions and sink offsets", {"200": _json(ref("Offsets"), "offsets")}, [_NAME]
    ),
    ("/pipelines/{name}/offsets", "PATCH"): _op(
        "set source positions (409 unless STOPPED)",
        {"200": _json(ref("OffsetsChanged"), "changed")},
        [_NAME],
        {"required": True, "content": {JSON: {"schema": ref("OffsetsPatch")}}},
    ),
    ("/pipelines/{name}/offsets", "DELETE"): _op(
        "forget every source position (409 unless STOPPED)",
        {"200": _json(ref("OffsetsChanged"), "reset")},
        [_NAME, _query("sink", {"enum": ["true", "false"]}, "also rewind the sink's group")],
    ),
}
_OTHER_OPS: dict[tuple[str, str], dict[str, Any]] = {
    ("/", "GET"): _op(
        "the status page",
        {"200": {"description": "HTML", "content": {"text/html": {"schema": {"type": "string"}}}}},
    ),
    ("/status-page.js", "GET"): _op(
        "the status page's script (no token needed)",
        {"200": {"description": "JavaScript", "content": {"text/javascript": {}}}},
    ),
    ("/status-page.css", "GET"): _op(
        "the status page's style sheet (no token needed)",
        {"200": {"description": "CSS", "content": {"text/css": {}}}},
    ),
    ("/health", "GET"): _op(
        "whether the worker is up (no token needed)",
        {"200": _json(ref("Health"), "up"), "503": _json(ref("Health"), "starting/stopping")},
    ),
    ("/metrics", "GET"): _op(
        "Prometheus metrics",
        {"200": {"description": "text format", "content": {"text/plain": {}}}},
    ),
    ("/openapi.json", "GET"): _op("this document", {"200": _json(OBJECT, "OpenAPI 3.1")}),
    ("/connector-plugins", "GET"): _op(
        "registered connectors and transforms",
        {"200": _json({"type": "array", "items": ref("Plugin")}, "plugins")},
        [_KIND],
    ),
    ("/connector-plugins/{name}", "GET"): _op(
        "a plugin's kinds with their option specs",
        {"200": _json(ref("PluginDetail"), "the plugin")},
        [_NAME],
    ),
    ("/connector-plugins/{name}/config/validate", "PUT"): _op(
        "validate one connector block's options",
        {"200": _json(ref("Validation"), "error_count 0 when valid, else the problems")},
        [_NAME, _KIND],
        {
            "required": True,
            "content": {JSON: {"schema": OBJECT}, YAML: {"schema": {"type": "string"}}},
        },
    ),
}
OPERATIONS = _PIPELINE_OPS | _OTHER_OPS
"""``(path, method)`` -> the OpenAPI operation of every endpoint but the schema registry's."""

_REGISTRY_ANSWER = {
    "description": "Confluent Schema Registry's answer",
    "content": {REGISTRY_TYPE: {"schema": {}}, JSON: {"schema": {}}},
}
_CONVERTER = re.compile(r"\{(\w+):\w+\}")


def openapi_document(routes: Iterable[tuple[str, Iterable[str]]]) -> dict[str, Any]:
    """The document of ``routes`` (each a Starlette path and its methods; HEAD is implied).

    Raises:
        KeyError: a route has no operation in ``OPERATIONS`` (nor is the schema registry's).
    """
    paths: dict[str, dict[str, Any]] = {}
    for path, methods in routes:
        documented = _CONVERTER.sub(r"{\1}", path)
        for method in sorted(set(methods) - {"HEAD"}):
            operation = OPERATIONS.get((path, method)) or _registry_operation(documented)
            if operation is None:
                raise KeyError(f"no OpenAPI operation for {method} {path}")
            paths.setdefault(documented, {})[method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "omconnect serve",
            "version": "1",
            "description": "Pipelines, offsets and connector plugins in the shape of Kafka "
            "Connect's REST API; see docs/serve.md.",
        },
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
        "paths": paths,
    }


def _registry_operation(documented: str) -> dict[str, Any] | None:
    if documented.lstrip("/").split("/")[0] not in REGISTRY_ROOTS:
        return None
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in re.findall(r"\{(\w+)\}", documented)
    ]
    summary = "the embedded schema registry (Confluent's API)"
    return _op(summary, {}, parameters, default=_REGISTRY_ANSWER)

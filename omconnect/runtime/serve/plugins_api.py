"""The registered connectors and transforms over HTTP, as Kafka Connect's ``/connector-plugins``.

=================================================  ==========================================
``GET /connector-plugins[?kind=source|sink|        ``[{"name", "kind", "class",
transform]``                                       "description"}]``
``GET /connector-plugins/{name}``                  ``{"name", "plugins": [...]}``: each kind
                                                   registered under the name, with ``spec``
                                                   (the JSON Schema of its options) and
                                                   ``options`` (the rows of its docs table)
``PUT /connector-plugins/{name}/config/validate``  the options of one block (as under
                                                   ``source:``), JSON or YAML, checked like a
                                                   pipeline's: ``{"error_count": N, ...}``
=================================================  ==========================================

A name registered for several kinds (``csv`` reads and writes) needs ``?kind=`` to validate.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any, get_args

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from omconnect.connectors.api import ConfigError, SinkConnector, SourceConnector
from omconnect.connectors.api.plugins import Kind, Registration, registrations
from omconnect.runtime.config.connector_blocks import name_key, validate_block
from omconnect.runtime.config.interpolation import interpolate
from omconnect.runtime.config.problems import (
    Issue,
    PipelineConfigError,
    Problem,
    format_key_path,
    parse_key_path,
)
from omconnect.runtime.config.redaction import Redactor
from omconnect.runtime.config.yaml_source import YamlDocument, YamlSyntaxError, parse_yaml
from omconnect.runtime.docs.spec_options import spec_options
from omconnect.runtime.serve.api_context import ApiContext, Endpoint, limited_body
from omconnect.runtime.serve.management_api import validation_report
from omconnect.runtime.serve.pipeline_files import BODY_LABEL, pipeline_body, surrogate_problem

KINDS: tuple[str, ...] = get_args(Kind)


class PluginsApi:
    """The endpoints above; ``endpoints()`` lists them."""

    def __init__(self, context: ApiContext) -> None:
        self.context = context

    def endpoints(self) -> list[tuple[str, str, Endpoint]]:
        return [
            ("/connector-plugins", "GET", self.list),
            ("/connector-plugins/{name}", "GET", self.describe),
            ("/connector-plugins/{name}/config/validate", "PUT", self.validate),
        ]

    async def list(self, request: Request) -> Response:
        kind = _kind(request)
        found = [r for r in registrations() if kind is None or r.kind == kind]
        return self.context.json(200, [_summary(r) for r in found])

    async def describe(self, request: Request) -> Response:
        found = _named(request)
        plugins = [{**_summary(r), **_spec(r)} for r in found]
        return self.context.json(200, {"name": found[0].name, "plugins": plugins})

    async def validate(self, request: Request) -> Response:
        found = _named(request)
        kind = _kind(request)
        if kind is not None:
            found = [r for r in found if r.kind == kind]
        if len(found) != 1:
            kinds = " or ".join(r.kind for r in _named(request))
            raise HTTPException(400, f"{request.path_params['name']!r} is a {kinds}: add ?kind=")
        registration = found[0]
        raw = await limited_body(request)
        try:
            body = pipeline_body(raw, request.headers.get("content-type"), BODY_LABEL)
            await asyncio.to_thread(_check_block, registration, body.data)
        except PipelineConfigError as exc:
            return self.context.json(200, _report(registration, exc.problems))
        return self.context.json(200, _report(registration, []))


def _kind(request: Request) -> Kind | None:
    kind = request.query_params.get("kind")
    if kind is None:
        return None
    if kind not in KINDS:
        raise HTTPException(400, f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
    return kind  # type: ignore[return-value]  # checked against Kind's values just above


def _named(request: Request) -> list[Registration]:
    name = request.path_params["name"]
    found = [r for r in registrations() if r.name == name]
    if not found:
        raise HTTPException(404, f"no connector or transform is registered as {name!r}")
    return found


def _summary(registration: Registration) -> dict[str, Any]:
    cls = registration.cls
    return {
        "name": registration.name,
        "kind": registration.kind,
        "class": f"{cls.__module__}.{cls.__qualname__}",
        "description": registration.description,
    }


def _spec(registration: Registration) -> dict[str, Any]:
    return {
        "spec": registration.spec.model_json_schema(),
        "options": [
            {
                "name": option.name,
                "aliases": list(option.aliases),
                "type": option.type_label,
                "default": option.default_label or None,
                "required": option.required,
                "secret": option.secret,
                "description": option.description,
            }
            for option in spec_options(registration.spec)
        ],
    }


def _report(registration: Registration, problems: list[Problem]) -> dict[str, Any]:
    return {**validation_report(registration.name, problems), "kind": registration.kind}


def _check_block(registration: Registration, data: bytes) -> None:
    """Validate one block's options as the pipeline loader would (the plugin's name may be
    left out), then the connector's own ``validate()``.

    Raises:
        PipelineConfigError: with every problem found, secrets masked.
    """
    redactor = Redactor()
    redactor.add_environment(os.environ)
    try:
        document = parse_yaml(data.decode("utf-8-sig"))
    except UnicodeDecodeError:
        problem = Problem(BODY_LABEL, None, "", "the body is not UTF-8 text")
        raise PipelineConfigError([problem]) from None
    except YamlSyntaxError as exc:
        message = redactor.redact(exc.message)
        raise PipelineConfigError([Problem(BODY_LABEL, exc.line, "(yaml)", message)]) from None
    data = document.data
    if not isinstance(data, dict):
        raise _error(document, redactor, Issue((), "expected a mapping of the plugin's options"))
    interpolated = interpolate(data, os.environ, Path.cwd())
    for value in interpolated.file_values:
        redactor.add(value)
    redactor.collect(interpolated.data)
    key = name_key(registration.kind)
    block = {**interpolated.data, key: registration.name}
    try:
        validated, issues = validate_block(registration.kind, block, (), redactor)
    except UnicodeEncodeError:  # pydantic refuses such strings with this, not a problem
        raise PipelineConfigError([surrogate_problem(BODY_LABEL)]) from None
    issues = document.issues + interpolated.issues + issues
    if issues:
        raise PipelineConfigError(_problem(document, redactor, issue) for issue in issues)
    assert validated is not None
    connector = registration.cls(validated.spec)
    if isinstance(connector, SourceConnector | SinkConnector):
        try:
            connector.validate()
        except ConfigError as exc:
            path = parse_key_path(exc.key) if exc.key else ()
            raise _error(document, redactor, Issue(path, str(exc))) from None


def _problem(document: YamlDocument, redactor: Redactor, issue: Issue) -> Problem:
    suggestion = redactor.redact(issue.suggestion) if issue.suggestion is not None else None
    return Problem(
        BODY_LABEL,
        issue.line if issue.line is not None else document.line_of(issue.path),
        redactor.redact(format_key_path(issue.path)),
        redactor.redact(issue.message),
        suggestion,
    )


def _error(document: YamlDocument, redactor: Redactor, issue: Issue) -> PipelineConfigError:
    return PipelineConfigError([_problem(document, redactor, issue)])

"""``serve``'s HTTP API, in the style of Kafka Connect's REST API, as a Starlette application.

==========================================  ==============================================
``GET /``                                   the status page (HTML)
``GET /health``                             200 ``{"status": "ok"}`` while the worker is up,
                                            503 while it starts or stops; needs no token
``GET /metrics``                            Prometheus text format (OpenMetrics on request)
``GET /pipelines[?expand=status|info]``     pipeline names (or a map name -> details)
``GET /pipelines/{name}``                   the effective configuration, secrets masked
``GET /pipelines/{name}/status``            state, error, last runs, counters
``PUT /pipelines/{name}/pause``             202: stop cleanly, do not start until resumed
``PUT /pipelines/{name}/resume``            202
``POST /pipelines/{name}/restart``          202: stop cleanly and start again now
                                            (409 while paused)
``GET /pipelines/{name}/offsets``           ``{"offsets": [...]}`` source and sink positions
``/subjects``, ``/schemas``, ``/config``,   the embedded schema registry, with Confluent's
``/compatibility``, ``/mode``               Schema Registry REST API (``rest_api``)
==========================================  ==============================================

Why Starlette: routing, method checks (405 with ``Allow``), HEAD, chunked bodies and the ASGI
interface to uvicorn come from a small, maintained toolkit instead of code of our own; the
endpoints stay plain functions of the supervisor's state. ``access_guard`` checks every
request first (token, host, origin, content type).

Errors are JSON ``{"error_code": N, "message": "..."}``: 404 for an unknown path or pipeline,
405 (with ``Allow``) for a wrong method, 400 for a bad query, 413 for a body over 1 MiB, 500
with a generic message for a bug (the traceback goes to the log, never to the client). Every
response but the registry's goes through the redactor of all pipelines' secrets; the
registry's carry schemas, not configuration, and Confluent's codes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from omconnect.runtime.config.loader import redacted_config
from omconnect.runtime.pipeline_positions import pipeline_offsets
from omconnect.runtime.serve import prometheus, status_page
from omconnect.runtime.serve.access_guard import AccessGuard, ApiAccess
from omconnect.runtime.serve.managed_pipeline import ManagedPipeline
from omconnect.runtime.serve.pipeline_state import PipelineStatus
from omconnect.runtime.serve.supervisor import Supervisor
from omconnect.runtime.state.schema_registry import SchemaRegistry
from omconnect.runtime.state.schema_registry.rest_api import (
    CONTENT_TYPE,
    ROOTS,
    SchemaRegistryApi,
)

log = logging.getLogger("omconnect.serve.http")

MAX_BODY_BYTES = 1024 * 1024
JSON = "application/json"
_REGISTRY_METHODS = ["GET", "POST", "PUT", "DELETE"]

_PipelineAction = Callable[[ManagedPipeline], Awaitable[Response]]


class ServeApi:
    """The API of ``supervisor``'s pipelines (and of ``registry`` when one is given) behind
    ``access``; ``app`` is the ASGI application to serve."""

    def __init__(
        self, supervisor: Supervisor, access: ApiAccess, registry: SchemaRegistry | None = None
    ) -> None:
        self.supervisor = supervisor
        self.metrics = prometheus.metrics_registry(self._statuses)
        routes = [
            Route("/", self._page, methods=["GET"]),
            Route("/health", self._health, methods=["GET"]),
            Route("/metrics", self._metrics, methods=["GET"]),
            Route("/pipelines", self._list, methods=["GET"]),
            self._pipeline_route("", "GET", self._info),
            self._pipeline_route("/status", "GET", self._status),
            self._pipeline_route("/pause", "PUT", self._pause),
            self._pipeline_route("/resume", "PUT", self._resume),
            self._pipeline_route("/restart", "POST", self._restart),
            self._pipeline_route("/offsets", "GET", self._offsets),
        ]
        if registry is not None:
            answer = _registry_endpoint(SchemaRegistryApi(registry))
            for root in sorted(ROOTS):  # the registry answers its own 405s for these
                for path in (f"/{root}", f"/{root}/{{rest:path}}"):
                    routes.append(Route(path, answer, methods=_REGISTRY_METHODS))
        starlette = Starlette(
            routes=routes,
            exception_handlers={HTTPException: self._error, Exception: _crash},
        )
        self.app: ASGIApp = AccessGuard(_no_store(starlette), access)

    def _pipeline_route(self, suffix: str, method: str, action: _PipelineAction) -> Route:
        async def endpoint(request: Request) -> Response:
            name = request.path_params["name"]
            pipeline = self.supervisor.get(name)
            if pipeline is None:
                raise HTTPException(404, f"pipeline {name!r} not found")
            return await action(pipeline)

        return Route(f"/pipelines/{{name}}{suffix}", endpoint, methods=[method])

    async def _error(self, request: Request, exc: Exception) -> Response:
        """An ``HTTPException`` as JSON; the router's own get a message that says more."""
        assert isinstance(exc, HTTPException)
        headers = dict(exc.headers or {})
        message = exc.detail
        if message == HTTPStatus(exc.status_code).phrase:
            if exc.status_code == 404:
                message = f"no such endpoint: {request.scope['path']}"
            elif exc.status_code == 405:
                message = f"method {request.method} is not allowed here"
                allowed = {method.strip() for method in headers.get("Allow", "").split(",")}
                headers["Allow"] = ", ".join(sorted(allowed))
        payload = {"error_code": exc.status_code, "message": message}
        return self._json(exc.status_code, payload, headers)

    def _json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
        masked = self.supervisor.redactor.redact_value(payload)
        return Response(json.dumps(masked).encode() + b"\n", status, headers, JSON)

    def _statuses(self) -> list[PipelineStatus]:
        return [self._masked(p.status()) for p in self.supervisor.pipelines.values()]

    def _masked(self, status: PipelineStatus) -> PipelineStatus:
        """``status`` with every pipeline's secrets masked in its free texts."""
        redact = self.supervisor.redactor.redact
        return dataclasses.replace(
            status,
            error=redact(status.error) if status.error else None,
            description=redact(status.description) if status.description else None,
            runs=[
                dataclasses.replace(run, error=redact(run.error) if run.error else None)
                for run in status.runs
            ],
        )

    async def _page(self, request: Request) -> Response:
        body = status_page.render_status_page(self._statuses())
        return Response(body.encode(), 200, media_type=status_page.CONTENT_TYPE)

    async def _health(self, request: Request) -> Response:
        if self.supervisor.up:
            return self._json(200, {"status": "ok"})
        return self._json(503, {"status": "stopping" if self.supervisor.stopping else "starting"})

    async def _metrics(self, request: Request) -> Response:
        body, content_type = prometheus.render_metrics(self.metrics, request.headers.get("accept"))
        return Response(body, 200, media_type=content_type)

    async def _list(self, request: Request) -> Response:
        expand = request.query_params.getlist("expand")
        unknown = set(expand) - {"status", "info"}
        if unknown:
            raise HTTPException(400, f"expand must be status or info, not {sorted(unknown)}")
        pipelines = self.supervisor.pipelines
        if not expand:
            return self._json(200, list(pipelines))
        result: dict[str, dict[str, Any]] = {}
        for name, pipeline in pipelines.items():
            entry: dict[str, Any] = {}
            if "status" in expand:
                entry["status"] = self._masked(pipeline.status()).as_json()
            if "info" in expand:
                entry["info"] = _info_of(pipeline)
            result[name] = entry
        return self._json(200, result)

    async def _info(self, pipeline: ManagedPipeline) -> Response:
        return self._json(200, _info_of(pipeline))

    async def _status(self, pipeline: ManagedPipeline) -> Response:
        return self._json(200, self._masked(pipeline.status()).as_json())

    async def _pause(self, pipeline: ManagedPipeline) -> Response:
        self._refuse_while_stopping()
        pipeline.pause()
        return self._json(202, self._masked(pipeline.status()).as_json())

    async def _resume(self, pipeline: ManagedPipeline) -> Response:
        self._refuse_while_stopping()
        pipeline.resume()
        return self._json(202, self._masked(pipeline.status()).as_json())

    async def _restart(self, pipeline: ManagedPipeline) -> Response:
        self._refuse_while_stopping()
        if pipeline.paused:
            raise HTTPException(409, f"pipeline {pipeline.name!r} is paused; resume it instead")
        pipeline.restart()
        return self._json(202, self._masked(pipeline.status()).as_json())

    async def _offsets(self, pipeline: ManagedPipeline) -> Response:
        try:
            entries = await pipeline_offsets(pipeline.loaded)
        except Exception as exc:  # an unreachable store or broker is the server's problem
            message = pipeline.describe_error(exc)
            log.warning("pipeline %s: cannot read offsets: %s", pipeline.name, message)
            raise HTTPException(503, f"cannot read the offsets: {message}") from None
        return self._json(200, {"offsets": entries})

    def _refuse_while_stopping(self) -> None:
        if self.supervisor.stopping:
            raise HTTPException(503, "the worker is stopping")


def _registry_endpoint(api: SchemaRegistryApi) -> Callable[[Request], Awaitable[Response]]:
    async def answer(request: Request) -> Response:
        body = await _limited_body(request)
        query = parse_qs(request.url.query)
        # In a worker thread: the store may block (SQLite locks, a registry over HTTP).
        answered = await asyncio.to_thread(
            api.handle, request.method, request.scope["path"], query, body
        )
        return Response(answered.encoded(), answered.status, media_type=CONTENT_TYPE)

    return answer


async def _limited_body(request: Request) -> bytes:
    too_large = HTTPException(413, f"request bodies are limited to {MAX_BODY_BYTES} bytes")
    length = request.headers.get("content-length", "0")
    if length.isdigit() and int(length) > MAX_BODY_BYTES:
        raise too_large
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise too_large
    return bytes(body)


async def _crash(request: Request, exc: Exception) -> Response:
    # Starlette re-raises after this answer, so uvicorn logs the traceback; the client gets
    # none, and no text of the exception (it may hold a secret).
    payload = {"error_code": 500, "message": "internal error; see the worker's log"}
    return Response(json.dumps(payload).encode() + b"\n", 500, media_type=JSON)


def _no_store(app: ASGIApp) -> ASGIApp:
    """``app`` with ``Cache-Control: no-store`` on every response: states go stale at once,
    and no proxy or browser cache should keep a configuration."""

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"cache-control", b"no-store")]
            await send(message)

        await app(scope, receive, sending)

    return wrapped


def _info_of(pipeline: ManagedPipeline) -> dict[str, Any]:
    return {
        "name": pipeline.name,
        "file": str(pipeline.loaded.path),
        "config": redacted_config(pipeline.loaded),
    }

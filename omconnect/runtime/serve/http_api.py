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
``GET /openapi.json``                       the OpenAPI document of every route (``openapi``)
POST, PUT, DELETE ``/pipelines/...``       creating, replacing, deleting, validating,
                                            stopping and running pipelines
                                            (``management_api``)
``/pipelines/{name}/offsets``               GET, PATCH, DELETE (``offsets_api``)
``/connector-plugins/...``                  the registered plugins (``plugins_api``)
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
from omconnect.runtime.serve import prometheus, status_page
from omconnect.runtime.serve.access_guard import AccessGuard, ApiAccess
from omconnect.runtime.serve.api_context import JSON, ApiContext, Endpoint, limited_body
from omconnect.runtime.serve.managed_pipeline import ManagedPipeline
from omconnect.runtime.serve.management_api import ManagementApi
from omconnect.runtime.serve.offsets_api import OffsetsApi
from omconnect.runtime.serve.openapi import openapi_document
from omconnect.runtime.serve.pipeline_state import PipelineStatus
from omconnect.runtime.serve.plugins_api import PluginsApi
from omconnect.runtime.serve.supervisor import Supervisor
from omconnect.runtime.state.schema_registry import SchemaRegistry
from omconnect.runtime.state.schema_registry.rest_api import (
    CONTENT_TYPE,
    ROOTS,
    SchemaRegistryApi,
)

log = logging.getLogger("omconnect.serve.http")

_REGISTRY_METHODS = ["GET", "POST", "PUT", "DELETE"]


class ServeApi:
    """The API of ``supervisor``'s pipelines (and of ``registry`` when one is given) behind
    ``access``; ``app`` is the ASGI application to serve, ``routes`` its Starlette routes."""

    def __init__(
        self, supervisor: Supervisor, access: ApiAccess, registry: SchemaRegistry | None = None
    ) -> None:
        self.supervisor = supervisor
        self.context = ApiContext(supervisor)
        self.metrics = prometheus.metrics_registry(self._statuses)
        endpoints: list[tuple[str, str, Endpoint]] = [
            ("/", "GET", self._page),
            ("/health", "GET", self._health),
            ("/metrics", "GET", self._metrics),
            ("/openapi.json", "GET", self._openapi),
            ("/pipelines", "GET", self._list),
            ("/pipelines/{name}", "GET", self._pipeline(self._info)),
            ("/pipelines/{name}/status", "GET", self._pipeline(self._status)),
            ("/pipelines/{name}/pause", "PUT", self._pipeline(self._pause)),
            ("/pipelines/{name}/resume", "PUT", self._pipeline(self._resume)),
            ("/pipelines/{name}/restart", "POST", self._pipeline(self._restart)),
            *ManagementApi(self.context).endpoints(),
            *OffsetsApi(self.context).endpoints(),
            *PluginsApi(self.context).endpoints(),
        ]
        self.routes = _routes(endpoints)
        if registry is not None:
            answer = _registry_endpoint(SchemaRegistryApi(registry))
            for root in sorted(ROOTS):  # the registry answers its own 405s for these
                for path in (f"/{root}", f"/{root}/{{rest:path}}"):
                    self.routes.append(Route(path, answer, methods=_REGISTRY_METHODS))
        assets = [(path, ["GET"]) for path in (status_page.SCRIPT_PATH, status_page.STYLE_PATH)]
        self.openapi = openapi_document(
            [*((route.path, route.methods or ()) for route in self.routes), *assets]
        )
        starlette = Starlette(
            routes=self.routes,
            exception_handlers={HTTPException: self._error, Exception: _crash},
        )
        guarded = AccessGuard(_no_store(starlette), access)
        self.app: ASGIApp = status_page.StatusPage(guarded, access)

    def _pipeline(self, action: Callable[[ManagedPipeline], Awaitable[Response]]) -> Endpoint:
        async def endpoint(request: Request) -> Response:
            return await action(self.context.pipeline(request))

        return endpoint

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
        return self.context.json(exc.status_code, payload, headers)

    def _statuses(self) -> list[PipelineStatus]:
        return [self.context.masked(p.status()) for p in self.supervisor.pipelines.values()]

    async def _page(self, request: Request) -> Response:
        body = status_page.render_status_page(self._statuses())
        return Response(body.encode(), 200, media_type=status_page.CONTENT_TYPE)

    async def _health(self, request: Request) -> Response:
        if self.supervisor.up:
            return self.context.json(200, {"status": "ok"})
        state = "stopping" if self.supervisor.stopping else "starting"
        return self.context.json(503, {"status": state})

    async def _metrics(self, request: Request) -> Response:
        body, content_type = prometheus.render_metrics(self.metrics, request.headers.get("accept"))
        return Response(body, 200, media_type=content_type)

    async def _openapi(self, request: Request) -> Response:
        return self.context.json(200, self.openapi)

    async def _list(self, request: Request) -> Response:
        expand = request.query_params.getlist("expand")
        unknown = set(expand) - {"status", "info"}
        if unknown:
            raise HTTPException(400, f"expand must be status or info, not {sorted(unknown)}")
        pipelines = self.supervisor.pipelines
        if not expand:
            return self.context.json(200, list(pipelines))
        result: dict[str, dict[str, Any]] = {}
        for name, pipeline in pipelines.items():
            entry: dict[str, Any] = {}
            if "status" in expand:
                entry["status"] = self.context.status(pipeline)
            if "info" in expand:
                entry["info"] = _info_of(pipeline)
            result[name] = entry
        return self.context.json(200, result)

    async def _info(self, pipeline: ManagedPipeline) -> Response:
        return self.context.json(200, _info_of(pipeline))

    async def _status(self, pipeline: ManagedPipeline) -> Response:
        return self.context.json(200, self.context.status(pipeline))

    async def _pause(self, pipeline: ManagedPipeline) -> Response:
        self.context.refuse_while_stopping()
        pipeline.pause()
        return self.context.json(202, self.context.status(pipeline))

    async def _resume(self, pipeline: ManagedPipeline) -> Response:
        self.context.refuse_while_stopping()
        pipeline.resume()
        return self.context.json(202, self.context.status(pipeline))

    async def _restart(self, pipeline: ManagedPipeline) -> Response:
        self.context.refuse_while_stopping()
        if pipeline.paused:
            raise HTTPException(409, f"pipeline {pipeline.name!r} is paused; resume it instead")
        pipeline.restart()
        return self.context.json(202, self.context.status(pipeline))


def _routes(endpoints: list[tuple[str, str, Endpoint]]) -> list[Route]:
    """One route per path, answering each of its methods with its endpoint (so a 405's
    ``Allow`` names every method of the path)."""
    by_path: dict[str, dict[str, Endpoint]] = {}
    for path, method, endpoint in endpoints:
        by_path.setdefault(path, {})[method] = endpoint
    return [_route(path, methods) for path, methods in by_path.items()]


def _route(path: str, methods: dict[str, Endpoint]) -> Route:
    async def dispatch(request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method
        return await methods[method](request)

    return Route(path, dispatch, methods=list(methods))


def _registry_endpoint(api: SchemaRegistryApi) -> Endpoint:
    async def answer(request: Request) -> Response:
        body = await limited_body(request)
        query = parse_qs(request.url.query)
        # In a worker thread: the store may block (SQLite locks, a registry over HTTP).
        answered = await asyncio.to_thread(
            api.handle, request.method, request.scope["path"], query, body
        )
        return Response(answered.encoded(), answered.status, media_type=CONTENT_TYPE)

    return answer


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

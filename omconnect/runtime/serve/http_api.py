"""``serve``'s HTTP API, in the style of Kafka Connect's REST API.

==========================================  ==============================================
``GET /``                                   the status page (HTML)
``GET /health``                             200 ``{"status": "ok"}`` while the worker is up,
                                            503 while it starts or stops
``GET /metrics``                            Prometheus text format
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

Errors are JSON ``{"error_code": N, "message": "..."}``: 404 for an unknown path or pipeline,
405 (with ``Allow``) for a wrong method, 400 for a bad query. Every response but the
registry's goes through the redactor of all pipelines' secrets, and error texts through the
pipeline's own first; the registry's carry schemas, not configuration, and Confluent's codes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from omconnect.runtime.config.loader import redacted_config
from omconnect.runtime.pipeline_positions import pipeline_offsets
from omconnect.runtime.serve import prometheus, status_page
from omconnect.runtime.serve.http_server import (
    HttpError,
    HttpRequest,
    HttpResponse,
    json_response,
)
from omconnect.runtime.serve.managed_pipeline import ManagedPipeline
from omconnect.runtime.serve.pipeline_state import PipelineStatus
from omconnect.runtime.serve.supervisor import Supervisor
from omconnect.runtime.state.schema_registry import SchemaRegistry
from omconnect.runtime.state.schema_registry.rest_api import CONTENT_TYPE, SchemaRegistryApi

log = logging.getLogger("omconnect.serve.http")

_PipelineAction = Callable[[ManagedPipeline], Awaitable[HttpResponse]]


class ServeApi:
    """Answers HTTP requests about ``supervisor``'s pipelines, and for ``registry`` when one is
    given (``handle`` is the handler)."""

    def __init__(self, supervisor: Supervisor, registry: SchemaRegistry | None = None) -> None:
        self.supervisor = supervisor
        self.registry_api = SchemaRegistryApi(registry) if registry is not None else None
        self._pipeline_routes: dict[str, dict[str, _PipelineAction]] = {
            "": {"GET": self._info},
            "status": {"GET": self._status},
            "pause": {"PUT": self._pause},
            "resume": {"PUT": self._resume},
            "restart": {"POST": self._restart},
            "offsets": {"GET": self._offsets},
        }

    async def handle(self, request: HttpRequest) -> HttpResponse:
        """The response to ``request``; raises ``HttpError`` (with secrets masked) for errors."""
        try:
            return await self._route(request)
        except HttpError as error:
            error.message = self.supervisor.redactor.redact(error.message)
            raise

    async def _route(self, request: HttpRequest) -> HttpResponse:
        method = "GET" if request.method == "HEAD" else request.method
        parts = [part for part in request.path.split("/") if part]
        if not parts:
            _allow(method, "GET")
            return self._page()
        if parts == ["health"]:
            _allow(method, "GET")
            return self._health()
        if parts == ["metrics"]:
            _allow(method, "GET")
            return self._metrics()
        if parts == ["pipelines"]:
            _allow(method, "GET")
            return self._list(request)
        if parts[0] == "pipelines" and len(parts) in (2, 3):
            actions = self._pipeline_routes.get(parts[2] if len(parts) == 3 else "")
            if actions is not None:
                _allow(method, *actions)
                pipeline = self.supervisor.get(parts[1])
                if pipeline is None:
                    raise HttpError(404, f"pipeline {parts[1]!r} not found")
                return await actions[method](pipeline)
        if self.registry_api is not None and self.registry_api.handles(request.path):
            return await self._registry(self.registry_api, method, request)
        raise HttpError(404, f"no such endpoint: {request.path}")

    @staticmethod
    async def _registry(api: SchemaRegistryApi, method: str, request: HttpRequest) -> HttpResponse:
        """The registry's answer, from a worker thread: the store may block (SQLite locks)."""
        answer = await asyncio.to_thread(
            api.handle, method, request.path, request.query, request.body
        )
        return HttpResponse(answer.status, answer.encoded(), CONTENT_TYPE)

    def _json(self, status: int, payload: Any) -> HttpResponse:
        return json_response(status, self.supervisor.redactor.redact_value(payload))

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

    def _page(self) -> HttpResponse:
        body = status_page.render_status_page(self._statuses())
        return HttpResponse(200, body.encode(), status_page.CONTENT_TYPE)

    def _health(self) -> HttpResponse:
        if self.supervisor.up:
            return self._json(200, {"status": "ok"})
        return self._json(503, {"status": "stopping" if self.supervisor.stopping else "starting"})

    def _metrics(self) -> HttpResponse:
        body = prometheus.render_metrics(self._statuses())
        return HttpResponse(200, body.encode(), prometheus.CONTENT_TYPE)

    def _list(self, request: HttpRequest) -> HttpResponse:
        expand = request.query.get("expand", [])
        unknown = set(expand) - {"status", "info"}
        if unknown:
            raise HttpError(400, f"expand must be status or info, not {sorted(unknown)}")
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

    async def _info(self, pipeline: ManagedPipeline) -> HttpResponse:
        return self._json(200, _info_of(pipeline))

    async def _status(self, pipeline: ManagedPipeline) -> HttpResponse:
        return self._json(200, self._masked(pipeline.status()).as_json())

    async def _pause(self, pipeline: ManagedPipeline) -> HttpResponse:
        self._refuse_while_stopping()
        pipeline.pause()
        return self._json(202, self._masked(pipeline.status()).as_json())

    async def _resume(self, pipeline: ManagedPipeline) -> HttpResponse:
        self._refuse_while_stopping()
        pipeline.resume()
        return self._json(202, self._masked(pipeline.status()).as_json())

    async def _restart(self, pipeline: ManagedPipeline) -> HttpResponse:
        self._refuse_while_stopping()
        if pipeline.paused:
            raise HttpError(409, f"pipeline {pipeline.name!r} is paused; resume it instead")
        pipeline.restart()
        return self._json(202, self._masked(pipeline.status()).as_json())

    async def _offsets(self, pipeline: ManagedPipeline) -> HttpResponse:
        try:
            entries = await pipeline_offsets(pipeline.loaded)
        except Exception as exc:  # an unreachable store or broker is the server's problem
            message = pipeline.describe_error(exc)
            log.warning("pipeline %s: cannot read offsets: %s", pipeline.name, message)
            raise HttpError(503, f"cannot read the offsets: {message}") from None
        return self._json(200, {"offsets": entries})

    def _refuse_while_stopping(self) -> None:
        if self.supervisor.stopping:
            raise HttpError(503, "the worker is stopping")


def _allow(method: str, *allowed: str) -> None:
    if method not in allowed:
        methods = ", ".join(sorted({*allowed, "HEAD"} if "GET" in allowed else set(allowed)))
        raise HttpError(405, f"method {method} is not allowed here", {"Allow": methods})


def _info_of(pipeline: ManagedPipeline) -> dict[str, Any]:
    return {
        "name": pipeline.name,
        "file": str(pipeline.loaded.path),
        "config": redacted_config(pipeline.loaded),
    }

"""What every endpoint of ``serve``'s API needs: the supervisor, JSON answers with every
pipeline's secrets masked, the pipeline a path names, and request bodies within their limit."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from omconnect.runtime.serve.managed_pipeline import ManagedPipeline
from omconnect.runtime.serve.pipeline_state import PipelineStatus
from omconnect.runtime.serve.supervisor import Supervisor

MAX_BODY_BYTES = 1024 * 1024
JSON = "application/json"

Endpoint = Callable[[Request], Awaitable[Response]]
"""What a route calls for one of its methods."""


class ApiContext:
    """The endpoints' view of ``supervisor``."""

    def __init__(self, supervisor: Supervisor) -> None:
        self.supervisor = supervisor

    def json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
        """``payload`` as JSON, with the secrets of every pipeline masked."""
        masked = self.supervisor.redactor.redact_value(payload)
        return Response(json.dumps(masked).encode() + b"\n", status, headers, JSON)

    def pipeline(self, request: Request) -> ManagedPipeline:
        """The pipeline named by the path's ``{name}``.

        Raises:
            HTTPException: 404 when there is none.
        """
        name = request.path_params["name"]
        pipeline = self.supervisor.get(name)
        if pipeline is None:
            raise HTTPException(404, f"pipeline {name!r} not found")
        return pipeline

    def status(self, pipeline: ManagedPipeline) -> dict[str, Any]:
        """The pipeline's status as JSON, masked."""
        return self.masked(pipeline.status()).as_json()

    def masked(self, status: PipelineStatus) -> PipelineStatus:
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

    def refuse_while_stopping(self) -> None:
        """Raises 503 while the worker shuts down (no command may start anything then)."""
        if self.supervisor.stopping:
            raise HTTPException(503, "the worker is stopping")


async def limited_body(request: Request) -> bytes:
    """The request body, at most ``MAX_BODY_BYTES`` (else 413)."""
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


async def json_body(request: Request) -> Any:
    """The request body decoded as JSON (400 when it is not)."""
    body = await limited_body(request)
    try:
        return json.loads(body)
    except ValueError as exc:  # also UnicodeDecodeError
        raise HTTPException(400, f"the body is not JSON: {exc}") from None

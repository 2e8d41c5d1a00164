"""The ``serve`` worker as one coroutine: the supervisor and the HTTP API on one event loop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from omconnect.runtime.serve.access_guard import ApiAccess
from omconnect.runtime.serve.http_api import ServeApi
from omconnect.runtime.serve.supervisor import Supervisor
from omconnect.runtime.serve.uvicorn_server import HttpListener, TlsFiles
from omconnect.runtime.state.schema_registry import SchemaRegistry

log = logging.getLogger("omconnect.serve")


async def run_service(
    supervisor: Supervisor,
    host: str,
    port: int,
    stop: asyncio.Event,
    access: ApiAccess,
    on_listening: Callable[[str, int], None] | None = None,
    registry: SchemaRegistry | None = None,
    tls: TlsFiles | None = None,
) -> None:
    """Serve the HTTP API on ``host:port`` and supervise the pipelines until ``stop`` is set.

    The API listens before the pipelines start, so ``/health`` answers while they come up.
    On ``stop`` every pipeline is stopped cleanly first (``/health`` says 503 meanwhile), then
    the listener lets the requests in flight finish and closes.

    Args:
        supervisor: the pipelines to run.
        host: the address to listen on (``0.0.0.0`` for every interface).
        port: the TCP port; 0 picks a free one.
        stop: set it to shut down.
        access: who may use the API (token, host names, reads without a token).
        on_listening: called with the bound address and port once the API listens.
        registry: the schema registry the API serves (Confluent's REST API at the root).
        tls: certificate and key to serve HTTPS with; plain HTTP when None.

    Raises:
        OSError: the address cannot be bound (in use, not allowed).
        TlsError: the certificate or key cannot be loaded.
    """
    listener = HttpListener(ServeApi(supervisor, access, registry).app, host, port, tls)
    serving = asyncio.create_task(listener.serve(), name="omconnect-serve-http")
    stopping = asyncio.create_task(stop.wait(), name="omconnect-serve-stop")
    try:
        bound_host, bound_port = listener.address
        log.info("HTTP API listening on %s://%s:%d/", listener.scheme, bound_host, bound_port)
        if on_listening is not None:
            on_listening(bound_host, bound_port)
        supervisor.start()
        # The listener ends on its own only by failing: then the worker stops too.
        await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
        log.info("stopping: finishing what is in flight")
    finally:
        stopping.cancel()
        await supervisor.stop()
        listener.stop()
        await serving
    log.info("stopped")

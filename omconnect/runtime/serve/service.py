"""The ``serve`` worker as one coroutine: the supervisor and the HTTP API on one event loop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from omconnect.runtime.serve.http_api import ServeApi
from omconnect.runtime.serve.http_server import start_http_server
from omconnect.runtime.serve.supervisor import Supervisor
from omconnect.runtime.state.schema_registry import SchemaRegistry

log = logging.getLogger("omconnect.serve")


async def run_service(
    supervisor: Supervisor,
    host: str,
    port: int,
    stop: asyncio.Event,
    on_listening: Callable[[str, int], None] | None = None,
    registry: SchemaRegistry | None = None,
) -> None:
    """Serve the HTTP API on ``host:port`` and supervise the pipelines until ``stop`` is set.

    The API listens before the pipelines start, so ``/health`` answers while they come up.
    On ``stop`` every pipeline is stopped cleanly first (``/health`` says 503 meanwhile), then
    the listener closes.

    Args:
        supervisor: the pipelines to run.
        host: the address to listen on (``0.0.0.0`` for every interface).
        port: the TCP port; 0 picks a free one.
        stop: set it to shut down.
        on_listening: called with the bound address and port once the API listens.
        registry: the schema registry the API serves (Confluent's REST API at the root).

    Raises:
        OSError: the address cannot be bound (in use, not allowed).
    """
    api = ServeApi(supervisor, registry)
    server = await start_http_server(api.handle, host, port)
    bound_host, bound_port = server.sockets[0].getsockname()[:2]
    log.info("HTTP API listening on http://%s:%d/", bound_host, bound_port)
    if on_listening is not None:
        on_listening(bound_host, bound_port)
    try:
        supervisor.start()
        await stop.wait()
        log.info("stopping: finishing what is in flight")
    finally:
        await supervisor.stop()
        server.close()
        await server.wait_closed()
    log.info("stopped")

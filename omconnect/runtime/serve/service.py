"""The ``serve`` worker as one coroutine: the supervisor, the HTTP API and the folder watcher
on one event loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
from collections.abc import Callable, Iterator

from omconnect.runtime.serve.access_guard import ApiAccess
from omconnect.runtime.serve.folder_watch import watch_folder
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
    When the supervisor has a ``folder``, it is re-read when its files change, and at once
    on SIGHUP (when this runs in the main thread, where signals can be handled).
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
        with _watching(supervisor, stop):
            # The listener ends on its own only by failing: then the worker stops too.
            await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
            log.info("stopping: finishing what is in flight")
    finally:
        stopping.cancel()
        await supervisor.stop()
        listener.stop()
        await serving
    log.info("stopped")


@contextlib.contextmanager
def _watching(supervisor: Supervisor, stop: asyncio.Event) -> Iterator[None]:
    """Watch the supervisor's folder (if any) while the block runs; SIGHUP re-reads it."""
    if supervisor.folder is None:
        yield
        return
    reload_now = asyncio.Event()
    watcher = asyncio.create_task(
        watch_folder(supervisor, supervisor.folder, stop, reload_now),
        name="omconnect-serve-folder-watch",
    )
    loop = asyncio.get_running_loop()
    on_main_thread = threading.current_thread() is threading.main_thread()
    if on_main_thread:
        loop.add_signal_handler(signal.SIGHUP, reload_now.set)
    try:
        yield
    finally:
        if on_main_thread:
            loop.remove_signal_handler(signal.SIGHUP)
        watcher.cancel()

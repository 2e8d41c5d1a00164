"""``serve``'s listener: uvicorn serving the API on the worker's own event loop.

Why uvicorn: a maintained ASGI server that security reviewers know, parsing HTTP/1.1 with
h11 (bounded request heads, keep-alive, chunked bodies), TLS from Python's ``ssl`` module and
a graceful shutdown that lets requests in flight finish. Four adjustments:

* ``serve`` owns SIGINT and SIGTERM (``cli.stop_signals``): it stops the pipelines first and
  the listener last, so ``uvicorn.Server`` must not install handlers of its own and re-raise
  the signal after its shutdown;
* the socket is bound here, before uvicorn starts, so a port in use is an ``OSError`` to the
  caller (uvicorn would exit the process) and the port ``0`` picked is known at once;
* a request h11 cannot parse gets a JSON 400 like every other error, not uvicorn's text;
* uvicorn's main loop wakes ten times a second to see whether it should exit; here ``stop``
  wakes it, and it ticks once a second (``TICK_SECONDS``) to refresh the ``Date`` header, as
  uvicorn does on every tenth tick: an idle ``serve`` is woken as little as it can be.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import h11
import uvicorn
from starlette.types import ASGIApp
from uvicorn.protocols.http.h11_impl import H11Protocol

GRACEFUL_SHUTDOWN_SECONDS = 3
"""How long requests in flight may take to finish once the listener stops."""
TICK_SECONDS = 1.0
"""How often the idle listener refreshes its ``Date`` header (uvicorn's own period)."""


@dataclass(frozen=True)
class TlsFiles:
    """PEM files for HTTPS: the certificate (chain), and its key when kept apart."""

    cert: Path
    key: Path | None = None


class TlsError(Exception):
    """The certificate or key cannot be read or does not fit (the message says which)."""


class HttpListener:
    """``app`` served on ``host:port`` (port 0 picks a free one), over TLS with ``tls``.

    Raises:
        TlsError: ``tls`` names files that cannot be loaded.
        OSError: the address cannot be bound (in use, not allowed).
    """

    def __init__(self, app: ASGIApp, host: str, port: int, tls: TlsFiles | None = None) -> None:
        self.config = uvicorn.Config(
            app,
            http=_JsonErrorsH11Protocol,
            interface="asgi3",
            lifespan="off",
            log_config=None,  # the process' logging setup (and its secret redaction) applies
            log_level="warning",  # serve logs where it listens itself
            access_log=False,
            server_header=False,
            proxy_headers=False,  # no X-Forwarded-* from whoever connects
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
            ssl_certfile=str(tls.cert) if tls is not None else None,
            ssl_keyfile=str(tls.key) if tls is not None and tls.key is not None else None,
        )
        try:
            self.config.load()
        except OSError as exc:  # ssl.SSLError is an OSError too
            assert tls is not None, exc
            files = f"--tls-cert {tls.cert}" + (f" --tls-key {tls.key}" if tls.key else "")
            reason = exc.strerror or getattr(exc, "reason", None) or str(exc)
            raise TlsError(f"{files}: cannot load the certificate and key: {reason}") from None
        self.scheme = "https" if tls is not None else "http"
        self._socket = _bind(host, port)
        self._server = _SignalFreeServer(self.config)

    @property
    def address(self) -> tuple[str, int]:
        """The bound host and port."""
        host, port = self._socket.getsockname()[:2]
        return host, port

    async def serve(self) -> None:
        """Answer requests until ``stop``; then let those in flight finish."""
        await self._server.serve(sockets=[self._socket])

    def stop(self) -> None:
        """Stop accepting requests and finish those in flight (``serve`` returns then); call
        it on the loop ``serve`` runs on."""
        self._server.request_exit()

    def close(self) -> None:
        """Release the socket of a listener that never served."""
        self._socket.close()


class _SignalFreeServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self._exit = asyncio.Event()

    def request_exit(self) -> None:
        self.should_exit = True
        self._exit.set()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def main_loop(self) -> None:
        # on_tick(0) refreshes the Date header (uvicorn's counter is 0 on every tenth tick)
        # and answers whether to exit.
        while not await self.on_tick(0):
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(TICK_SECONDS):
                    await self._exit.wait()


class _JsonErrorsH11Protocol(H11Protocol):
    def send_400_response(self, msg: str) -> None:
        body = json.dumps({"error_code": 400, "message": msg}).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        for event in (
            h11.Response(status_code=400, headers=headers, reason=b"Bad Request"),
            h11.Data(data=body),
            h11.EndOfMessage(),
        ):
            self.transport.write(self.conn.send(event) or b"")
        self.transport.close()


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.create_server((host, port), family=family)

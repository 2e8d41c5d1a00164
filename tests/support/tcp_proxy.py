"""A TCP proxy on a free loopback port, for tests that cut a client's connections to a real
server without touching the server (other work on the machine keeps using it).

``TcpProxy(port)`` forwards every connection made to ``proxy.port`` to ``127.0.0.1:port``.
``cut()`` resets every open connection, with an RST to the client and to the server (as when a
network path fails: the server ends the session and releases its locks at once), and refuses
new ones until ``restore()``: the proxy keeps its port bound but stops listening, so a connect
is refused as it is by a server that is down, and the same port listens again afterwards.
``cut_after(nbytes=...)`` arms a cut that the proxy makes itself once it has forwarded
``nbytes`` more bytes (both ways together), so that it lands in the middle of a transfer (a
chunk being read, a batch being written) however fast the machine is; ``cut_after(
connections=...)`` cuts as the proxy accepts the connection that many connections from now
(for clients that open a connection per read); ``wait_cut()`` waits for the cut.
``url_of(url)`` is a database URL pointed at the proxy.

It runs an asyncio event loop on a thread of its own (one loop, no thread blocked in a
socket call, so a reset is immediate); the test's thread drives it. Use it as a context
manager (``with TcpProxy(5432) as proxy:``): it listens on enter and closes everything on exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from collections.abc import Coroutine
from types import TracebackType
from typing import Any

import sqlalchemy as sa

# SO_LINGER on with zero seconds: closing the socket sends an RST, not a FIN.
_RESET_ON_CLOSE = struct.pack("ii", 1, 0)
_CHUNK = 256 * 1024
_BACKLOG = 64


class TcpProxy:
    """Forwards ``127.0.0.1:<port>`` (a free port) to ``<target_host>:<target_port>``; see the
    module docstring.

    Attributes:
        port: the proxy's own port.
        accepted: how many connections it has accepted so far.
        forwarded: how many bytes it has forwarded so far, both ways.
        cuts: how many times it reset its connections (``cut`` or ``cut_after``).
    """

    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.accepted = 0
        self.forwarded = 0
        self.cuts = 0
        self._cut_at_bytes: int | None = None
        self._cut_at_connection: int | None = None
        self._was_cut = threading.Event()
        self._socket = _bound_socket(0)
        self.port: int = self._socket.getsockname()[1]
        self._server: asyncio.Server | None = None
        self._connections: set[_Connection] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def __enter__(self) -> TcpProxy:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def url_of(self, url: str) -> str:
        """``url`` (a database URL) with its host and port replaced by the proxy's."""
        parsed = sa.make_url(url).set(host="127.0.0.1", port=self.port)
        return parsed.render_as_string(hide_password=False)

    def start(self) -> None:
        self._thread.start()
        self._run(self._listen())

    def cut(self) -> None:
        """Reset every open connection; refuse new ones until ``restore``."""
        self._run(self._cut())

    def cut_after(self, nbytes: int | None = None, connections: int | None = None) -> None:
        """``cut`` once ``nbytes`` more bytes have been forwarded, or as the ``connections``-th
        connection from now is accepted (see the module docstring)."""
        self._was_cut.clear()
        self._cut_at_bytes = None if nbytes is None else self.forwarded + nbytes
        self._cut_at_connection = None if connections is None else self.accepted + connections

    def wait_cut(self, timeout: float) -> bool:
        """Wait until a cut happened (since ``cut_after``); False after ``timeout`` seconds."""
        return self._was_cut.wait(timeout)

    def restore(self) -> None:
        """Accept connections again, on the same port."""
        self._run(self._listen())

    def close(self) -> None:
        if not self._thread.is_alive():
            return
        self._run(self._cut())
        self._socket.close()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def _run(self, work: Coroutine[Any, Any, None]) -> None:
        asyncio.run_coroutine_threadsafe(work, self._loop).result(timeout=30)

    async def _listen(self) -> None:
        if self._server is not None:
            return
        self._socket.listen(_BACKLOG)
        self._server = await asyncio.start_server(self._forward, sock=self._socket)

    async def _cut(self) -> None:
        self._cut_now()

    def _cut_now(self) -> None:
        self._cut_at_bytes = self._cut_at_connection = None
        self.cuts += 1
        self._was_cut.set()
        if self._server is not None:
            self._server.close()  # closes the listening socket, leaves connections open
            self._server = None
            # Bound again at once to the same port (its connections may be in TIME_WAIT):
            # bound without listening, it refuses connects.
            self._socket = _bound_socket(self.port)
        for connection in list(self._connections):
            connection.reset()
        self._connections.clear()

    async def _forward(self, client_in: asyncio.StreamReader, client: asyncio.StreamWriter) -> None:
        self.accepted += 1
        if self._cut_at_connection is not None and self.accepted >= self._cut_at_connection:
            self._cut_now()
            _reset(client)
            return
        try:
            server_in, server = await asyncio.open_connection(*self.target)
        except OSError:
            _reset(client)
            return
        connection = _Connection(client, server)
        self._connections.add(connection)
        try:
            async with asyncio.TaskGroup() as pumps:
                connection.pumps.append(pumps.create_task(self._pump(client_in, server)))
                connection.pumps.append(pumps.create_task(self._pump(server_in, client)))
        except* (OSError, asyncio.CancelledError):
            pass
        finally:
            self._connections.discard(connection)
            for writer in (client, server):
                writer.close()

    async def _pump(self, source: asyncio.StreamReader, target: asyncio.StreamWriter) -> None:
        """Copy ``source`` to ``target``; the end of ``source`` ends ``target``'s writing
        side. An armed ``cut_after`` fires here, within the transfer that crosses its mark."""
        while data := await source.read(_CHUNK):
            self.forwarded += len(data)
            if self._cut_at_bytes is not None and self.forwarded >= self._cut_at_bytes:
                self._cut_now()
                return
            target.write(data)
            await target.drain()
        if target.can_write_eof():
            target.write_eof()


class _Connection:
    """A client's connection and the proxy's connection to the server for it."""

    def __init__(self, client: asyncio.StreamWriter, server: asyncio.StreamWriter) -> None:
        self.client = client
        self.server = server
        self.pumps: list[asyncio.Task[None]] = []

    def reset(self) -> None:
        for pump in self.pumps:
            pump.cancel()
        _reset(self.client)
        _reset(self.server)


def _reset(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET_ON_CLOSE)
    writer.transport.abort()


def _bound_socket(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    return sock


__all__ = ["TcpProxy"]

"""A small HTTP/1.1 server on asyncio streams, enough for ``serve``'s API and status page.

One request per connection (every response says ``Connection: close``), bodies by
``Content-Length`` only, bounded sizes and a read timeout so a slow or hostile client cannot
hold the worker. The handler gets a parsed ``HttpRequest`` and returns an ``HttpResponse``;
it raises ``HttpError`` for client errors. Anything else it raises becomes a 500 with a
generic message: a traceback never reaches a client.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

log = logging.getLogger("omconnect.serve.http")

MAX_LINE_BYTES = 8 * 1024
MAX_HEADERS = 100
MAX_BODY_BYTES = 1024 * 1024
READ_TIMEOUT = 10.0


@dataclass(frozen=True)
class HttpRequest:
    """A parsed request. ``path`` is percent-decoded; ``headers`` keys are lower case."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes = b""


@dataclass
class HttpResponse:
    """What to send back; ``Content-Length`` and ``Connection`` are added when sending."""

    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


class HttpError(Exception):
    """A client error to answer with ``status`` and a JSON ``{"error_code", "message"}``."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


Handler = Callable[[HttpRequest], Awaitable[HttpResponse]]


def json_response(status: int, payload: Any) -> HttpResponse:
    """``payload`` as a JSON response."""
    return HttpResponse(status, json.dumps(payload, indent=None).encode() + b"\n")


def error_response(error: HttpError) -> HttpResponse:
    response = json_response(error.status, {"error_code": error.status, "message": error.message})
    response.headers.update(error.headers)
    return response


async def start_http_server(handler: Handler, host: str, port: int) -> asyncio.Server:
    """Listen on ``host:port`` (port 0 picks a free one) and answer requests with ``handler``."""

    async def connected(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _serve_connection(handler, reader, writer)

    return await asyncio.start_server(connected, host, port, limit=MAX_LINE_BYTES)


async def _serve_connection(
    handler: Handler, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    head_only = False
    try:
        try:
            async with asyncio.timeout(READ_TIMEOUT):
                request = await _read_request(reader)
            head_only = request.method == "HEAD"
            response = await handler(request)
        except HttpError as error:
            response = error_response(error)
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            return
        except Exception:  # the handler's bug must not reach the client, nor kill the server
            log.exception("error while answering a request")
            response = error_response(HttpError(500, "internal error; see the worker's log"))
        await _write_response(writer, response, head_only)
    except ConnectionError:
        pass
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await writer.wait_closed()


async def _read_request(reader: asyncio.StreamReader) -> HttpRequest:
    line = await _read_line(reader)
    parts = line.split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise HttpError(400, "malformed request line")
    method, target, _ = parts
    headers: dict[str, str] = {}
    while True:
        header = await _read_line(reader)
        if not header:
            break
        if len(headers) >= MAX_HEADERS:
            raise HttpError(431, "too many headers")
        name, colon, value = header.partition(":")
        if not colon or not name or name != name.strip():
            raise HttpError(400, "malformed header line")
        headers[name.lower()] = value.strip()
    if "transfer-encoding" in headers:
        raise HttpError(501, "chunked request bodies are not supported; send Content-Length")
    body = b""
    length_text = headers.get("content-length", "0")
    if not length_text.isdigit():
        raise HttpError(400, "Content-Length must be a non-negative integer")
    length = int(length_text)
    if length > MAX_BODY_BYTES:
        raise HttpError(413, f"request bodies are limited to {MAX_BODY_BYTES} bytes")
    if length:
        body = await reader.readexactly(length)
    url = urlsplit(target)
    return HttpRequest(
        method=method.upper(),
        path=unquote(url.path) or "/",
        query=parse_qs(url.query),
        headers=headers,
        body=body,
    )


async def _read_line(reader: asyncio.StreamReader) -> str:
    try:
        raw = await reader.readuntil(b"\n")
    except asyncio.LimitOverrunError:
        raise HttpError(431, f"request line or header longer than {MAX_LINE_BYTES} bytes") from None
    # Latin-1 maps every byte, so a request head always decodes (RFC 9110 allows no more).
    return raw.decode("latin-1").rstrip("\r\n")


async def _write_response(
    writer: asyncio.StreamWriter, response: HttpResponse, head_only: bool
) -> None:
    reason = HTTPStatus(response.status).phrase
    lines = [
        f"HTTP/1.1 {response.status} {reason}",
        f"Content-Type: {response.content_type}",
        f"Content-Length: {len(response.body)}",
        "Connection: close",
        "Cache-Control: no-store",
        *(f"{name}: {value}" for name, value in response.headers.items()),
    ]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
    if not head_only:
        writer.write(response.body)
    await writer.drain()

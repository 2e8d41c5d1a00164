"""Who may use ``serve``'s API: the bearer token, the served host names, same-origin writes.

Every request but ``/health`` (Docker's and Kubernetes' probes carry no token) is checked, in
this order:

1. Host: the ``Host`` header names one of the served names (``127.0.0.1``, ``localhost``,
   ``::1``, the ``--host`` address and each ``--allowed-host``; ``*`` allows any), else 421.
   A web page that points its own DNS name at this machine (DNS rebinding) sends its own
   name, and is refused.
2. Token: ``Authorization: Bearer TOKEN``, or HTTP basic auth with the token as the password
   and any user name (for clients that only speak basic auth: Confluent's schema registry
   clients, a ``https://user:TOKEN@host`` URL); else 401 with ``WWW-Authenticate: Bearer`` and
   no detail. With ``public_reads``, GET and HEAD need no token. The comparison is constant
   time by construction: ``hmac.compare_digest`` over the SHA-256 digests of both sides, so
   neither the token's content nor its length shows in the time an answer takes.
3. State-changing methods (all but GET, HEAD and OPTIONS): an ``Origin`` that is not this
   server's own gets 403 (a cross-site form or fetch from a page the operator has open), and
   a body that is not JSON (``application/json``, ``application/*+json``) gets 415:
   ``text/plain``, forms and multipart are what a page can send cross-site without a CORS
   preflight. The routes that take a pipeline file (``YAML_BODY_PATHS``) also accept
   ``application/yaml`` (and ``application/x-yaml``), which no page can send cross-site
   without a preflight either.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from http import HTTPStatus
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1"})
ANY_HOST = "*"
UNGUARDED_PATHS = frozenset({"/health"})
READ_METHODS = frozenset({"GET", "HEAD"})
SAFE_METHODS = READ_METHODS | {"OPTIONS"}
_EVERY_INTERFACE = frozenset({"", "0.0.0.0", "::"})
YAML_MEDIA_TYPES = frozenset({"application/yaml", "application/x-yaml"})
YAML_BODY_PATHS = re.compile(
    r"/pipelines|/pipelines/[^/]+/config|/pipelines/config/validate"
    r"|/connector-plugins/[^/]+/config/validate"
)
"""The paths whose state-changing requests may send a pipeline (or connector) as YAML."""


@dataclass(frozen=True)
class Refusal:
    """An answer instead of the endpoint's: status, message and extra headers."""

    status: int
    message: str
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ApiAccess:
    """The access rules of one server (see the module doc)."""

    token: str = field(repr=False)
    public_reads: bool = False
    hosts: frozenset[str] = LOOPBACK_NAMES
    """Lower-case host names (no port) a request may address; ``*`` for any."""

    @classmethod
    def served(
        cls,
        token: str,
        host: str,
        allowed_hosts: Iterable[str] = (),
        public_reads: bool = False,
    ) -> ApiAccess:
        """The rules of a server listening on ``host`` (``0.0.0.0`` adds no name)."""
        names = {_host_name(name) for name in allowed_hosts}
        if host not in _EVERY_INTERFACE:
            names.add(_host_name(host))
        return cls(token, public_reads, LOOPBACK_NAMES | (names - {""}))

    def refusal(self, method: str, scheme: str, headers: Headers, path: str = "") -> Refusal | None:
        """Why a request for ``path`` must not reach its endpoint, or None when it may."""
        host = headers.get("host", "")
        if ANY_HOST not in self.hosts and _host_name(host) not in self.hosts:
            return Refusal(421, f"this server does not answer for the host {host!r}")
        if not (self.public_reads and method in READ_METHODS) and not self.authorized(
            headers.get("authorization")
        ):
            return Refusal(401, HTTPStatus.UNAUTHORIZED.phrase, {"WWW-Authenticate": "Bearer"})
        if method in SAFE_METHODS:
            return None
        origin = headers.get("origin")
        if origin is not None and origin.lower() != f"{scheme}://{host}".lower():
            return Refusal(403, f"requests from the origin {origin!r} are not accepted here")
        if _json_or_empty(headers) or (
            YAML_BODY_PATHS.fullmatch(path)
            and media_type(headers.get("content-type")) in YAML_MEDIA_TYPES
        ):
            return None
        if YAML_BODY_PATHS.fullmatch(path):
            return Refusal(
                415,
                "send the request body as JSON (Content-Type: application/json) "
                "or YAML (Content-Type: application/yaml)",
            )
        return Refusal(415, "send the request body as JSON (Content-Type: application/json)")

    def authorized(self, authorization: str | None) -> bool:
        """Whether an ``Authorization`` header value presents the token."""
        presented = _presented_token(authorization or "")
        # Always compared, and as fixed-length digests: a missing, short or wrong token takes
        # the same time as a right one.
        return hmac.compare_digest(_digest(presented or ""), _digest(self.token)) and bool(
            presented
        )


class AccessGuard:
    """ASGI middleware that answers refused requests itself (``ApiAccess.refusal``)."""

    def __init__(self, app: ASGIApp, access: ApiAccess) -> None:
        self.app = app
        self.access = access

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] not in UNGUARDED_PATHS:
            refusal = self.access.refusal(
                scope["method"], scope["scheme"], Headers(scope=scope), scope["path"]
            )
            if refusal is not None:
                await _send_refusal(refusal, send)
                return
        await self.app(scope, receive, send)


async def _send_refusal(refusal: Refusal, send: Send) -> None:
    body = json.dumps({"error_code": refusal.status, "message": refusal.message}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
        *((name.lower().encode(), value.encode()) for name, value in refusal.headers.items()),
    ]
    await send({"type": "http.response.start", "status": refusal.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _host_name(host: str) -> str:
    """The lower-case name of a ``Host`` value or a ``--host``: no port, no brackets."""
    if host == ANY_HOST:
        return host
    if host.count(":") > 1 and not host.startswith("["):  # a bare IPv6 address (--host ::1)
        return host.lower()
    try:
        name = urlsplit(f"//{host}").hostname
    except ValueError:
        return ""
    return (name or "").rstrip(".")


def _presented_token(authorization: str) -> str | None:
    scheme, _, credentials = authorization.strip().partition(" ")
    credentials = credentials.strip()
    if scheme.lower() == "bearer":
        return credentials
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(credentials, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        _, colon, password = decoded.partition(":")
        return password if colon else None
    return None


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def _json_or_empty(headers: Headers) -> bool:
    """Whether a state-changing request carries JSON, or no body at all."""
    content_type = headers.get("content-type")
    if content_type is None:
        return headers.get("content-length", "0") == "0" and "transfer-encoding" not in headers
    media = media_type(headers.get("content-type"))
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


def media_type(content_type: str | None) -> str:
    """The lower-case media type of a ``Content-Type`` value, without parameters ("" when
    none)."""
    return (content_type or "").partition(";")[0].strip().lower()

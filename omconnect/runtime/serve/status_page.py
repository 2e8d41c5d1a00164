"""The ``GET /`` status page: an HTML shell whose own script (``page_assets``) renders the
pipelines' live numbers and sends pause / resume / restart / run now with the API token.

``StatusPage`` sits in front of the access guard:

* ``/status-page.js`` and ``/status-page.css`` are static and hold no data: anyone may load
  them (a browser fetches them before anyone could sign in);
* ``GET /`` from a browser without the token (``Accept: text/html``) gets the shell with no
  data, which shows the login form; an API client without the token still gets the guard's
  401, and the host check applies to both;
* ``GET /`` with the token (or with ``public_reads``) gets the shell with the current
  statuses embedded as JSON (escaped for HTML; the caller masks their secrets), rendered at
  once and then polled.

The page and its assets carry a Content-Security-Policy that allows scripts, styles and
requests from this origin only, no framing and no form posts elsewhere.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from omconnect.runtime.serve.access_guard import READ_METHODS, ApiAccess
from omconnect.runtime.serve.page_assets import SCRIPT, STYLE
from omconnect.runtime.serve.pipeline_state import PipelineStatus

CONTENT_TYPE = "text/html; charset=utf-8"
JSON = "application/json"
PAGE_PATH = "/"
SCRIPT_PATH = "/status-page.js"
STYLE_PATH = "/status-page.css"
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}
_ASSETS = {
    SCRIPT_PATH: (SCRIPT.encode(), "text/javascript; charset=utf-8"),
    STYLE_PATH: (STYLE.encode(), "text/css; charset=utf-8"),
}
COLUMNS = (
    "Pipeline",
    "State",
    "Freshness",
    "Schedule",
    "Rows/s",
    "Read",
    "Written",
    "Lag",
    "Last error",
    "Actions",
)


def render_status_page(statuses: Sequence[PipelineStatus] | None) -> str:
    """The page shell, with ``statuses`` embedded for the script (None: a reader without the
    token, who sees the login form)."""
    head = "".join(f"<th>{html.escape(column)}</th>" for column in COLUMNS)
    initial = ""
    if statuses is not None:
        data = {status.name: {"status": status.as_json()} for status in statuses}
        initial = _script_safe_json(data)
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<title>omconnect</title>"
        f'<link rel="stylesheet" href="{STYLE_PATH}">'
        f'<script src="{SCRIPT_PATH}" defer></script></head><body>\n'
        "<header><h1>omconnect</h1>\n"
        '<form id="login" hidden><label>API token '
        '<input id="token" type="password" autocomplete="current-password" required></label> '
        '<button type="submit">Sign in</button></form>\n'
        '<p id="session" hidden>signed in · <button id="logout" type="button">Sign out</button>'
        "</p></header>\n"
        '<p id="notice" class="muted" role="status"></p>\n'
        f'<table><thead><tr>{head}</tr></thead><tbody id="pipelines">'
        f'<tr><td colspan="{len(COLUMNS)}" class="muted">loading…</td></tr></tbody></table>\n'
        '<p class="muted"><span id="updated"></span> · '
        '<a href="/pipelines?expand=status">JSON</a> · <a href="/metrics">metrics</a> · '
        '<a href="/openapi.json">OpenAPI</a> · <a href="/health">health</a></p>\n'
        "<noscript>This page needs JavaScript; the same data is at "
        "/pipelines?expand=status.</noscript>\n"
        f'<script type="application/json" id="initial-status">{initial}</script>\n'
        "</body></html>\n"
    )


def _script_safe_json(data: object) -> str:
    """JSON that cannot end its ``<script>`` element nor open markup: ``<``, ``>`` and ``&``
    as JSON escapes (the parsed value is the same)."""
    text = json.dumps(data)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


class StatusPage:
    """ASGI middleware in front of the access guard ``app`` (see the module doc)."""

    def __init__(self, app: ASGIApp, access: ApiAccess) -> None:
        self.app = app
        self.access = access

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path")
        if scope["type"] != "http" or path not in (PAGE_PATH, *_ASSETS):
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        if path in _ASSETS:
            if method in READ_METHODS:
                body, content_type = _ASSETS[path]
                await _answer(send, 200, body, content_type, method)
            else:
                message = {"error_code": 405, "message": f"method {method} is not allowed here"}
                allow = {"allow": "GET, HEAD"}
                await _answer(send, 405, json.dumps(message).encode(), JSON, method, allow)
            return
        if method in READ_METHODS and self._login_shell(scope):
            await _answer(send, 200, render_status_page(None).encode(), CONTENT_TYPE, method)
            return
        await self.app(scope, receive, _with_security_headers(send))

    def _login_shell(self, scope: Scope) -> bool:
        """Whether a browser without the token asks for the page (it gets the shell)."""
        headers = Headers(scope=scope)
        if "text/html" not in headers.get("accept", ""):
            return False
        refusal = self.access.refusal(scope["method"], scope["scheme"], headers, PAGE_PATH)
        return refusal is not None and refusal.status == 401


async def _answer(
    send: Send,
    status: int,
    body: bytes,
    content_type: str,
    method: str,
    extra: dict[str, str] | None = None,
) -> None:
    headers = {
        **SECURITY_HEADERS,
        **(extra or {}),
        "content-type": content_type,
        "content-length": str(len(body)),
    }
    encoded = [(name.encode(), value.encode()) for name, value in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": encoded})
    await send({"type": "http.response.body", "body": b"" if method == "HEAD" else body})


def _with_security_headers(send: Send) -> Send:
    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            present = {name.lower() for name, _ in message.get("headers", [])}
            extra = [
                (name.encode(), value.encode())
                for name, value in SECURITY_HEADERS.items()
                if name.encode() not in present
            ]
            message["headers"] = [*message.get("headers", []), *extra]
        await send(message)

    return sending

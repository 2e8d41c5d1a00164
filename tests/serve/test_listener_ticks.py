"""The API listener of an idle ``serve`` is not woken ten times a second (uvicorn's own main
loop): it ticks once per ``TICK_SECONDS`` to refresh its ``Date`` header, and ``stop`` ends
it at once, not at its next tick. Counted on the ticks, with the tick made an hour long."""

from __future__ import annotations

import asyncio
import urllib.request
from typing import Any

import pytest

from omconnect.runtime.serve import uvicorn_server
from omconnect.runtime.serve.uvicorn_server import HttpListener


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    assert scope["type"] == "http"
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def _get(url: str) -> tuple[bytes, str | None]:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return answer.read(), answer.headers.get("date")


def test_an_idle_listener_ticks_once_per_tick_and_stops_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(uvicorn_server, "TICK_SECONDS", 3600.0)
    ticks = [0]
    on_tick = uvicorn_server._SignalFreeServer.on_tick

    async def counted(self: Any, counter: int) -> bool:
        ticks[0] += 1
        return await on_tick(self, counter)

    monkeypatch.setattr(uvicorn_server._SignalFreeServer, "on_tick", counted)

    async def body() -> tuple[bytes, str | None, int]:
        listener = HttpListener(_app, "127.0.0.1", 0)
        serving = asyncio.create_task(listener.serve())
        host, port = listener.address
        got, date = await asyncio.to_thread(_get, f"http://{host}:{port}/")
        await asyncio.sleep(0.5)  # five of uvicorn's ticks
        idle_ticks = ticks[0]
        listener.stop()
        await asyncio.wait_for(serving, timeout=10)  # not an hour: stop wakes the loop
        return got, date, idle_ticks

    got, date, idle_ticks = asyncio.run(body())
    assert got == b"ok"
    assert date is not None and date.endswith(" GMT")
    assert idle_ticks == 1  # the first tick, which set the Date header
    assert ticks[0] == 2  # and the one stop woke

"""Running ``serve`` in-process for tests: the real service on its own loop in a thread,
reached over loopback HTTP with urllib, plus pipeline files on the embedded broker."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow.dataset as ds

from omconnect.runtime.serve import Supervisor, load_pipeline_folder, run_service
from omconnect.runtime.state.schema_registry import SchemaRegistry

STARTUP_TIMEOUT = 10.0


class ServedWorker:
    """``with ServedWorker(folder) as worker:`` serves ``folder`` on a free loopback port (and
    ``registry`` with Confluent's Schema Registry API, when given)."""

    def __init__(
        self, folder: Path, registry: SchemaRegistry | None = None, **supervisor_options: Any
    ) -> None:
        self.supervisor = Supervisor(load_pipeline_folder(folder), **supervisor_options)
        self.registry = registry
        self.url = ""
        self._listening = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="serve-under-test", daemon=True)

    def __enter__(self) -> ServedWorker:
        self._thread.start()
        if not self._listening.wait(STARTUP_TIMEOUT):
            raise TimeoutError(f"serve did not listen: {self._error!r}")
        return self

    def __exit__(self, *exc_info: object) -> None:
        assert self._loop is not None and self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(STARTUP_TIMEOUT)
        assert not self._thread.is_alive(), "serve did not stop"
        if self._error is not None:
            raise self._error

    def _main(self) -> None:
        async def serve() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()

            def listening(host: str, port: int) -> None:
                self.url = f"http://{host}:{port}"
                self._listening.set()

            await run_service(
                self.supervisor, "127.0.0.1", 0, self._stop, listening, registry=self.registry
            )

        try:
            asyncio.run(serve())
        except BaseException as exc:  # surfaced by __exit__ / __enter__ in the test thread
            self._error = exc
            self._listening.set()

    def request(self, method: str, path: str) -> tuple[int, dict[str, str], bytes]:
        """Status, headers and body of ``method path`` (error statuses included)."""
        request = urllib.request.Request(self.url + path, method=method)
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), error.read()

    def json(self, method: str, path: str, expect: int = 200) -> Any:
        status, _, body = self.request(method, path)
        assert status == expect, (status, body)
        return json.loads(body)

    def status(self, name: str) -> dict[str, Any]:
        return self.json("GET", f"/pipelines/{name}/status")

    def text(self, path: str) -> str:
        status, _, body = self.request("GET", path)
        assert status == 200, (status, body)
        return body.decode()


def wait_until(condition: Callable[[], Any], timeout: float = 6.0, what: str = "") -> Any:
    """Poll ``condition`` until it is truthy; returns its value."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        time.sleep(0.05)


def sink_ids(directory: Path) -> list[int]:
    """The ``order_id`` values in the parquet files of ``directory`` (completed files only)."""
    if not directory.is_dir() or not any(directory.glob("*.parquet")):
        return []
    table = ds.dataset(directory, format="parquet").to_table(columns=["order_id"])
    return sorted(table["order_id"].to_pylist())


def write_orders(path: Path, ids: range) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["order_id,amount", *(f"{i},{i * 10}" for i in ids)]
    path.write_text("\n".join(lines) + "\n")


def write_pipeline(
    folder: Path,
    name: str,
    root: Path,
    source_dir: Path,
    pattern: str = "",
    schedule: str | None = None,
    extra: str = "",
) -> Path:
    """A CSV -> embedded broker -> parquet pipeline (like pipelines/quickstart.yaml) that
    commits and scans for new files quickly, so tests see deliveries within a second.
    The source reads ``source_dir/pattern`` (the whole folder by default)."""
    folder.mkdir(parents=True, exist_ok=True)
    text = f"""\
name: {name}
broker: embedded://{root / "state"}
state: {root / "state"}
source:
  connector: csv
  path: {source_dir}/{pattern}
  key: [order_id]
  poll_interval: 0.1
topic: {name}
format: avro
commit_interval: 0.1
batching: {{linger: 0.02}}
sink:
  connector: parquet
  path: {root / "out" / name}/
"""
    if schedule is not None:
        text += f'schedule: "{schedule}"\n'
    file = folder / f"{name}.yaml"
    file.write_text(text + extra)
    return file

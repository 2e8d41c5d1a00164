"""Running ``serve`` in-process for tests: the real service (uvicorn) on its own loop in a
thread, reached over loopback HTTP with urllib, plus pipeline files on the embedded broker."""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import signal
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from http.client import HTTPMessage
from pathlib import Path
from typing import Any

import pyarrow.dataset as ds

from omconnect.runtime.serve import (
    ApiAccess,
    Supervisor,
    TlsFiles,
    load_pipeline_folder,
    run_service,
)
from omconnect.runtime.serve.folder_reload import FolderChanges
from omconnect.runtime.state.schema_registry import SchemaRegistry

STARTUP_TIMEOUT = 10.0
# How long a serve process may take to listen (its imports on a loaded machine).
SERVE_STARTUP_TIMEOUT = 30.0
LISTENING = re.compile(r"listening on (https?://[\d.]+:\d+)/")


class ServedWorker:
    """``with ServedWorker(folder) as worker:`` serves ``folder`` on a free loopback port (and
    ``registry`` with Confluent's Schema Registry API, when given).

    The API requires ``token`` (a fresh one by default), which ``request`` sends unless told
    not to. ``base_url`` is the bare address; ``url`` carries the token as basic auth
    (``http://omconnect:TOKEN@127.0.0.1:PORT``), the form registry clients take.
    """

    def __init__(
        self,
        folder: Path,
        registry: SchemaRegistry | None = None,
        token: str | None = None,
        public_reads: bool = False,
        allowed_hosts: tuple[str, ...] = (),
        tls: TlsFiles | None = None,
        **supervisor_options: Any,
    ) -> None:
        supervisor_options.setdefault("folder", folder)
        self.supervisor = Supervisor(load_pipeline_folder(folder), **supervisor_options)
        self.registry = registry
        self.token = token or secrets.token_urlsafe(24)
        self.access = ApiAccess.served(self.token, "127.0.0.1", allowed_hosts, public_reads)
        self.tls = tls
        self.ssl_context: ssl.SSLContext | None = None
        if tls is not None:
            self.ssl_context = ssl.create_default_context(cafile=tls.cert)
        self.base_url = ""
        self.url = ""
        self.port = 0
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
                scheme = "https" if self.tls is not None else "http"
                self.port = port
                self.base_url = f"{scheme}://{host}:{port}"
                self.url = f"{scheme}://omconnect:{self.token}@{host}:{port}"
                self._listening.set()

            await run_service(
                self.supervisor,
                "127.0.0.1",
                0,
                self._stop,
                self.access,
                listening,
                registry=self.registry,
                tls=self.tls,
            )

        try:
            asyncio.run(serve())
        except BaseException as exc:  # surfaced by __exit__ / __enter__ in the test thread
            self._error = exc
            self._listening.set()

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        authorized: bool = True,
    ) -> tuple[int, HTTPMessage, bytes]:
        """Status, headers (names case-insensitive) and body of ``method path`` (error
        statuses included), with the bearer token unless ``authorized`` is false or
        ``headers`` has an Authorization."""
        sent = dict(headers or {})
        if authorized:
            sent.setdefault("Authorization", f"Bearer {self.token}")
        request = urllib.request.Request(self.base_url + path, body, sent, method=method)
        try:
            with urllib.request.urlopen(request, timeout=5, context=self.ssl_context) as response:
                return response.status, response.headers, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.headers, error.read()

    def json(self, method: str, path: str, expect: int = 200) -> Any:
        status, _, body = self.request(method, path)
        assert status == expect, (status, body)
        return json.loads(body)

    def send(
        self, method: str, path: str, payload: Any, expect: int, content_type: str = ""
    ) -> Any:
        """``method path`` with ``payload`` as its body (JSON, or text as it is with a
        ``content_type`` such as ``application/yaml``); the decoded answer, or None when it
        has no body."""
        if content_type:
            body, headers = str(payload).encode(), {"Content-Type": content_type}
        else:
            body, headers = json.dumps(payload).encode(), {"Content-Type": "application/json"}
        status, _, answer = self.request(method, path, body, headers)
        assert status == expect, (status, answer)
        return json.loads(answer) if answer else None

    def status(self, name: str) -> dict[str, Any]:
        return self.json("GET", f"/pipelines/{name}/status")

    def reload(self) -> FolderChanges:
        """``Supervisor.reload_folder`` on the worker's loop (what SIGHUP has serve do)."""
        assert self._loop is not None
        future = asyncio.run_coroutine_threadsafe(self.supervisor.reload_folder(), self._loop)
        return future.result(STARTUP_TIMEOUT)

    def text(self, path: str) -> str:
        status, _, body = self.request("GET", path)
        assert status == 200, (status, body)
        return body.decode()


class ServeProcess:
    """``omconnect serve FOLDER --port 0 OPTIONS`` as a process in ``cwd``, its output in
    ``cwd/serve.log`` (a file: a long run's log never fills a pipe and blocks it). ``env`` is
    added to this one's environment (a None value removing a variable); ``token``, when given,
    is its API token (``OMCONNECT_API_TOKEN``), which ``status`` and ``post`` send. ``url`` is
    where it listens, known when the constructor returns. Use it in a ``with``, or call
    ``kill`` in a ``finally``: either ends the process if it still runs."""

    def __init__(
        self,
        folder: Path | str,
        cwd: Path,
        *options: str,
        env: dict[str, str | None] | None = None,
        token: str | None = None,
    ) -> None:
        environment = {**os.environ, "PYTHONUNBUFFERED": "1"}
        if token is not None:
            environment["OMCONNECT_API_TOKEN"] = token
        for name, value in (env or {}).items():
            environment.pop(name, None)
            if value is not None:
                environment[name] = value
        self.token = token
        self.log = cwd / "serve.log"
        self._log_file = self.log.open("w")
        command = [sys.executable, "-m", "omconnect.runtime.cli.serve_cmd", str(folder)]
        self.process = subprocess.Popen(
            [*command, "--port", "0", *options],
            cwd=cwd,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            text=True,
            env=environment,
        )
        try:
            self.url: str = wait_until(self._listening, SERVE_STARTUP_TIMEOUT, "serve listens")
        except BaseException:
            self.kill()
            raise

    def _listening(self) -> str | None:
        found = LISTENING.search(self.output())
        if found is None and self.process.poll() is not None:
            raise AssertionError("serve ended before it listened:\n" + self.output())
        return found.group(1) if found else None

    def output(self) -> str:
        """Everything serve wrote so far (stdout and stderr)."""
        return self.log.read_text()

    @property
    def logged(self) -> list[str]:
        """The lines serve wrote so far."""
        return self.output().splitlines(keepends=True)

    def status(self, pipeline: str) -> dict[str, Any]:
        request = urllib.request.Request(
            f"{self.url}/pipelines/{pipeline}/status", headers=self._authorized()
        )
        with urllib.request.urlopen(request, timeout=5) as answer:
            return json.loads(answer.read())  # type: ignore[no-any-return]

    def post(self, path: str) -> None:
        request = urllib.request.Request(self.url + path, method="POST", headers=self._authorized())
        with urllib.request.urlopen(request, timeout=5):
            pass

    def _authorized(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def terminate(self, timeout: float) -> tuple[int, float]:
        """SIGTERM, then wait up to ``timeout`` seconds: (exit status, seconds it took).
        A process still there is killed and the test fails."""
        started = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        try:
            status = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(
                f"serve did not stop within {timeout:.0f}s of SIGTERM:\n{self.output()}"
            ) from None
        return status, time.monotonic() - started

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self._log_file.close()

    def __enter__(self) -> ServeProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.kill()


def wait_until(condition: Callable[[], Any], timeout: float = 6.0, what: str = "") -> Any:
    """Poll ``condition`` until it is truthy; returns its value."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what or condition}")
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

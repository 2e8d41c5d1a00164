"""NATS servers for the tests: the machine's shared one, and private ones a test can restart.

The broker tests run against the NATS server with JetStream on ``127.0.0.1:4222`` (or
``OMCONNECT_TEST_NATS``, a ``host:port``). Each test gets a fresh ``namespace`` in its URL, so
its streams, subjects and groups bucket are its own, and ``delete_test_namespaces`` (called
by an autouse fixture after every broker test) deletes them, so the shared server does not
fill up. When nothing answers there, the tests fail saying how to start a server.

``NatsServerProcess`` runs a private ``nats-server -js`` on a free port with its store in a
temporary directory, for tests that kill and restart the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest

SHARED_ADDRESS = os.environ.get("OMCONNECT_TEST_NATS", "127.0.0.1:4222")
# Short enough that a test waiting for a dead member's partitions stays quick, long enough
# that a busy machine does not expel live members.
TEST_SESSION_TIMEOUT = 3

_namespaces: list[str] = []
_reachable: bool | None = None


def shared_server() -> str:
    """``host:port`` of the shared test server; fails the test (never skips) when nothing
    listens there."""
    global _reachable
    if _reachable is None:
        _reachable = _listening(SHARED_ADDRESS)
    if not _reachable:
        pytest.fail(
            f"no NATS server answers on {SHARED_ADDRESS}: start one with JetStream, e.g. "
            f"`nats-server -js -a {SHARED_ADDRESS.split(':')[0]} -p {SHARED_ADDRESS.split(':')[1]}`"
            " (or set OMCONNECT_TEST_NATS=host:port to use another)",
            pytrace=False,
        )
    return SHARED_ADDRESS


def nats_test_url(tmp_path: Path | None = None) -> str:
    """A ``nats://`` URL of the shared server in a namespace of its own (deleted after the
    test by ``delete_test_namespaces``)."""
    del tmp_path
    address = shared_server()
    namespace = f"t{uuid.uuid4().hex[:12]}"
    _namespaces.append(namespace)
    return f"nats://{address}?namespace={namespace}&session_timeout={TEST_SESSION_TIMEOUT}"


def delete_test_namespaces() -> None:
    """Delete the streams and groups bucket of every namespace ``nats_test_url`` gave out."""
    if not _namespaces:
        return
    namespaces = list(_namespaces)
    _namespaces.clear()
    asyncio.run(_delete_namespaces(f"nats://{SHARED_ADDRESS}", namespaces))


async def _delete_namespaces(server: str, namespaces: list[str]) -> None:
    import nats

    client = await nats.connect(server, connect_timeout=2, max_reconnect_attempts=1)
    try:
        js = client.jetstream()
        prefixes = tuple(f"OMC-{ns}_" for ns in namespaces)
        buckets = {f"KV_OMC-{ns}_groups" for ns in namespaces}
        offset = 0
        doomed = []
        while page := await js.streams_info(offset):
            offset += len(page)
            doomed += [
                info.config.name
                for info in page
                if info.config.name
                and (info.config.name.startswith(prefixes) or info.config.name in buckets)
            ]
        for name in doomed:
            with contextlib.suppress(Exception):
                await js.delete_stream(name)
    finally:
        await client.close()


def _listening(address: str, timeout: float = 1.0) -> bool:
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class NatsServerProcess:
    """A private ``nats-server -js`` (or without JetStream) on a free port, its store and log
    under ``directory``."""

    def __init__(self, directory: Path, jetstream: bool = True) -> None:
        binary = shutil.which("nats-server")
        if binary is None:
            pytest.fail("nats-server is not on PATH: install it to run this test", pytrace=False)
        self.binary = binary
        self.directory = directory
        self.jetstream = jetstream
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start it (again, on the same port and store) and wait until it listens."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [
                self.binary,
                *(["-js", "-sd", str(self.directory / "store")] if self.jetstream else []),
                "-a",
                "127.0.0.1",
                "-p",
                str(self.port),
            ],
            stdout=subprocess.DEVNULL,
            stderr=(self.directory / "server.log").open("ab"),
        )
        deadline = time.monotonic() + 10
        while not _listening(self.address, 0.2):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"nats-server did not start: see {self.directory}/server.log")
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL it (by its PID) and wait until it is gone."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)
        self.process = None

    def stop(self) -> None:
        """SIGTERM it and wait; SIGKILL if it lingers."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
        self.process = None

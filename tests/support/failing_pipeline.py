"""A pipeline whose source fails for good after a big good file, run by real ``omconnect``
processes: a CSV of ``GOOD_ROWS`` ids sorted before a file with a value that fails its declared
column type (``errors.tolerance: none``), into Parquet, on the embedded broker.

The in-flight bound: the source has at most ``MAX_IN_FLIGHT_BYTES`` of batches between poll
and ack (one batch more when a single batch is larger), each of at most ``MAX_ROWS`` rows.
A failure may publish again at most what was in flight, never what was acknowledged.
"""

from __future__ import annotations

import io
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.dataset as ds

from tests.support.omconnect_process import omconnect

GOOD_ROWS = 100_000
MAX_ROWS = 10_000
MAX_IN_FLIGHT_BYTES = 1_048_576
TOPIC = "faulty"
COLUMNS = {"id": pa.int64(), "name": pa.string(), "amount": pa.float64()}


def write_inputs(directory: Path, rows: int = GOOD_ROWS) -> None:
    """``a_good.csv`` with ids 0..rows-1, then ``b_bad.csv`` whose second row has no integer id."""
    directory.mkdir(parents=True, exist_ok=True)
    lines = ["id,name,amount"] + [f"{i},name-{i},{i * 0.5}" for i in range(rows)]
    (directory / "a_good.csv").write_text("\n".join(lines) + "\n")
    (directory / "b_bad.csv").write_text("id,name,amount\n1,x,1.0\nnot-an-id,y,2.0\n")


def pipeline_text(name: str = TOPIC) -> str:
    return (
        f"name: {name}\n"
        "source:\n"
        "  connector: csv\n"
        "  path: in/\n"
        "  columns: {id: int64, name: string, amount: float64}\n"
        "  poll_interval: 0.5\n"
        f"topic: {TOPIC}\n"
        f"batching: {{max_rows: {MAX_ROWS}}}\n"
        f"max_in_flight_bytes: {MAX_IN_FLIGHT_BYTES}\n"
        "errors: {tolerance: none}\n"
        "sink: {connector: parquet, path: out/}\n"
    )


def in_flight_bound(good_csv: Path) -> int:
    """The most rows one failure may publish twice: ``MAX_ROWS`` times the batches of the
    good file that fit in ``MAX_IN_FLIGHT_BYTES`` (plus one)."""
    with good_csv.open("rb") as file:
        head = b"".join(file.readline() for _ in range(MAX_ROWS + 1))
    options = pa_csv.ConvertOptions(column_types=COLUMNS)
    batch_bytes = pa_csv.read_csv(io.BytesIO(head), convert_options=options).nbytes
    return MAX_ROWS * (1 + MAX_IN_FLIGHT_BYTES // batch_bytes)


def topic_messages(cwd: Path, topic: str = TOPIC) -> int:
    """Messages on ``topic`` of the embedded broker under ``cwd`` (``omconnect topics list``)."""
    listed = omconnect("topics", "list", cwd=cwd, timeout=60)
    assert listed.returncode == 0, listed.stderr
    for line in listed.stdout.splitlines():
        fields = line.split()
        if fields and fields[0] == topic:
            return int(fields[-1])
    return 0


def sink_ids(directory: Path) -> pa.Array:
    """The ``id`` column of every complete Parquet file (hidden temporary files are skipped)."""
    if not directory.is_dir() or not any(directory.glob("*.parquet")):
        return pa.array([], pa.int64())
    return ds.dataset(directory, format="parquet").to_table(columns=["id"])["id"].combine_chunks()


def wait_until(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting until {what}")
        time.sleep(0.1)
    return value


class ServeProcess:
    """``omconnect serve FOLDER --port 0`` in ``cwd``, its log in ``cwd/serve.log``; its API
    token is ``token`` (given as ``OMCONNECT_API_TOKEN``), which ``status`` and ``post`` send."""

    def __init__(self, folder: str, cwd: Path, env: dict[str, str] | None = None) -> None:
        self.token = secrets.token_urlsafe(24)
        self.log = cwd / "serve.log"
        self._log_file = self.log.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "omconnect.runtime.cli.main", "serve", folder, "--port", "0"],
            cwd=cwd,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "OMCONNECT_API_TOKEN": self.token, **(env or {})},
        )
        self.url = wait_until(self._listening, 30, "serve listens")

    def _listening(self) -> str | None:
        assert self.process.poll() is None, self.log.read_text()
        for line in self.log.read_text().splitlines():
            if line.startswith("{"):  # a JSON log line (the log is not a terminal)
                line = str(json.loads(line).get("message", ""))
            if "HTTP API listening on " in line:
                return line.split("HTTP API listening on ")[1].strip().rstrip("/")
        return None

    def status(self, pipeline: str) -> dict[str, Any]:
        request = urllib.request.Request(
            f"{self.url}/pipelines/{pipeline}/status", headers=self._authorized()
        )
        with urllib.request.urlopen(request, timeout=5) as r:
            return json.loads(r.read())  # type: ignore[no-any-return]

    def post(self, path: str) -> None:
        request = urllib.request.Request(self.url + path, method="POST", headers=self._authorized())
        with urllib.request.urlopen(request, timeout=5):
            pass

    def _authorized(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def terminate(self, timeout: float) -> tuple[int, float]:
        """SIGTERM, then wait up to ``timeout`` seconds: (exit status, seconds it took).
        A process still there is killed and the test fails."""
        started = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        try:
            status = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(
                f"serve did not stop within {timeout:.0f}s of SIGTERM:\n{self.log.read_text()}"
            ) from None
        finally:
            self._log_file.close()
        return status, time.monotonic() - started

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._log_file.close()

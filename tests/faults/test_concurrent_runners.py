"""Two runners of one pipeline, ``run`` beside ``serve``, two pipelines on one sink directory:
the second is refused with a message naming the first, and every id arrives exactly once.
A SIGKILLed runner leaves no lock behind."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from tests.support.omconnect_process import omconnect, spawn_omconnect

ROWS = 20_000


def _pipeline(name: str, topic: str, sink: str = "out/") -> str:
    return (
        f"name: {name}\n"
        "source: {connector: parquet, path: data/*.parquet, poll_interval: 0.1}\n"
        f"topic: {topic}\n"
        f"sink: {{connector: parquet, path: {sink}}}\n"
        "commit_interval: 0.1\n"
    )


def _write_ids(directory: Path, first: int, count: int) -> None:
    directory.mkdir(exist_ok=True)
    ids = np.arange(first, first + count, dtype=np.int64)
    table = pa.table({"id": ids, "text": pa.array(np.char.add("row-", ids.astype(str)))})
    # Written under a hidden name, then renamed: the source never sees half a file.
    temp = directory / f".{first:09d}.parquet"
    pq.write_table(table, temp)
    temp.rename(directory / f"{first:09d}.parquet")


def _sink_ids(directory: Path) -> np.ndarray:
    if not directory.is_dir() or not any(directory.glob("*.parquet")):
        return np.array([], dtype=np.int64)
    return ds.dataset(directory, format="parquet").to_table(columns=["id"])["id"].to_numpy()


def _wait_until(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(0.05)
    return value


def _wait_for_ids(out: Path, count: int, process: subprocess.Popen[str] | None = None) -> None:
    def delivered() -> bool:
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the runner ended early: {process.communicate()[1]}")
        return len(_sink_ids(out)) >= count

    _wait_until(delivered, 60, f"{count} rows are in {out}")


def _stop(process: subprocess.Popen[str]) -> str:
    """SIGTERM ``process`` (a clean stop) and return its stderr."""
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    return stderr


def _assert_each_id_once(out: Path, count: int) -> None:
    ids = np.sort(_sink_ids(out))
    assert len(ids) == len(np.unique(ids)), f"{len(ids) - len(np.unique(ids))} ids delivered twice"
    assert np.array_equal(ids, np.arange(count)), f"{count - len(ids)} ids missing"


def _assert_refused(result: subprocess.CompletedProcess[str], *expected: str) -> None:
    assert result.returncode != 0, f"not refused: {result.stderr}"
    for text in expected:
        assert text in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_a_second_run_of_a_running_pipeline_is_refused_naming_the_first(tmp_path: Path) -> None:
    _write_ids(tmp_path / "data", 0, ROWS)
    (tmp_path / "p.yaml").write_text(_pipeline("orders", "orders"))
    first = spawn_omconnect("run", "p.yaml", cwd=tmp_path)
    try:
        _wait_for_ids(tmp_path / "out", ROWS, first)
        second = omconnect("run", "p.yaml", "--once", cwd=tmp_path)
        _assert_refused(
            second,
            "pipeline 'orders' is already running",
            f"pid {first.pid} on host {socket.gethostname()}",
            "'omconnect run'",
        )
        changed = omconnect("offsets", "reset", "p.yaml", cwd=tmp_path)
        _assert_refused(changed, f"pid {first.pid}", "stop it before changing its offsets")
        assert omconnect("offsets", "list", "p.yaml", cwd=tmp_path).returncode == 0
        # The first runner was not disturbed: it delivers what arrives next.
        _write_ids(tmp_path / "data", ROWS, ROWS)
        _wait_for_ids(tmp_path / "out", 2 * ROWS, first)
    finally:
        _stop(first)
    _assert_each_id_once(tmp_path / "out", 2 * ROWS)
    assert omconnect("offsets", "reset", "p.yaml", cwd=tmp_path).returncode == 0


def test_two_runs_started_together_deliver_every_id_once(tmp_path: Path) -> None:
    rows = 300_000
    for part in range(3):
        _write_ids(tmp_path / "data", part * rows // 3, rows // 3)
    (tmp_path / "p.yaml").write_text(_pipeline("orders", "orders"))
    runs = [spawn_omconnect("run", "p.yaml", "--once", cwd=tmp_path) for _ in range(2)]
    results = [(run, *run.communicate(timeout=120)) for run in runs]
    for run, _, stderr in results:
        if run.returncode != 0:
            (other,) = [r for r in runs if r is not run]
            assert f"pid {other.pid} on host" in stderr, stderr
            assert "Traceback" not in stderr
    assert any(run.returncode == 0 for run in runs)
    _assert_each_id_once(tmp_path / "out", rows)


def test_run_beside_serve_on_one_pipelines_folder(tmp_path: Path) -> None:
    folder = tmp_path / "pipelines"
    folder.mkdir()
    (folder / "orders.yaml").write_text(_pipeline("orders", "orders"))
    _write_ids(tmp_path / "data", 0, ROWS)
    run = spawn_omconnect("run", "pipelines/orders.yaml", cwd=tmp_path)
    serve: subprocess.Popen[str] | None = None
    try:
        _wait_for_ids(tmp_path / "out", ROWS, run)
        port = _free_port()
        serve = spawn_omconnect(
            "serve", "pipelines", "--port", str(port), "--public-reads", cwd=tmp_path
        )

        def blocked() -> str:
            assert serve is not None and serve.poll() is None, "serve ended"
            status = _status(port, "orders")
            return str(status["error"] or "") if status["state"] == "FAILED" else ""

        error = _wait_until(blocked, 30, "serve shows the pipeline held by run")
        assert "pipeline 'orders' is already running" in error
        assert f"pid {run.pid} on host" in error and "'omconnect run'" in error
        _stop(run)
        # serve takes the pipeline over at its next attempt and delivers what arrives.
        _write_ids(tmp_path / "data", ROWS, ROWS)
        _wait_for_ids(tmp_path / "out", 2 * ROWS, serve)
        beside = omconnect("run", "pipelines/orders.yaml", "--once", cwd=tmp_path)
        _assert_refused(beside, f"pid {serve.pid} on host", "'omconnect serve'")
    finally:
        for process in (run, serve):
            if process is not None and process.poll() is None:
                _stop(process)
    _assert_each_id_once(tmp_path / "out", 2 * ROWS)


def test_a_sigkilled_runner_leaves_its_pipeline_free_at_once(tmp_path: Path) -> None:
    _write_ids(tmp_path / "data", 0, ROWS)
    (tmp_path / "p.yaml").write_text(_pipeline("orders", "orders"))
    killed = spawn_omconnect("run", "p.yaml", cwd=tmp_path)
    _wait_for_ids(tmp_path / "out", ROWS, killed)
    refused = omconnect("run", "p.yaml", "--once", cwd=tmp_path)
    _assert_refused(refused, f"pid {killed.pid} on host")
    killed.send_signal(signal.SIGKILL)
    killed.wait(timeout=30)
    _write_ids(tmp_path / "data", ROWS, ROWS)
    after = omconnect("run", "p.yaml", "--once", cwd=tmp_path)
    assert after.returncode == 0, after.stderr
    _assert_each_id_once(tmp_path / "out", 2 * ROWS)


def test_a_second_pipeline_on_one_sink_directory_is_refused(tmp_path: Path) -> None:
    _write_ids(tmp_path / "data", 0, ROWS)
    (tmp_path / "a.yaml").write_text(_pipeline("first", "first"))
    (tmp_path / "b.yaml").write_text(_pipeline("second", "second"))
    first = spawn_omconnect("run", "a.yaml", cwd=tmp_path)
    try:
        _wait_for_ids(tmp_path / "out", ROWS, first)
        second = omconnect("run", "b.yaml", "--once", cwd=tmp_path)
        _assert_refused(
            second,
            "pipeline 'first' already writes into this directory",
            f"pid {first.pid} on host",
        )
    finally:
        _stop(first)
    written = sorted(p.name for p in (tmp_path / "out").glob("*.parquet"))
    assert written and all(name.startswith("first-") for name in written), written
    _assert_each_id_once(tmp_path / "out", ROWS)
    # Once the first has stopped, the directory is free for the other.
    again = omconnect("run", "b.yaml", "--once", cwd=tmp_path)
    assert again.returncode == 0, again.stderr


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _status(port: int, name: str) -> dict[str, Any]:
    try:
        url = f"http://127.0.0.1:{port}/pipelines/{name}/status"
        with urllib.request.urlopen(url, timeout=5) as response:
            return dict(json.loads(response.read()))
    except OSError:
        return {"state": "UNREACHABLE", "error": None}

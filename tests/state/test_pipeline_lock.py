"""The locks behind "one runner per pipeline, one pipeline per sink directory": file locks
(``flock`` locks belong to an open file, so two lock objects of one process exclude each
other as two processes would), and the pipeline lock of every state backend (a directory's
lock file, a Postgres advisory lock: one session per lock object)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from omconnect.connectors.api import ConnectorError
from omconnect.runtime.file_lock import FileLock, LockHeldError, LockHolder
from omconnect.runtime.state.pipeline_lock import (
    SINK_DIRECTORY_LOCK,
    DirectoryClaims,
    PipelineLock,
    PipelineRunningError,
    pipeline_stopped,
)


def test_an_exclusive_lock_refuses_a_second_holder_and_names_the_first(tmp_path: Path) -> None:
    first = FileLock(tmp_path / "x.lock")
    assert first.acquire(LockHolder.this_process("omconnect run", "orders"))
    with pytest.raises(LockHeldError) as refused:
        FileLock(tmp_path / "x.lock").acquire()
    holder = refused.value.holder
    assert holder is not None
    assert (holder.pid, holder.host, holder.command, holder.pipeline) == (
        os.getpid(),
        socket.gethostname(),
        "omconnect run",
        "orders",
    )
    assert holder.describe().startswith(
        f"pid {os.getpid()} on host {socket.gethostname()}, 'omconnect run', since "
    )
    first.release()
    again = FileLock(tmp_path / "x.lock")
    assert again.acquire()
    again.release()


def test_shared_holders_coexist_and_exclude_an_exclusive_one(tmp_path: Path) -> None:
    a, b = FileLock(tmp_path / "x.lock"), FileLock(tmp_path / "x.lock")
    a.acquire(shared=True)
    b.acquire(shared=True)
    with pytest.raises(LockHeldError):
        FileLock(tmp_path / "x.lock").acquire()
    a.release()
    b.release()
    exclusive = FileLock(tmp_path / "x.lock")
    exclusive.acquire()
    with pytest.raises(LockHeldError):
        FileLock(tmp_path / "x.lock").acquire(shared=True)
    exclusive.release()


def test_a_pipeline_with_a_source_runs_once_at_a_time(state: str) -> None:
    running = PipelineLock(state, "orders")
    running.acquire("omconnect serve")
    with pytest.raises(PipelineRunningError, match="pipeline 'orders' is already running") as err:
        PipelineLock(state, "orders").acquire("omconnect run")
    assert f"pid {os.getpid()} on host" in str(err.value) and "'omconnect serve'" in str(err.value)
    other = PipelineLock(state, "invoices")
    other.acquire("omconnect run")  # another pipeline of the same state directory
    with (
        pytest.raises(PipelineRunningError, match="stop it before changing its offsets"),
        pipeline_stopped(state, "orders", "omconnect offsets reset"),
    ):
        pass
    running.release()
    with (
        pipeline_stopped(state, "orders", "omconnect offsets reset"),
        pytest.raises(PipelineRunningError),
    ):
        PipelineLock(state, "orders").acquire()
    other.release()


def test_members_of_a_sink_only_pipeline_share_its_lock(state: str) -> None:
    members = [PipelineLock(state, "lake"), PipelineLock(state, "lake")]
    for member in members:
        member.acquire(shared=True)
    with pytest.raises(PipelineRunningError, match=r"pipeline 'lake' is already running \(pid"):
        PipelineLock(state, "lake").acquire()
    for member in members:
        member.release()
    exclusive = PipelineLock(state, "lake")
    exclusive.acquire("omconnect offsets reset")
    with pytest.raises(PipelineRunningError, match="'omconnect offsets reset'"):
        PipelineLock(state, "lake").acquire(shared=True)
    exclusive.release()


def test_only_a_lock_that_can_end_under_its_run_is_checked(state: str) -> None:
    # An advisory lock ends with its database session; an flock only with its holder.
    lock = PipelineLock(state, "orders")
    lock.acquire("omconnect run")
    assert lock.can_be_lost == ("://" in state)
    lock.check()
    lock.release()


_HOLD_THE_LOCK = """
import sys
from omconnect.runtime.state import PipelineLock
lock = PipelineLock(sys.argv[1], "orders")
lock.acquire("omconnect run")
print("locked", flush=True)
sys.stdin.read()
"""


def test_a_killed_runner_leaves_no_lock_behind(state: str) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD_THE_LOCK, state],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "locked"
    with pytest.raises(PipelineRunningError, match=f"pid {holder.pid} on host"):
        PipelineLock(state, "orders").acquire()
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=10)
    holder.stdout.close()
    assert holder.stdin is not None
    holder.stdin.close()
    after = PipelineLock(state, "orders")
    after.acquire("omconnect run")  # at once: the lock died with its holder
    after.release()


def test_one_pipeline_writes_a_sink_directory(tmp_path: Path) -> None:
    first, second = DirectoryClaims("first", "omconnect run"), DirectoryClaims("second")
    assert first.claim(tmp_path)
    assert first.claim(tmp_path), "a run claims its directory again without refusal"
    assert (tmp_path / SINK_DIRECTORY_LOCK).exists()
    with pytest.raises(ConnectorError, match="pipeline 'first' already writes") as refused:
        second.claim(tmp_path)
    assert f"pid {os.getpid()}" in str(refused.value)
    with pytest.raises(ConnectorError, match="another run of pipeline 'first'"):
        DirectoryClaims("first").claim(tmp_path)
    first.release()
    assert second.claim(tmp_path)
    second.release()

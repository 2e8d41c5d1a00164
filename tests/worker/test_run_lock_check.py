"""A run asks whether its pipeline lock is still held only when the lock can end under it (an
advisory lock in a database): a file lock (a state directory) is never asked, so an idle run
makes no thread hop every ``LOCK_CHECK_SECONDS``; a lock that can be lost is asked, and its
loss stops the run. Counted on ``PipelineLock.check`` with the check period made tiny."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from omconnect.runtime.brokers.embedded import EmbeddedBroker
from omconnect.runtime.config.loader import load_pipeline
from omconnect.runtime.file_lock import FileLock
from omconnect.runtime.state import PipelineLock
from omconnect.runtime.state.pipeline_lock import PipelineLockLostError
from omconnect.runtime.worker import runner as runner_module
from omconnect.runtime.worker.runner import PipelineRunner

CHECK_SECONDS = 0.01


def _pipeline(tmp_path: Path) -> Path:
    path = tmp_path / "p.yaml"
    path.write_text(
        f"name: p\nbroker: embedded://{tmp_path / 'b'}\nstate: {tmp_path / 's'}\n"
        "topics: [t]\nformat: raw\nsink: {connector: toy-collect, name: run-lock-check}\n"
    )
    return path


def _count_checks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    checks = [0]
    check = PipelineLock.check

    def counted(self: PipelineLock) -> None:
        checks[0] += 1
        check(self)

    monkeypatch.setattr(PipelineLock, "check", counted)
    monkeypatch.setattr(runner_module, "LOCK_CHECK_SECONDS", CHECK_SECONDS)
    return checks


async def _topic(tmp_path: Path) -> None:
    broker = EmbeddedBroker(tmp_path / "b")
    await broker.create_topic("t")
    await broker.close()


def test_a_file_lock_is_never_checked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    checks = _count_checks(monkeypatch)

    async def body() -> None:
        await _topic(tmp_path)
        stop = asyncio.Event()
        run = asyncio.create_task(PipelineRunner(load_pipeline(_pipeline(tmp_path))).run(stop))
        await asyncio.sleep(50 * CHECK_SECONDS)  # 50 check periods
        assert not run.done()
        stop.set()
        await run

    asyncio.run(body())
    assert checks[0] == 0


def test_a_lock_that_can_be_lost_is_checked_and_its_loss_stops_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    checks = _count_checks(monkeypatch)
    asked = [0]

    def still_held(self: FileLock) -> bool:
        asked[0] += 1
        return asked[0] < 4  # lost at the fourth question

    # A file lock that behaves as an advisory lock whose database session ends.
    monkeypatch.setattr(FileLock, "can_be_lost", True)
    monkeypatch.setattr(FileLock, "still_held", still_held)

    async def body() -> None:
        await _topic(tmp_path)
        stop = asyncio.Event()
        with pytest.raises(PipelineLockLostError, match="pipeline 'p' lost its run lock"):
            await asyncio.wait_for(
                PipelineRunner(load_pipeline(_pipeline(tmp_path))).run(stop), timeout=30
            )

    asyncio.run(body())
    assert checks[0] == 4

"""``OmconnectRunTrigger``: a pipeline run that waits in Airflow's triggerer, not in a worker.

How it stays correct in Airflow 3's triggerer:

- The pipeline runs in a child process (``python -m omconnect.runtime.airflow.pipeline_run``)
  started from ``run()``, never on the triggerer's event loop: that loop is shared by every
  trigger of the triggerer, and a run does blocking and CPU-heavy work. The child starts in the
  pipeline's working directory (the triggerer's own is never changed) and has its own cores,
  signal handling and logging.
- ``serialize()`` holds only the pipeline path and the condition, no secret. The values of
  ``${airflow:...}`` / ``${airflow_var:...}`` references are fetched in ``run()`` with
  Airflow's asynchronous API (no sync call on the loop) and given to the child in its
  environment, not on its command line.
- Cancellation (the task cleared or marked, the deferral's timeout, the triggerer stopping or
  handing the trigger to another triggerer) raises ``CancelledError`` in ``run()``: the child
  gets SIGTERM, stops cleanly (positions are committed only for what was delivered), and is
  killed if it has not ended after ``STOP_GRACE_SECONDS``. A trigger started again elsewhere
  resumes from the committed positions: at-least-once, like any restarted run.
- Two copies of the trigger (a triggerer failover while the old one still runs) do not run
  the pipeline twice: the pipeline's lock refuses the second child, and the second trigger
  waits ``poll_interval`` and tries again until the first has stopped.
- One event per run: ``{"status": "success", "summary": {...}}``, ``{"status": "invalid",
  "message": ...}`` (a pipeline file that does not load: no retry helps) or ``{"status":
  "error", "message": ...}`` (the operator raises, Airflow retries); messages are redacted by
  the child.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from omconnect.runtime.airflow.pipeline_run import (
    EXIT_BUSY,
    EXIT_INVALID,
    PREFETCHED_ENV,
    RunRequest,
)
from omconnect.runtime.airflow.secrets import fetch_references, references_in

STOP_GRACE_SECONDS = 30.0
"""From SIGTERM to SIGKILL of a cancelled run's child."""
_STDERR_TAIL_CHARS = 2000


class OmconnectRunTrigger(BaseTrigger):
    """Runs ``request`` in a child process and fires when it ends (see the module's notes)."""

    def __init__(
        self,
        pipeline: str,
        working_dir: str | None = None,
        tasks: list[int] | None = None,
        sink: bool = True,
        until_records: int | None = None,
        poll_interval: float = 5.0,
    ) -> None:
        super().__init__()
        self.request = RunRequest(
            pipeline, working_dir, tuple(tasks) if tasks is not None else None, sink, until_records
        )
        self.poll_interval = poll_interval

    def serialize(self) -> tuple[str, dict[str, Any]]:
        request = self.request
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "pipeline": request.pipeline,
                "working_dir": request.working_dir,
                "tasks": list(request.tasks) if request.tasks is not None else None,
                "sink": request.sink,
                "until_records": request.until_records,
                "poll_interval": self.poll_interval,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        request = self.request
        directory = Path(request.working_dir) if request.working_dir else Path.cwd()
        pipeline = directory / request.pipeline
        try:
            references = await asyncio.to_thread(references_in, pipeline)
        except OSError as exc:
            message = f"cannot read {pipeline}: {exc.strerror or type(exc).__name__}"
            yield TriggerEvent({"status": "invalid", "message": message})
            return
        env = {**os.environ, PREFETCHED_ENV: json.dumps(await fetch_references(references))}
        while True:
            returncode, stdout, stderr = await self._run_child(directory, env)
            if returncode != EXIT_BUSY:
                break
            self.log.info("%s; trying again in %.0f s", stderr.strip(), self.poll_interval)
            await asyncio.sleep(self.poll_interval)
        if returncode == 0:
            summary = json.loads(stdout.strip().splitlines()[-1])
            yield TriggerEvent({"status": "success", "summary": summary})
        else:
            status = "invalid" if returncode == EXIT_INVALID else "error"
            message = stderr.strip()[-_STDERR_TAIL_CHARS:] or f"exit status {returncode}"
            yield TriggerEvent({"status": status, "message": message})

    async def _run_child(self, directory: Path, env: dict[str, str]) -> tuple[int, str, str]:
        request = self.request
        argv = [sys.executable, "-m", "omconnect.runtime.airflow.pipeline_run", request.pipeline]
        if request.tasks is not None:
            argv += [f"--task={task}" for task in request.tasks] or ["--sink-only"]
        if not request.sink and request.tasks != ():
            argv.append("--no-sink")
        if request.until_records is not None:
            argv.append(f"--until-records={request.until_records}")
        child = await asyncio.create_subprocess_exec(
            *argv,
            cwd=directory,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            stdout, stderr = await child.communicate()
        except asyncio.CancelledError:
            await _stop(child)
            raise
        return (
            child.returncode or 0,
            stdout.decode(errors="replace"),
            stderr.decode(errors="replace"),
        )


async def _stop(child: asyncio.subprocess.Process) -> None:
    """SIGTERM (a clean stop), then SIGKILL after ``STOP_GRACE_SECONDS``."""
    with contextlib.suppress(ProcessLookupError):
        child.send_signal(signal.SIGTERM)
    try:
        async with asyncio.timeout(STOP_GRACE_SECONDS):
            await child.wait()
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            child.kill()
        await child.wait()

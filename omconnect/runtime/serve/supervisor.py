"""The supervisor: every pipeline of a folder, kept running (or on schedule) on one loop.

Pipelines without ``schedule:`` run continuously and are restarted with backoff when they
fail; pipelines with ``schedule:`` run once at each cron tick. ``stop`` asks every pipeline to
finish what is in flight and waits for them; after ``shutdown_timeout`` it cancels the runs
still going (each resumes from its committed positions next time), and after
``CANCEL_TIMEOUT`` more it abandons what even a cancel could not end (a connector call that
never returns), logging what that was, so that a stop always ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

from omconnect.runtime.config.loader import LoadedPipeline
from omconnect.runtime.config.redaction import Redactor
from omconnect.runtime.serve.backoff import INITIAL_DELAY, MAX_DELAY, RestartBackoff
from omconnect.runtime.serve.clock import Clock, SystemClock
from omconnect.runtime.serve.continuous_loop import run_continuously
from omconnect.runtime.serve.managed_pipeline import ManagedPipeline
from omconnect.runtime.serve.schedule_loop import run_on_schedule
from omconnect.runtime.worker.task_thread import busy_task_threads

log = logging.getLogger("omconnect.serve")

SHUTDOWN_TIMEOUT = 10.0
CANCEL_TIMEOUT = 3.0


class Supervisor:
    """Runs ``pipelines`` until ``stop``; ``pipelines`` is keyed by pipeline name.

    Args:
        pipelines: loaded pipeline files with unique names (``load_pipeline_folder``).
        clock: the time schedules follow (default: the real UTC clock).
        backoff_initial: the first restart delay of a failed continuous pipeline, in seconds.
        backoff_max: the longest restart delay.
        shutdown_timeout: how long ``stop`` waits for runs to end cleanly before cancelling.
        cancel_timeout: how long ``stop`` then waits for cancelled runs before abandoning them.
    """

    def __init__(
        self,
        pipelines: Sequence[LoadedPipeline],
        clock: Clock | None = None,
        backoff_initial: float = INITIAL_DELAY,
        backoff_max: float = MAX_DELAY,
        shutdown_timeout: float = SHUTDOWN_TIMEOUT,
        cancel_timeout: float = CANCEL_TIMEOUT,
    ) -> None:
        self.pipelines = {loaded.config.name: ManagedPipeline(loaded) for loaded in pipelines}
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.shutdown_timeout = shutdown_timeout
        self.cancel_timeout = cancel_timeout
        self.redactor = Redactor(
            secret for loaded in pipelines for secret in loaded.redactor.secrets
        )
        """Masks the secrets of every pipeline (for logs and whole responses)."""
        self.started = False
        self.stopping = False
        self.abandoned: list[str] = []
        """What ``stop`` gave up waiting for (pipelines, and the calls their threads were in)."""
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def up(self) -> bool:
        """Started and not stopping."""
        return self.started and not self.stopping

    def get(self, name: str) -> ManagedPipeline | None:
        return self.pipelines.get(name)

    def start(self) -> None:
        """Start supervising every pipeline on the running event loop."""
        if self.started:
            return
        self.started = True
        for pipeline in self.pipelines.values():
            if pipeline.scheduled:
                work = run_on_schedule(pipeline, self.clock)
            else:
                work = run_continuously(
                    pipeline, RestartBackoff(self.backoff_initial, self.backoff_max)
                )
            task = asyncio.create_task(work, name=f"omconnect-serve-{pipeline.name}")
            task.add_done_callback(self._on_done)
            self._tasks.append(task)
        log.info(
            "supervising %d pipeline(s): %s",
            len(self.pipelines),
            ", ".join(self.pipelines) or "(none)",
        )

    async def stop(self) -> None:
        """Stop every pipeline and wait for them, within ``shutdown_timeout`` plus
        ``cancel_timeout`` seconds whatever the pipelines do; idempotent."""
        self.stopping = True
        for pipeline in self.pipelines.values():
            pipeline.shut_down()
        if not self._tasks:
            return
        _, pending = await asyncio.wait(self._tasks, timeout=self.shutdown_timeout)
        for task in pending:
            log.warning(
                "%s did not stop within %.0fs: cancelling its run (it resumes from its "
                "committed positions)",
                task.get_name(),
                self.shutdown_timeout,
            )
            task.cancel()
        if pending:
            _, stuck = await asyncio.wait(pending, timeout=self.cancel_timeout)
            self.abandoned.extend(task.get_name() for task in stuck)
            # A cancelled run may also have left a thread inside a call that never returns.
            self.abandoned.extend(busy_task_threads())
            if self.abandoned:
                log.error("abandoned after cancelling: %s", "; ".join(self.abandoned))
            for task in pending - stuck:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._tasks.clear()

    def _on_done(self, task: asyncio.Task[None]) -> None:
        # The loops catch pipeline failures themselves; anything escaping is a bug to report.
        if not task.cancelled() and task.exception() is not None:
            log.error(
                "%s stopped unexpectedly: %s",
                task.get_name(),
                self.redactor.redact(repr(task.exception())),
            )

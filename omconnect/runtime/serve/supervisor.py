"""The supervisor: every pipeline of a folder, kept running (or on schedule) on one loop.

Pipelines without ``schedule:`` run continuously and are restarted with backoff when they
fail; pipelines with ``schedule:`` run once at each cron tick. ``stop`` asks every pipeline to
finish what is in flight and waits for them; after ``shutdown_timeout`` it cancels the runs
still going (each resumes from its committed positions next time), and after
``CANCEL_TIMEOUT`` more it abandons what even a cancel could not end (a connector call that
never returns), logging what that was, so that a stop always ends.

``add``, ``replace`` and ``remove`` change the set of pipelines while the others run on
(the management API's create, update and delete): a new pipeline starts, a replaced one stops
cleanly and starts again with its new configuration, a removed one stops. ``apply_folder``
(and ``reload_folder``, which reads ``folder`` first) makes the supervised pipelines what a
re-read folder holds, through them (see ``folder_reload``); ``folder_watch`` calls it when a
file changes and on SIGHUP, the management API after it wrote a file.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from pathlib import Path

from omconnect.runtime.config.loader import LoadedPipeline
from omconnect.runtime.config.redaction import Redactor
from omconnect.runtime.serve.backoff import INITIAL_DELAY, MAX_DELAY, RestartBackoff
from omconnect.runtime.serve.clock import Clock, SystemClock
from omconnect.runtime.serve.continuous_loop import run_continuously
from omconnect.runtime.serve.folder_reload import FolderChanges, plan_folder_changes
from omconnect.runtime.serve.freshness import DEFAULT_POLICY, FreshnessPolicy
from omconnect.runtime.serve.managed_pipeline import ManagedPipeline
from omconnect.runtime.serve.pipeline_folder import FolderContents, read_pipeline_folder
from omconnect.runtime.serve.schedule_loop import run_on_schedule
from omconnect.runtime.serve.schedule_state import ScheduleProgress
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
        folder: the pipelines folder the pipelines were loaded from, where the management API
            writes pipeline files (None: pipelines cannot be created or changed over HTTP).
        freshness: when a running pipeline counts as idle or stalled (a pipeline's own
            ``freshness:`` overrides it).
    """

    def __init__(
        self,
        pipelines: Sequence[LoadedPipeline],
        clock: Clock | None = None,
        backoff_initial: float = INITIAL_DELAY,
        backoff_max: float = MAX_DELAY,
        shutdown_timeout: float = SHUTDOWN_TIMEOUT,
        cancel_timeout: float = CANCEL_TIMEOUT,
        folder: str | Path | None = None,
        freshness: FreshnessPolicy = DEFAULT_POLICY,
    ) -> None:
        self.freshness = freshness
        self.pipelines = {
            loaded.config.name: ManagedPipeline(loaded, freshness) for loaded in pipelines
        }
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.shutdown_timeout = shutdown_timeout
        self.cancel_timeout = cancel_timeout
        self.folder = Path(folder) if folder is not None else None
        self.redactor = Redactor(
            secret for loaded in pipelines for secret in loaded.redactor.secrets
        )
        """Masks the secrets of every pipeline (for logs and whole responses)."""
        self.started = False
        self.stopping = False
        self.abandoned: list[str] = []
        """What ``stop`` gave up waiting for (pipelines, and the calls their threads were in)."""
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self.config_problems: dict[str, str] = {}
        """Pipeline name -> the problems of its file, which no longer validates (the
        pipeline runs on with the configuration it had); set by ``apply_folder``."""
        self._applying = asyncio.Lock()

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
            self._supervise(pipeline)
        log.info(
            "supervising %d pipeline(s): %s",
            len(self.pipelines),
            ", ".join(self.pipelines) or "(none)",
        )

    def add(self, loaded: LoadedPipeline) -> ManagedPipeline:
        """Supervise a new pipeline (started at once when the supervisor runs).

        Raises:
            ValueError: a pipeline of that name is supervised already.
        """
        name = loaded.config.name
        if name in self.pipelines:
            raise ValueError(f"pipeline {name!r} is supervised already")
        for secret in loaded.redactor.secrets:
            self.redactor.add(secret)
        pipeline = self.pipelines[name] = ManagedPipeline(loaded, self.freshness)
        if self.started and not self.stopping:
            self._supervise(pipeline)
        log.info("pipeline %s: added (%s)", name, loaded.path)
        return pipeline

    async def replace(self, loaded: LoadedPipeline) -> ManagedPipeline:
        """Stop the pipeline of ``loaded``'s name (if any) and supervise ``loaded`` instead.

        A paused or stopped pipeline stays paused or stopped with its new configuration.
        """
        old = self.pipelines.get(loaded.config.name)
        if old is not None:
            await self.remove(old.name)
        pipeline = self.add(loaded)
        if old is not None and old.paused:
            if old.stopped:
                pipeline.stop()
            else:
                pipeline.pause()
        return pipeline

    async def remove(self, name: str) -> bool:
        """Stop pipeline ``name`` cleanly (as ``stop`` does, within the same timeouts) and
        forget it; its stored offsets are kept. Whether it was supervised."""
        pipeline = self.pipelines.pop(name, None)
        if pipeline is None:
            return False
        pipeline.shut_down()
        task = self._tasks.pop(name, None)
        if task is not None:
            await self._end({task})
        log.info("pipeline %s: removed", name)
        return True

    async def reload_folder(self) -> FolderChanges:
        """Re-read ``folder`` and ``apply_folder`` what it holds.

        Raises:
            PipelineFolderError: ``folder`` cannot be read (nothing changes).
            ValueError: the supervisor was given no ``folder``.
        """
        if self.folder is None:
            raise ValueError("the supervisor has no pipelines folder to reload")
        contents = await asyncio.to_thread(read_pipeline_folder, self.folder)
        return await self.apply_folder(contents)

    async def apply_folder(self, contents: FolderContents) -> FolderChanges:
        """Make the supervised pipelines what ``contents`` (a re-read folder) holds: start
        the new ones, restart the changed ones with their new configuration, stop the ones
        whose file is gone; the others run on untouched. A pipeline whose file no longer
        validates runs on as it was, its problems logged and in ``config_problems``.
        Changes are applied one folder at a time, in the order the calls came."""
        async with self._applying:
            current = {name: managed.loaded for name, managed in self.pipelines.items()}
            changes = plan_folder_changes(current, contents)
            for name in changes.removed:
                await self.remove(name)
            for loaded in changes.changed:
                await self.replace(loaded)
            for loaded in changes.added:
                self.add(loaded)
            for name, problems in changes.kept.items():
                if self.config_problems.get(name) != problems:
                    log.error(
                        "pipeline %s: its file no longer validates; it runs on as it was:\n%s",
                        name,
                        problems,
                    )
            for problems in changes.refused.values():
                log.error("not started: %s", problems)
            self.config_problems = changes.kept
            return changes

    def _supervise(self, pipeline: ManagedPipeline) -> None:
        if pipeline.scheduled:
            work = run_on_schedule(pipeline, self.clock, ScheduleProgress.of(pipeline.loaded))
        else:
            work = run_continuously(
                pipeline, RestartBackoff(self.backoff_initial, self.backoff_max)
            )
        task = asyncio.create_task(work, name=f"omconnect-serve-{pipeline.name}")
        task.add_done_callback(self._on_done)
        self._tasks[pipeline.name] = task

    async def stop(self) -> None:
        """Stop every pipeline and wait for them, within ``shutdown_timeout`` plus
        ``cancel_timeout`` seconds whatever the pipelines do; idempotent."""
        self.stopping = True
        for pipeline in self.pipelines.values():
            pipeline.shut_down()
        tasks = set(self._tasks.values())
        self._tasks.clear()
        if tasks:
            await self._end(tasks)

    async def _end(self, tasks: set[asyncio.Task[None]]) -> None:
        """Wait for ``tasks`` (told to stop), cancelling and then abandoning stragglers."""
        _, pending = await asyncio.wait(tasks, timeout=self.shutdown_timeout)
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

    def _on_done(self, task: asyncio.Task[None]) -> None:
        # The loops catch pipeline failures themselves; anything escaping is a bug to report.
        if not task.cancelled() and task.exception() is not None:
            log.error(
                "%s stopped unexpectedly: %s",
                task.get_name(),
                self.redactor.redact(repr(task.exception())),
            )

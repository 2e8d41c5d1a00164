"""One pipeline under ``serve``'s supervision: its runs, its state and the commands it takes.

The HTTP API calls ``pause``, ``stop``, ``resume`` and ``restart`` (also "run now") on the event
loop; each stops the current run through its stop event (the runner finishes what is in flight
and commits) and wakes the pipeline's loop (``continuous_loop`` or ``schedule_loop``), which
decides what runs next. Nothing here blocks the loop.

``stop`` is ``pause`` that shows as STOPPED once the run has ended (Kafka Connect's state in
which offsets may change); the loops only see ``paused``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from datetime import datetime

from omconnect.runtime.config.loader import LoadedPipeline
from omconnect.runtime.config.problems import PipelineConfigError
from omconnect.runtime.serve.freshness import DEFAULT_POLICY, FreshnessPolicy
from omconnect.runtime.serve.pipeline_state import (
    PipelineCounters,
    PipelineState,
    PipelineStatus,
    RunRecord,
    RunResult,
    utc_now,
)
from omconnect.runtime.state import PipelineRunningError
from omconnect.runtime.worker.runner import PipelineRunner

log = logging.getLogger("omconnect.serve")

RECENT_RUNS = 10


class ManagedPipeline:
    """A loaded pipeline, the runner of its current run, and what was asked of it."""

    def __init__(self, loaded: LoadedPipeline, freshness: FreshnessPolicy = DEFAULT_POLICY) -> None:
        """``freshness``: the worker's thresholds; the pipeline's ``freshness:`` overrides
        them."""
        self.loaded = loaded
        self.name = loaded.config.name
        own = loaded.config.freshness
        self.freshness = freshness.overridden(own.stalled_after, own.idle_after)
        self._state = PipelineState.UNASSIGNED
        self.error: str | None = None
        self.next_run: datetime | None = None
        self.restarts = 0
        self.skipped_ticks = 0
        self.paused = False
        self.stopped = False
        """Paused by ``stop``: the state shows STOPPED instead of PAUSED."""
        self.restart_requested = False
        self.shutting_down = False
        self.wake = asyncio.Event()
        """Set by every command; the pipeline's loop waits on it between runs."""
        self._totals = PipelineCounters()
        self._runs: deque[RunRecord] = deque(maxlen=RECENT_RUNS)
        self._runner: PipelineRunner | None = None
        self._run_stop: asyncio.Event | None = None

    @property
    def scheduled(self) -> bool:
        return self.loaded.config.schedule is not None

    @property
    def running(self) -> bool:
        return self._runner is not None

    @property
    def state(self) -> PipelineState:
        """The state the loops set, PAUSED shown as STOPPED after ``stop``."""
        if self.stopped and self._state is PipelineState.PAUSED:
            return PipelineState.STOPPED
        return self._state

    @state.setter
    def state(self, state: PipelineState) -> None:
        self._state = state

    def pause(self) -> None:
        """Stop the current run cleanly; start nothing until ``resume``."""
        if not self.paused or self.stopped:
            log.info("pipeline %s: pausing", self.name)
        self.paused, self.stopped = True, False
        self._interrupt()

    def stop(self) -> None:
        """Like ``pause``, but the pipeline shows STOPPED once its run has ended, and its
        offsets may then be changed."""
        if not self.stopped:
            log.info("pipeline %s: stopping", self.name)
        self.paused, self.stopped = True, True
        self._interrupt()

    def resume(self) -> None:
        """Undo ``pause`` or ``stop``: a continuous pipeline starts again; a scheduled one
        awaits its tick."""
        if self.paused:
            log.info("pipeline %s: resuming", self.name)
        self.paused, self.stopped = False, False
        self.wake.set()

    def restart(self) -> None:
        """Stop the current run cleanly (if any) and start a new one at once.

        A scheduled pipeline runs now, then waits for its next tick. Refused by the caller
        for a paused pipeline.
        """
        log.info("pipeline %s: restart requested", self.name)
        self.restart_requested = True
        self._interrupt()

    def shut_down(self) -> None:
        """The worker is stopping: end the current run cleanly and start nothing more."""
        self.shutting_down = True
        self._interrupt()

    def _interrupt(self) -> None:
        if self._run_stop is not None:
            self._run_stop.set()
        self.wake.set()

    async def run(self, once: bool) -> RunRecord:
        """One run of the pipeline until it ends, fails, or is interrupted by a command.

        Never raises for a failing pipeline: the error, redacted, is in the returned record
        and in ``error``; the state is RUNNING while it runs and FAILED after a failure (the
        caller sets the state after any other outcome).
        """
        stop = asyncio.Event()
        if self.shutting_down or self.paused:
            stop.set()  # a command came before this run could hear it: it ends at once
        runner = PipelineRunner(self.loaded, once=once, command="omconnect serve")
        record = RunRecord(started=utc_now())
        self._runs.append(record)
        self._runner, self._run_stop = runner, stop
        self.state, self.error, self.next_run = PipelineState.RUNNING, None, None
        started = time.monotonic()
        log.info("pipeline %s: run started (%s)", self.name, "once" if once else "continuous")
        try:
            await runner.run(stop)
            record.result = RunResult.STOPPED if stop.is_set() else RunResult.SUCCEEDED
        except Exception as exc:  # a failing pipeline must never take the worker down
            record.result = RunResult.FAILED
            record.error = self.error = self.describe_error(exc)
            self.state = PipelineState.FAILED
            log.error("pipeline %s: run failed: %s", self.name, record.error)
            log.debug("pipeline %s: traceback", self.name, exc_info=True)
        finally:
            self._totals = self._totals.plus(runner.metrics)
            record.records_written = runner.metrics.rows_written
            record.ended = utc_now()
            self._runner, self._run_stop = None, None
        log.info(
            "pipeline %s: run %s after %.1fs: %s",
            self.name,
            record.result.value,
            time.monotonic() - started,
            runner.metrics.summary(),
        )
        return record

    def describe_error(self, exc: BaseException) -> str:
        """``Type: message`` of the root cause of ``exc``, with this pipeline's secrets masked.

        Task groups wrap failures in exception groups, whose own text says nothing; the first
        leaf exception is what went wrong. A ``PipelineConfigError`` is its own message
        (``FILE:LINE: KEY: PROBLEM`` lines), and so is a ``PipelineRunningError`` (another
        process runs the pipeline; the next attempt comes after the restart backoff).
        """
        while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
            exc = exc.exceptions[0]
        text = str(exc)
        if isinstance(exc, PipelineConfigError | PipelineRunningError):
            return self.loaded.redactor.redact(text)
        message = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
        return self.loaded.redactor.redact(message)

    def status(self) -> PipelineStatus:
        """A snapshot, with the live counters of the run in progress included."""
        cfg = self.loaded.config
        live = self._runner.metrics if self._runner is not None else None
        return PipelineStatus(
            name=self.name,
            state=self.state,
            mode="scheduled" if self.scheduled else "continuous",
            schedule=cfg.schedule.describe() if cfg.schedule is not None else None,
            description=self.loaded.redactor.redact(cfg.description) if cfg.description else None,
            topic=cfg.effective_topic,
            error=self.error,
            next_run=self.next_run,
            restarts=self.restarts,
            skipped_ticks=self.skipped_ticks,
            counters=self._totals.plus(live),
            runs=list(self._runs),
            freshness_policy=self.freshness,
        )

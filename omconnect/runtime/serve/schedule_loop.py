"""Running a ``schedule:`` pipeline at each tick of its cron expression (UTC).

Each tick runs the pipeline once (``PipelineRunner(once=True)``: deliver what is there now,
commit, end). Runs of one pipeline never overlap: the loop waits for a run to end before it
looks for the next tick, so ticks that pass while a run is still going are skipped, counted
and logged. Between runs the state is SCHEDULED, or FAILED (with the error) when the last run
failed. Restart runs the pipeline at once; pause stops a run in progress and skips ticks until
resume.
"""

from __future__ import annotations

import logging
from datetime import datetime

from omconnect.runtime.config.cron import CronSchedule, parse_cron
from omconnect.runtime.serve.clock import Clock
from omconnect.runtime.serve.managed_pipeline import ManagedPipeline
from omconnect.runtime.serve.pipeline_state import PipelineState, RunResult

log = logging.getLogger("omconnect.serve")


async def run_on_schedule(pipeline: ManagedPipeline, clock: Clock) -> None:
    """Supervise a scheduled ``pipeline`` until ``pipeline.shut_down()``."""
    expression = pipeline.loaded.config.schedule
    assert expression is not None, "only pipelines with schedule: run on a schedule"
    cron = parse_cron(expression)
    while not pipeline.shutting_down:
        pipeline.wake.clear()
        if pipeline.paused:
            pipeline.restart_requested = False
            pipeline.state, pipeline.next_run = PipelineState.PAUSED, None
            await pipeline.wake.wait()
            continue
        if pipeline.restart_requested:
            pipeline.restart_requested = False
            pipeline.restarts += 1
            await _run_once(pipeline, cron, clock)
            continue
        tick = cron.next_after(clock.now())
        pipeline.next_run = tick
        if pipeline.state is not PipelineState.FAILED:
            pipeline.state = PipelineState.SCHEDULED
        if tick is None:
            log.warning("pipeline %s: schedule %r never fires again", pipeline.name, expression)
            await pipeline.wake.wait()
            continue
        if await clock.sleep_until(tick, pipeline.wake):
            await _run_once(pipeline, cron, clock)
    pipeline.state, pipeline.next_run = PipelineState.UNASSIGNED, None


async def _run_once(pipeline: ManagedPipeline, cron: CronSchedule, clock: Clock) -> None:
    started = clock.now()
    record = await pipeline.run(once=True)
    if record.result is not RunResult.FAILED:
        pipeline.state = PipelineState.SCHEDULED
    skipped = _ticks_between(cron, started, clock.now())
    if skipped:
        pipeline.skipped_ticks += skipped
        log.warning(
            "pipeline %s: skipped %d tick(s) of %r: the previous run was still running",
            pipeline.name,
            skipped,
            cron.expression,
        )


def _ticks_between(cron: CronSchedule, start: datetime, end: datetime) -> int:
    """How many ticks fell strictly after ``start`` and at or before ``end``."""
    count = 0
    tick = cron.next_after(start)
    while tick is not None and tick <= end:
        count += 1
        tick = cron.next_after(tick)
    return count

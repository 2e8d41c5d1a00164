"""Running a ``schedule:`` pipeline at each tick of its cron expression.

Each tick runs the pipeline once (``PipelineRunner(once=True)``: deliver what is there now,
commit, end). The cron fields are wall-clock times in ``schedule.timezone`` (UTC by default);
croniter decides the daylight-saving corners.

Runs never overlap, as Airflow's ``max_active_runs=1``: one run at a time, and ticks that pass
while a run goes on, or while serve was down, are *missed* ticks, handled when the run ends
(or when serve starts again, from the progress kept in the pipeline's state, a directory or
a ``postgresql://`` one: ``schedule_state``):

* ``catchup: false`` (the default): one run for all of them, at once; the others are counted
  in ``skipped_ticks`` and logged;
* ``catchup: true``: one run per missed tick, oldest first, at most the last
  ``MAX_CATCHUP_RUNS`` (the older ones are skipped and logged).

``jitter`` delays each tick's run by a random time up to it. Between runs the state is
SCHEDULED, or FAILED (with the error) when the last run failed. Restart runs the pipeline at
once, outside the schedule; pause stops a run in progress and skips the ticks until resume.
"""

from __future__ import annotations

import asyncio
import logging
import random
from datetime import datetime, timedelta

from omconnect.runtime.config.cron import parse_cron
from omconnect.runtime.config.model import ScheduleConfig
from omconnect.runtime.serve.clock import Clock
from omconnect.runtime.serve.managed_pipeline import ManagedPipeline
from omconnect.runtime.serve.pipeline_state import PipelineState, RunResult
from omconnect.runtime.serve.schedule_state import ScheduleProgress
from omconnect.runtime.worker.log_context import set_log_context

log = logging.getLogger("omconnect.serve")

MAX_CATCHUP_RUNS = 100
"""The most missed ticks ``catchup: true`` runs; older ones are skipped."""
MAX_COUNTED_TICKS = 10_000
"""Missed ticks are counted back this far at most (a minutely schedule down for a week)."""


async def run_on_schedule(
    pipeline: ManagedPipeline,
    clock: Clock,
    progress: ScheduleProgress | None = None,
    rng: random.Random | None = None,
) -> None:
    """Supervise a scheduled ``pipeline`` until ``pipeline.shut_down()``.

    Args:
        pipeline: a pipeline whose config has a ``schedule:``.
        clock: the time ticks are waited for.
        progress: where the moment up to which ticks were handled is kept (in memory if None).
        rng: draws the jitter (a fresh ``random.Random`` if None).
    """
    schedule = pipeline.loaded.config.schedule
    assert schedule is not None, "only pipelines with schedule: run on a schedule"
    progress = progress if progress is not None else ScheduleProgress(None)
    rng = rng if rng is not None else random.Random()
    set_log_context(pipeline=pipeline.name)
    if not pipeline.paused:  # while its progress is read (a database round trip, maybe)
        pipeline.state = PipelineState.SCHEDULED
        pipeline.next_run = parse_cron(schedule.cron).next_after(clock.now(), schedule.zone)
    # The record may be a database round trip away: never on the event loop's thread.
    since = await asyncio.to_thread(progress.caught_up_to)
    if since is None:  # served for the first time: its first tick is the next one
        since = clock.now()
        await asyncio.to_thread(progress.advance, since)
    while not pipeline.shutting_down:
        pipeline.wake.clear()
        if pipeline.paused:
            pipeline.restart_requested = False
            pipeline.state, pipeline.next_run = PipelineState.PAUSED, None
            await pipeline.wake.wait()
            if not pipeline.paused:  # resumed: the ticks that passed while paused are skipped
                since = max(since, clock.now())
                await asyncio.to_thread(progress.advance, since)
            continue
        if pipeline.restart_requested:
            pipeline.restart_requested = False
            pipeline.restarts += 1
            await _run(pipeline)
            continue
        tick = _due_tick(pipeline, schedule, since, clock.now())
        if tick is not None:
            if schedule.jitter and not await _jitter(pipeline, schedule, clock, rng):
                continue  # a command came first: decide again (the tick is still due)
            since = tick
            await asyncio.to_thread(progress.advance, tick)
            await _run(pipeline)
            continue
        await _wait_for_next_tick(pipeline, schedule, clock)
    pipeline.state, pipeline.next_run = PipelineState.UNASSIGNED, None


def _due_tick(
    pipeline: ManagedPipeline, schedule: ScheduleConfig, since: datetime, now: datetime
) -> datetime | None:
    """The tick to run now, if ticks were missed after ``since``; counts and logs the ticks
    skipped for it."""
    cron = parse_cron(schedule.cron)
    missed = cron.latest_ticks(since, now, MAX_COUNTED_TICKS, schedule.zone)
    if not missed:
        return None
    runs = missed[-MAX_CATCHUP_RUNS:] if schedule.catchup else missed[-1:]
    skipped = len(missed) - len(runs)
    if skipped:
        pipeline.skipped_ticks += skipped
        log.warning(
            "pipeline %s: skipped %d tick(s) of %r from %s to %s (a run was still going, or "
            "serve was down): %s",
            pipeline.name,
            skipped,
            schedule.describe(),
            missed[0].isoformat(),
            missed[-len(runs) - 1].isoformat(),
            f"catchup runs the last {MAX_CATCHUP_RUNS}"
            if schedule.catchup
            else "one run for them all (catchup: false)",
        )
    if len(runs) > 1:
        log.info(
            "pipeline %s: catching up %d missed tick(s), oldest first",
            pipeline.name,
            len(runs),
        )
    return runs[0]


async def _jitter(
    pipeline: ManagedPipeline, schedule: ScheduleConfig, clock: Clock, rng: random.Random
) -> bool:
    """Wait a random time up to ``schedule.jitter``; False if a command woke the pipeline."""
    delay = rng.uniform(0.0, schedule.jitter)
    pipeline.next_run = clock.now() + timedelta(seconds=delay)
    return await clock.sleep_until(pipeline.next_run, pipeline.wake)


async def _wait_for_next_tick(
    pipeline: ManagedPipeline, schedule: ScheduleConfig, clock: Clock
) -> None:
    tick = parse_cron(schedule.cron).next_after(clock.now(), schedule.zone)
    pipeline.next_run = tick
    if pipeline.state is not PipelineState.FAILED:
        pipeline.state = PipelineState.SCHEDULED
    if tick is None:
        log.warning(
            "pipeline %s: schedule %r never fires again", pipeline.name, schedule.describe()
        )
        await pipeline.wake.wait()
        return
    await clock.sleep_until(tick, pipeline.wake)


async def _run(pipeline: ManagedPipeline) -> None:
    record = await pipeline.run(once=True)
    if record.result is not RunResult.FAILED:
        pipeline.state = PipelineState.SCHEDULED

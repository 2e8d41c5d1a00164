"""Keeping a pipeline without ``schedule:`` running until the worker stops.

The pipeline runs continuously (``PipelineRunner(once=False)``). When a run fails the state is
FAILED, with the redacted error, until the restart backoff (1 s doubling to 60 s) has passed;
then it runs again. Pause stops the run cleanly and waits for resume; restart stops it cleanly
and starts a new one at once, with the backoff reset.
"""

from __future__ import annotations

import logging

from omconnect.runtime.serve.backoff import RestartBackoff
from omconnect.runtime.serve.managed_pipeline import ManagedPipeline
from omconnect.runtime.serve.pipeline_state import PipelineState, RunResult
from omconnect.runtime.worker.log_context import set_log_context
from omconnect.runtime.worker.waiting import wait_for_event

log = logging.getLogger("omconnect.serve")


async def run_continuously(pipeline: ManagedPipeline, backoff: RestartBackoff) -> None:
    """Supervise ``pipeline`` until ``pipeline.shut_down()``; returns when its run has ended."""
    set_log_context(pipeline=pipeline.name)
    while not pipeline.shutting_down:
        if pipeline.paused:
            pipeline.restart_requested = False
            pipeline.state = PipelineState.PAUSED
            await _wait_for_command(pipeline)
            continue
        pipeline.restart_requested = False
        pipeline.wake.clear()
        record = await pipeline.run(once=False)
        if pipeline.shutting_down:
            break
        if pipeline.restart_requested or pipeline.paused:
            if pipeline.restart_requested:
                pipeline.restarts += 1
                backoff.reset()
            continue
        # The run ended by itself: it failed, or its source had nothing more to do.
        seconds = (record.ended or record.started) - record.started
        delay = backoff.after_failure(seconds.total_seconds())
        if record.result is not RunResult.FAILED:
            pipeline.state = PipelineState.UNASSIGNED
        log.warning(
            "pipeline %s: run ended (%s); starting it again in %.1fs",
            pipeline.name,
            record.result.value,
            delay,
        )
        pipeline.wake.clear()
        if not await wait_for_event(pipeline.wake, delay):
            pipeline.restarts += 1
        elif pipeline.restart_requested:
            pipeline.restarts += 1
            backoff.reset()
    pipeline.state = PipelineState.UNASSIGNED


async def _wait_for_command(pipeline: ManagedPipeline) -> None:
    pipeline.wake.clear()
    await pipeline.wake.wait()

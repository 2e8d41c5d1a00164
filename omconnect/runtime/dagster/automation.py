"""The job, schedule and new-data sensor of one pipeline's assets.

The job materialises the pipeline's asset (for a fan-out: every source task's partition of its
topic; the sink follows by declarative automation). The schedule fires on the pipeline's
``schedule:`` cron in its time zone, as ``omconnect serve`` does. The sensor asks
``new_data_marker`` whether there is something to move and requests a run when its marker
changed (one run per change: the marker is the run key), or, for a source only a run can read,
whenever no run of the job is queued or in progress.
"""

import asyncio
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import dagster as dg

from omconnect.runtime.config.cron import parse_cron
from omconnect.runtime.config.loader import LoadedPipeline
from omconnect.runtime.dagster.new_data import CONTINUOUS, new_data_marker
from omconnect.runtime.dagster.resource import RESOURCE_KEY, OmconnectResource

if TYPE_CHECKING:  # what define_asset_job returns; Dagster does not export its name
    from dagster._core.definitions.unresolved_asset_job_definition import (
        UnresolvedAssetJobDefinition as AssetJob,
    )

SENSOR_INTERVAL_SECONDS = 30

_ACTIVE = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def pipeline_job(name: str, keys: Sequence[dg.AssetKey]) -> "AssetJob":
    """The job that materialises ``keys`` (with their checks; partitioned as they are)."""
    return dg.define_asset_job(name, selection=dg.AssetSelection.assets(*keys))


def pipeline_schedule(
    loaded: LoadedPipeline,
    job: "AssetJob",
    partition_keys: Sequence[str] | None = None,
    running: bool = True,
) -> dg.ScheduleDefinition:
    """A run of ``job`` at every tick of the pipeline's ``schedule:`` in its time zone; for a
    fan-out, one run per partition (source task) at each tick. Dagster has no ``jitter``;
    runs of a job never overlap when its run queue allows one at a time."""
    schedule = loaded.config.schedule
    assert schedule is not None, "only a pipeline with schedule: has a schedule"

    @dg.schedule(
        name=f"{job.name}_schedule",
        cron_schedule=parse_cron(schedule.cron).fields,
        execution_timezone=schedule.timezone,
        job=job,
        default_status=dg.DefaultScheduleStatus.RUNNING
        if running
        else dg.DefaultScheduleStatus.STOPPED,
        description=f"Pipeline {loaded.config.name}'s schedule: {schedule.describe()!r}.",
    )
    def _tick(context: dg.ScheduleEvaluationContext) -> list[dg.RunRequest]:
        tick = context.scheduled_execution_time.isoformat()
        if partition_keys is None:
            return [dg.RunRequest(run_key=tick)]
        return [dg.RunRequest(run_key=f"{tick}/{key}", partition_key=key) for key in partition_keys]

    return _tick


def pipeline_sensor(
    path: str,
    loaded: LoadedPipeline,
    job: "AssetJob",
    partition_keys: Sequence[str] | None = None,
    running: bool = True,
    minimum_interval_seconds: int = SENSOR_INTERVAL_SECONDS,
) -> dg.SensorDefinition:
    """A sensor that requests a run of ``job`` when the pipeline at ``path`` has new data
    (see ``new_data``); its cursor is the marker of the last run it requested."""

    @dg.sensor(
        name=f"{job.name}_new_data",
        job=job,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING
        if running
        else dg.DefaultSensorStatus.STOPPED,
        required_resource_keys={RESOURCE_KEY},
        description=f"Runs pipeline {loaded.config.name} when it has new data to move.",
    )
    def _sense(context: dg.SensorEvaluationContext) -> Iterator[dg.RunRequest | dg.SkipReason]:
        resource: OmconnectResource = getattr(context.resources, RESOURCE_KEY)
        with resource.working_directory():
            marker = asyncio.run(new_data_marker(resource.load(path)))
        if marker is None:
            yield dg.SkipReason("nothing new to move")
            return
        if marker == CONTINUOUS:
            if _job_active(context, job.name):
                yield dg.SkipReason(f"a run of {job.name} is in progress")
                return
            run_key = None
        elif marker == context.cursor:
            yield dg.SkipReason("no new data since the last run requested")
            return
        else:
            run_key = marker
            context.update_cursor(marker)
        keys: Sequence[str | None] = partition_keys or [None]
        for key in keys:
            yield dg.RunRequest(
                run_key=f"{run_key}/{key}" if run_key and key else run_key, partition_key=key
            )

    return _sense


def _job_active(context: dg.SensorEvaluationContext, job_name: str) -> bool:
    try:
        instance = context.instance
    except dg.DagsterInvariantViolationError:  # a test context without an instance
        return False
    runs = instance.get_runs(filters=dg.RunsFilter(job_name=job_name, statuses=_ACTIVE), limit=1)
    return bool(runs)

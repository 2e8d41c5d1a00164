"""``dags_from_folder``: every scheduled pipeline file of a folder as an Airflow DAG.

In a file of Airflow's DAG folder::

    from omconnect.runtime.airflow import dags_from_folder

    dags_from_folder("/srv/project/pipelines")

Each pipeline with a ``schedule:`` becomes a DAG named after the pipeline (``name:``) on that
cron schedule. A source that splits into several tasks (tables, files; the pipeline's
``tasks:``) becomes one mapped ``source`` task per split (``tasks=[i], sink=False``: each
publishes its split with its own positions, side by side on any executor), then one ``sink``
task (``tasks=[]``) that writes what they published; a source of one task is one ``run``
task. The DAGs register themselves with Airflow as they are made and are also returned.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import DAG
from airflow.timetables.trigger import CronTriggerTimetable

from omconnect.runtime.airflow.operators import OmconnectRunOperator
from omconnect.runtime.airflow.pipeline_run import working_directory
from omconnect.runtime.airflow.secrets import register_airflow_resolvers
from omconnect.runtime.config.cron import parse_cron
from omconnect.runtime.config.loader import LoadedPipeline, load_pipeline, pipeline_files
from omconnect.runtime.config.problems import PipelineConfigError
from omconnect.runtime.worker.runner import source_task_count

log = logging.getLogger("omconnect.airflow")

DEFAULT_ARGS: dict[str, Any] = {
    "owner": "omconnect",
    "retries": 3,
    "retry_delay": timedelta(minutes=1),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=30),
}
"""Every task's defaults: a failed run is retried with a growing delay (it resumes from its
committed positions, so a retry never loses or repeats what was delivered)."""
START_DATE = datetime(2024, 1, 1, tzinfo=UTC)
"""In the past, with ``catchup=False``: the first run is the next cron tick."""


def dags_from_folder(
    folder: str | Path,
    working_dir: str | Path | None = None,
    default_args: Mapping[str, Any] | None = None,
    tags: list[str] | None = None,
    **dag_kwargs: Any,
) -> dict[str, DAG]:
    """One DAG per pipeline file in ``folder`` that has a ``schedule:``, by DAG id.

    Args:
        folder: The pipelines folder (``*.yaml``/``*.yml`` directly inside it).
        working_dir: Where the pipelines' relative paths start (default: ``folder``'s parent,
            the project root that ``omconnect run pipelines/x.yaml`` is started in).
        default_args: Merged over ``DEFAULT_ARGS`` for every task.
        tags: Added to each DAG's tags (``omconnect`` and its connectors' names).
        dag_kwargs: Passed to every ``DAG`` (they override ``catchup=False``,
            ``max_active_runs=1`` and the start date).

    A file that does not load is logged (redacted) and left out, so that one broken file
    does not take the others' DAGs down with it; ``omconnect validate`` says what is wrong.
    """
    folder = Path(folder).absolute()
    directory = Path(working_dir).absolute() if working_dir is not None else folder.parent
    register_airflow_resolvers()
    dags: dict[str, DAG] = {}
    args = {**DEFAULT_ARGS, **(default_args or {})}
    # Relative paths in the files (a source's glob, counted below) start where runs start.
    with working_directory(str(directory)):
        for path in pipeline_files(folder):
            try:
                loaded = load_pipeline(path)
            except PipelineConfigError as exc:
                log.error("omconnect: %s left out of the DAGs: %s", path.name, exc)
                continue
            if loaded.config.schedule is not None:
                dag = pipeline_dag(loaded, directory, args, tags or [], dag_kwargs)
                dags[loaded.config.name] = dag
    return dags


def pipeline_dag(
    loaded: LoadedPipeline,
    working_dir: Path,
    default_args: dict[str, Any],
    tags: list[str],
    dag_kwargs: Mapping[str, Any],
) -> DAG:
    """The DAG of one loaded pipeline (see the module's notes)."""
    config = loaded.config
    pipeline = str(loaded.path.absolute())
    connectors = [block.registration.name for block in (loaded.source, loaded.sink) if block]
    schedule = config.schedule
    assert schedule is not None, "only a pipeline with schedule: becomes a DAG"
    settings: dict[str, Any] = {
        # Airflow has no jitter; max_active_runs=1 is serve's no-overlap rule.
        "schedule": CronTriggerTimetable(
            parse_cron(schedule.cron).fields, timezone=schedule.timezone
        ),
        "start_date": START_DATE,
        "catchup": schedule.catchup,
        "max_active_runs": 1,
        "default_args": default_args,
        "tags": sorted({"omconnect", *connectors, *tags}),
        "doc_md": f"omconnect pipeline `{loaded.path.name}` (`omconnect run {pipeline} --once`)",
        **dag_kwargs,
    }
    with DAG(dag_id=config.name, **settings) as dag:
        count = _task_count(loaded)
        if count <= 1 or config.without_broker:  # without a broker: one process
            OmconnectRunOperator(task_id="run", pipeline=pipeline, working_dir=str(working_dir))
        else:
            sources = OmconnectRunOperator.partial(
                task_id="source", pipeline=pipeline, working_dir=str(working_dir), sink=False
            ).expand(tasks=[[task] for task in range(count)])
            if loaded.sink is not None:
                sources >> OmconnectRunOperator(
                    task_id="sink", pipeline=pipeline, working_dir=str(working_dir), tasks=[]
                )
    return dag


def _task_count(loaded: LoadedPipeline) -> int:
    """How many tasks the source splits into, counted when the DAG is made (a source may ask
    its system: the tables a pattern matches); 1 when it cannot tell, so the DAG runs the
    whole pipeline in one task rather than not at all."""
    try:
        return source_task_count(loaded)
    except Exception as exc:
        message = loaded.redactor.redact(f"{type(exc).__name__}: {exc}")
        log.warning(
            "omconnect: %s runs as one task: cannot count its source tasks: %s",
            loaded.config.name,
            message,
        )
        return 1

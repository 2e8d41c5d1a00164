"""Definitions factories: one pipeline file, or every pipeline file of a folder.

Each pipeline contributes its assets (``pipeline_assets``), a job named
``omconnect_<pipeline>``, a schedule when it has a ``schedule:`` and otherwise a new-data
sensor; the definitions carry an ``OmconnectResource`` under ``"omconnect"``. A pipeline
with a source and a sink whose source splits into tasks (``tasks:`` above 1) fans out: its
topic is partitioned by source task (see ``assets``).
"""

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypedDict, Unpack

import dagster as dg

from omconnect.runtime.config.loader import LoadedPipeline, load_pipelines, pipeline_files
from omconnect.runtime.config.problems import PipelineConfigError
from omconnect.runtime.dagster.assets import AssetsOrSpec, pipeline_assets
from omconnect.runtime.dagster.automation import pipeline_job, pipeline_schedule, pipeline_sensor
from omconnect.runtime.dagster.resource import RESOURCE_KEY, OmconnectResource
from omconnect.runtime.dagster.translator import OmconnectTranslator


class DefinitionOptions(TypedDict, total=False):
    """The options of ``pipeline_definitions`` and ``definitions_from_folder``."""

    resource: OmconnectResource
    """The shared settings (default: ``OmconnectResource()``)."""
    translator: OmconnectTranslator
    """Keys, groups and kinds (default: ``OmconnectTranslator()``)."""
    dead_letter_tolerance: int
    """Dead letters a run may produce before its check fails (default 0)."""
    fan_out: bool | None
    """Partition the topic by source task; None (the default): when ``tasks:`` is above 1."""
    running: bool
    """Whether the schedules and sensors start running (default), else stopped."""


def pipeline_definitions(path: str | Path, **options: Unpack[DefinitionOptions]) -> dg.Definitions:
    """The definitions of one pipeline file (see the module's docstring).

    Raises:
        PipelineConfigError: the file is not a valid pipeline.
    """
    return _definitions(lambda: [Path(path)], options)


def definitions_from_folder(
    folder: str | Path, **options: Unpack[DefinitionOptions]
) -> dg.Definitions:
    """The definitions of every pipeline file (``*.yaml``, ``*.yml``) directly in
    ``folder``.

    Raises:
        PipelineConfigError: with the problems of every file that is not valid (the code
            location then fails to load, naming each file, line and key).
    """
    return _definitions(lambda: pipeline_files(folder), options)


def _definitions(files: Callable[[], list[Path]], options: DefinitionOptions) -> dg.Definitions:
    """The definitions of the pipeline ``files`` lists, relative paths (of the files, and
    in them) resolved against the resource's working directory."""
    resource = options.get("resource") or OmconnectResource()
    with resource.working_directory():
        pipelines, errors = load_pipelines([path.absolute() for path in files()])
        if errors:
            raise PipelineConfigError(p for error in errors for p in error.problems)
        return _pipelines_definitions(pipelines, resource, options)


def _pipelines_definitions(
    pipelines: list[LoadedPipeline], resource: OmconnectResource, options: DefinitionOptions
) -> dg.Definitions:
    translator = options.get("translator") or OmconnectTranslator()
    tolerance = options.get("dead_letter_tolerance", 0)
    fan_out = options.get("fan_out")
    running = options.get("running", True)
    assets: list[AssetsOrSpec] = []
    jobs: list[Any] = []
    schedules: list[dg.ScheduleDefinition] = []
    sensors: list[dg.SensorDefinition] = []
    targets = _target_keys(pipelines, translator)
    for loaded in pipelines:
        splits = loaded.config.tasks > 1 if fan_out is None else fan_out
        found = pipeline_assets(
            loaded.path,
            translator=translator,
            dead_letter_tolerance=tolerance,
            fan_out=splits,
            loaded=loaded,
            key=targets[loaded.config.name],
        )
        assets.extend(found)
        # The job runs the pipeline's first materialised asset: the topic of a fan-out
        # (whose sink follows by automation), else the pipeline's one asset.
        first = next(a for a in found if isinstance(a, dg.AssetsDefinition))
        partitions = first.partitions_def
        tasks = partitions.get_partition_keys() if partitions is not None else None
        job = pipeline_job(f"{RESOURCE_KEY}_{translator.group_name(loaded)}", [first.key])
        jobs.append(job)
        if loaded.config.schedule is not None:
            schedules.append(pipeline_schedule(loaded, job, tasks, running))
        else:
            sensors.append(pipeline_sensor(str(loaded.path), loaded, job, tasks, running))
    return dg.Definitions(
        assets=_merged(assets),
        jobs=jobs,
        schedules=schedules,
        sensors=sensors,
        resources={RESOURCE_KEY: resource},
    )


def _target_keys(
    pipelines: list[LoadedPipeline], translator: OmconnectTranslator
) -> dict[str, dg.AssetKey]:
    """Each pipeline's asset key; pipelines that write one target (two publishing to one
    topic) each get their name appended, as one asset has one materialising definition."""
    keys = {loaded.config.name: translator.target_key(loaded) for loaded in pipelines}
    counts = Counter(keys.values())
    return {
        name: dg.AssetKey([*key.path, name]) if counts[key] > 1 else key
        for name, key in keys.items()
    }


def _merged(assets: list[AssetsOrSpec]) -> list[AssetsOrSpec]:
    """``assets`` with each external asset once, and none that a pipeline materialises
    (a Parquet dataset one pipeline writes and another reads is one asset)."""
    made = {key for a in assets if isinstance(a, dg.AssetsDefinition) for key in a.keys}
    merged: list[AssetsOrSpec] = []
    seen: set[dg.AssetKey] = set()
    for item in assets:
        if isinstance(item, dg.AssetSpec):
            if item.key in made or item.key in seen:
                continue
            seen.add(item.key)
        merged.append(item)
    return merged

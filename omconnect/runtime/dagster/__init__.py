"""Dagster integration: pipeline files as assets, checks, jobs, schedules and sensors.

Needs the ``[dagster]`` extra; nothing outside this package imports Dagster. The assets run
pipelines through the same ``PipelineRunner`` as ``omconnect run --once``. See docs/dagster.md.

- ``definitions_from_folder("pipelines/")``, ``pipeline_definitions(path)``: everything for
  a folder of pipeline files, or for one;
- ``pipeline_assets(path)``: the assets of one file, for your own ``Definitions``;
- ``OmconnectResource``: the shared settings (state store, broker, working directory);
- ``OmconnectTranslator``: asset keys, groups and kinds;
- ``OmconnectPipelineComponent``: a ``defs.yaml`` pointing at a pipeline file.
"""

from omconnect.runtime.dagster.assets import (
    DEAD_LETTERS_CHECK,
    ROW_COUNT_CHECK,
    pipeline_assets,
)
from omconnect.runtime.dagster.automation import pipeline_job, pipeline_schedule, pipeline_sensor
from omconnect.runtime.dagster.component import OmconnectPipelineComponent
from omconnect.runtime.dagster.definitions import definitions_from_folder, pipeline_definitions
from omconnect.runtime.dagster.resource import RESOURCE_KEY, OmconnectResource
from omconnect.runtime.dagster.run_summary import RunSummary
from omconnect.runtime.dagster.translator import OmconnectTranslator

__all__ = [
    "DEAD_LETTERS_CHECK",
    "RESOURCE_KEY",
    "ROW_COUNT_CHECK",
    "OmconnectPipelineComponent",
    "OmconnectResource",
    "OmconnectTranslator",
    "RunSummary",
    "definitions_from_folder",
    "pipeline_assets",
    "pipeline_definitions",
    "pipeline_job",
    "pipeline_schedule",
    "pipeline_sensor",
]

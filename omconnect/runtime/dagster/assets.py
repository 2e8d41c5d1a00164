"""``pipeline_assets``: a pipeline file as Dagster assets that run it once when materialised.

The pipeline's asset (its sink's target, or its topic; see ``OmconnectTranslator``) is
materialised by running the pipeline as ``omconnect run --once`` does, through the same
``PipelineRunner``: offsets, schemas, dead letters and exactly-once sinks behave as on the
command line. Each materialisation records what the run did as metadata and evaluates two
checks: ``row_count`` (records out == records in minus dead letters) and ``dead_letters``
(at most ``dead_letter_tolerance``).

With ``fan_out=True`` the source's tasks become the partitions of a topic asset
(``StaticPartitionsDefinition`` over the task indexes ``"0"``, ``"1"``, ...): each partition
runs one task without the sink (``PipelineRunner(tasks=[i], sink=False)``), in a run of its
own that the run launcher or executor may place on any machine; the sink's asset, downstream,
runs the sink alone (``tasks=[]``) and is materialised by declarative automation once no
task is in progress.
"""

import logging
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

import dagster as dg

from omconnect.runtime.config.loader import LoadedPipeline, load_pipeline
from omconnect.runtime.config.problems import PipelineConfigError
from omconnect.runtime.dagster.resource import RESOURCE_KEY, OmconnectResource
from omconnect.runtime.dagster.run_summary import RunSummary
from omconnect.runtime.dagster.translator import OmconnectTranslator
from omconnect.runtime.worker.runner import source_task_count

ROW_COUNT_CHECK = "row_count"
DEAD_LETTERS_CHECK = "dead_letters"

AssetsOrSpec = dg.AssetsDefinition | dg.AssetSpec

log = logging.getLogger("omconnect.dagster")


def pipeline_assets(
    path: str | Path,
    *,
    translator: OmconnectTranslator | None = None,
    dead_letter_tolerance: int = 0,
    fan_out: bool = False,
    loaded: LoadedPipeline | None = None,
    key: dg.AssetKey | None = None,
) -> list[AssetsOrSpec]:
    """The assets of the pipeline file at ``path``: its own asset (with its checks) and the
    external asset of what its source reads; with ``fan_out``, also its topic, partitioned
    by source task. They need an ``OmconnectResource`` under the key ``"omconnect"``.

    Args:
        path: the pipeline file; read now for the keys, and again at every run.
        translator: keys, groups and kinds (default ``OmconnectTranslator()``).
        dead_letter_tolerance: how many dead letters a run may produce before the
            ``dead_letters`` check fails.
        fan_out: run each source task as a partition of the topic asset, then the sink.
        loaded: the file already loaded (the definitions factory loads each once).
        key: the pipeline's own asset key instead of the translator's.

    Raises:
        PipelineConfigError: the file is not a valid pipeline.
    """
    translator = translator or OmconnectTranslator()
    path = Path(path).absolute()
    loaded = loaded or load_pipeline(path)
    found: list[AssetsOrSpec] = []
    source = translator.get_source_spec(loaded)
    if source is not None:
        found.append(source)
    target = translator.get_asset_spec(loaded)
    if key is not None:
        target = target.replace_attributes(key=key)
    if (
        fan_out
        and loaded.source is not None
        and loaded.sink is not None
        and not loaded.config.without_broker  # without a broker: one process
    ):
        topic = translator.get_topic_spec(loaded)
        tasks = dg.StaticPartitionsDefinition([str(i) for i in range(_task_count(loaded))])
        found.append(
            _run_asset(
                topic.replace_attributes(partitions_def=tasks),
                path,
                dead_letter_tolerance,
                op_name=f"{RESOURCE_KEY}_run_{translator.group_name(loaded)}_tasks",
                sink=False,
            )
        )
        target = target.replace_attributes(
            deps=[topic.key], automation_condition=dg.AutomationCondition.eager()
        )
        found.append(
            _run_asset(
                target,
                path,
                dead_letter_tolerance,
                op_name=f"{RESOURCE_KEY}_run_{translator.group_name(loaded)}_sink",
                tasks=(),
            )
        )
    else:
        found.append(
            _run_asset(
                target,
                path,
                dead_letter_tolerance,
                op_name=f"{RESOURCE_KEY}_run_{translator.group_name(loaded)}",
            )
        )
    return found


def _task_count(loaded: LoadedPipeline) -> int:
    """How many tasks the source splits into, asked now; the pipeline's ``tasks:`` when its
    system cannot be reached (a task beyond the real count then fails its run, saying so)."""
    try:
        return source_task_count(loaded)
    except Exception as error:
        message = loaded.redactor.redact(str(error))
        log.warning(
            "pipeline %s: counting its source tasks failed (%s)", loaded.config.name, message
        )
        return loaded.config.tasks


def _run_asset(
    spec: dg.AssetSpec,
    path: Path,
    tolerance: int,
    op_name: str,
    tasks: Collection[int] | None = None,
    sink: bool = True,
) -> dg.AssetsDefinition:
    """An asset materialised by one run of the pipeline at ``path``; a partitioned one runs
    the source task its partition key names."""
    checks = [
        dg.AssetCheckSpec(
            ROW_COUNT_CHECK,
            asset=spec.key,
            description="Records out of the run == records in minus dead letters (fewer "
            "allowed when transforms may drop rows).",
        ),
        dg.AssetCheckSpec(
            DEAD_LETTERS_CHECK,
            asset=spec.key,
            description=f"The run sent at most {tolerance} record(s) to the dead letter topic.",
        ),
    ]

    @dg.multi_asset(
        name=op_name,
        specs=[spec],
        check_specs=checks,
        required_resource_keys={RESOURCE_KEY},
        partitions_def=spec.partitions_def,
    )
    def _materialise(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        resource: OmconnectResource = getattr(context.resources, RESOURCE_KEY)
        chosen = [int(context.partition_key)] if context.has_partition_key else tasks
        summary = _run(resource, path, chosen, sink)
        context.log.info("%s", summary.metrics.summary())
        return dg.MaterializeResult(
            asset_key=spec.key,
            metadata=run_metadata(summary, chosen),
            check_results=check_results(spec.key, summary, tolerance),
        )

    return _materialise


def _run(
    resource: OmconnectResource, path: Path, tasks: Collection[int] | None, sink: bool
) -> RunSummary:
    """One run, its failures turned into ``dg.Failure`` with the pipeline's secrets masked."""
    try:
        loaded = resource.load(path)
    except PipelineConfigError as error:  # already located and redacted
        raise dg.Failure(description=str(error)) from None
    try:
        return resource.run(loaded, tasks, sink)
    except Exception as error:
        message = loaded.redactor.redact(f"{type(error).__name__}: {error}")
        raise dg.Failure(
            description=f"pipeline {loaded.config.name} failed: {message}",
            metadata={"omconnect/pipeline": loaded.config.name},
        ) from None


def run_metadata(summary: RunSummary, tasks: Collection[int] | None) -> dict[str, Any]:
    """The materialisation's metadata: every counter, the duration, the topics' schema ids
    and versions, and the positions stored after the run."""
    metadata: dict[str, Any] = {
        **{name: dg.MetadataValue.int(value) for name, value in summary.metrics.counts().items()},
        "duration_seconds": dg.MetadataValue.float(round(summary.duration, 3)),
        "positions": dg.MetadataValue.json(summary.positions),
    }
    if tasks is not None:
        metadata["source_tasks"] = dg.MetadataValue.text(",".join(map(str, sorted(tasks))))
    if summary.schemas:
        metadata["schemas"] = dg.MetadataValue.json(
            [{"topic": s.topic, "id": s.schema_id, "version": s.version} for s in summary.schemas]
        )
        if len(summary.schemas) == 1:
            metadata["schema_id"] = dg.MetadataValue.int(summary.schemas[0].schema_id)
            metadata["schema_version"] = dg.MetadataValue.int(summary.schemas[0].version)
    return metadata


def check_results(
    key: dg.AssetKey, summary: RunSummary, tolerance: int
) -> Sequence[dg.AssetCheckResult]:
    """The ``row_count`` and ``dead_letters`` checks of one run."""
    passed, rule = summary.row_count_check()
    dead = summary.metrics.rows_dead_lettered
    return [
        dg.AssetCheckResult(
            asset_key=key,
            check_name=ROW_COUNT_CHECK,
            passed=passed,
            metadata={
                "records_in": summary.records_in,
                "records_out": summary.records_out,
                "dead_letters": dead,
                "rule": rule,
            },
        ),
        dg.AssetCheckResult(
            asset_key=key,
            check_name=DEAD_LETTERS_CHECK,
            passed=summary.dead_letter_check(tolerance),
            metadata={"dead_letters": dead, "tolerance": tolerance},
        ),
    ]

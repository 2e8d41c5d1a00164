"""The Dagster integration in-process: materialising moves real data (CSV -> embedded topic
-> Parquet) with metadata and checks, a failing pipeline fails its run, a second
materialisation resumes, the schedule and the new-data sensor under Dagster's test contexts,
the fan-out over source tasks as partitions, the YAML component, and the layering (nothing
outside ``omconnect.runtime.dagster`` imports Dagster).

Every run uses ``materialize`` / ``execute_in_process`` on an ephemeral instance (no
DAGSTER_HOME) and a temporary working directory, so xdist workers share nothing.
"""

from __future__ import annotations

import ast
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow.dataset as ds
import pytest

dg = pytest.importorskip("dagster")

from omconnect.runtime.dagster import (  # noqa: E402 - after the importorskip
    DEAD_LETTERS_CHECK,
    ROW_COUNT_CHECK,
    OmconnectPipelineComponent,
    OmconnectResource,
    definitions_from_folder,
    pipeline_assets,
    pipeline_definitions,
)
from tests.support.split_source import split_pipeline  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]

CSV_PIPELINE = """name: lake
source: {{connector: csv, path: in.csv, key: [id]}}
{extra}
sink: {{connector: parquet, path: out/}}
"""


def write_csv(path: Path, first: int, last: int, header: bool = True) -> None:
    with path.open("a") as handle:
        handle.write(
            ("id,name\n" if header else "")
            + "".join(f"{i},name{i}\n" for i in range(first, last + 1))
        )


def parquet_ids(directory: Path) -> list[int]:
    return sorted(ds.dataset(directory, format="parquet").to_table()["id"].to_pylist())


def csv_pipeline(tmp_path: Path, extra: str = "") -> Path:
    write_csv(tmp_path / "in.csv", 1, 40)
    path = tmp_path / "lake.yaml"
    path.write_text(CSV_PIPELINE.format(extra=extra))
    return path


def materialise(assets: list[Any], tmp_path: Path, **options: Any) -> dg.ExecuteInProcessResult:
    resource = OmconnectResource(working_dir=str(tmp_path))
    return dg.materialize(
        assets, resources={"omconnect": resource}, raise_on_error=False, **options
    )


def only_materialisation(result: dg.ExecuteInProcessResult) -> dict[str, Any]:
    (event,) = result.get_asset_materialization_events()
    return {key: value.value for key, value in event.materialization.metadata.items()}


def checks(result: dg.ExecuteInProcessResult) -> dict[str, bool]:
    return {c.check_name: c.passed for c in result.get_asset_check_evaluations()}


def test_materialising_moves_the_rows_and_records_metadata_and_checks(tmp_path: Path) -> None:
    assets = pipeline_assets(csv_pipeline(tmp_path))
    source, target = assets
    assert isinstance(source, dg.AssetSpec) and source.key == dg.AssetKey(["csv", "in.csv"])
    assert isinstance(target, dg.AssetsDefinition)
    assert target.key == dg.AssetKey(["parquet", "out"])
    assert target.group_names_by_key[target.key] == "lake"
    assert set(target.asset_deps[target.key]) == {source.key}

    result = materialise(assets, tmp_path)

    assert result.success
    assert parquet_ids(tmp_path / "out") == list(range(1, 41))
    metadata = only_materialisation(result)
    assert metadata["records_read"] == metadata["records_written"] == 40
    assert metadata["dead_letters"] == 0 and metadata["bytes_published"] > 0
    assert metadata["schema_version"] == 1 and metadata["schema_id"] >= 1
    assert metadata["schemas"] == [{"topic": "lake", "id": metadata["schema_id"], "version": 1}]
    assert metadata["duration_seconds"] > 0
    kinds = {entry["kind"]: entry for entry in metadata["positions"]}
    assert kinds["source"]["partition"] == {"file": "in.csv"}
    assert kinds["sink"]["offset"] == {"offset": 40}
    assert checks(result) == {ROW_COUNT_CHECK: True, DEAD_LETTERS_CHECK: True}


def test_a_second_materialisation_resumes_from_the_stored_positions(tmp_path: Path) -> None:
    assets = pipeline_assets(csv_pipeline(tmp_path))
    assert materialise(assets, tmp_path).success

    again = materialise(assets, tmp_path)
    assert again.success
    assert only_materialisation(again)["records_read"] == 0
    assert only_materialisation(again)["records_written"] == 0

    write_csv(tmp_path / "in.csv", 41, 45, header=False)
    appended = materialise(assets, tmp_path)
    metadata = only_materialisation(appended)
    assert metadata["records_read"] == metadata["records_written"] == 5
    assert parquet_ids(tmp_path / "out") == list(range(1, 46))


def test_dead_letters_beyond_the_tolerance_fail_their_check(tmp_path: Path) -> None:
    """A cast that fails on one row sends it to the dead letter topic: the row count still
    adds up, and the dead letter check passes only within its tolerance."""
    extra = "transforms: [{type: cast, fields: {name: int64}}]\nerrors: {tolerance: all}"
    path = csv_pipeline(tmp_path, extra)
    (tmp_path / "in.csv").write_text("id,name\n1,10\n2,oops\n3,30\n")

    strict = materialise(pipeline_assets(path), tmp_path)
    assert strict.success
    assert only_materialisation(strict)["dead_letters"] == 1
    assert checks(strict) == {ROW_COUNT_CHECK: True, DEAD_LETTERS_CHECK: False}
    assert parquet_ids(tmp_path / "out") == [1, 3]

    (tmp_path / "in.csv").write_text("id,name\n1,10\n2,oops\n3,30\n4,x\n")
    tolerant = materialise(pipeline_assets(path, dead_letter_tolerance=1), tmp_path)
    assert checks(tolerant) == {ROW_COUNT_CHECK: True, DEAD_LETTERS_CHECK: True}


def test_rows_the_sink_refuses_add_up_in_the_row_count(tmp_path: Path) -> None:
    """A row the database refuses (a CHECK) goes to the dead letter topic from the sink: it
    is a dead letter, not a record written, and the row count still adds up."""
    database = tmp_path / "lake.db"
    with sqlite3.connect(database) as connection:
        connection.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT CHECK (name <> 'x'))")
    (tmp_path / "in.csv").write_text("id,name\n1,a\n2,x\n3,c\n")
    path = tmp_path / "lake.yaml"
    path.write_text(
        "name: lake\nsource: {connector: csv, path: in.csv, key: [id]}\n"
        f"sink: {{connector: sql, url: 'sqlite:///{database}', table: t, mode: upsert}}\n"
        "errors: {tolerance: all}\n"
    )
    result = materialise(pipeline_assets(path, dead_letter_tolerance=1), tmp_path)
    assert result.success
    metadata = only_materialisation(result)
    assert (metadata["records_read"], metadata["records_written"]) == (3, 2)
    assert metadata["dead_letters"] == 1
    assert checks(result) == {ROW_COUNT_CHECK: True, DEAD_LETTERS_CHECK: True}
    with sqlite3.connect(database) as connection:
        assert connection.execute("SELECT id FROM t ORDER BY id").fetchall() == [(1,), (3,)]


def test_a_failing_pipeline_fails_the_run_with_a_redacted_reason(tmp_path: Path) -> None:
    path = csv_pipeline(
        tmp_path, "errors: {tolerance: none}\ntransforms: [{type: cast, fields: {name: int64}}]"
    )
    (tmp_path / "in.csv").write_text("id,name\n1,10\n2,oops\n")

    result = materialise(pipeline_assets(path), tmp_path)

    assert not result.success
    (failure,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert "pipeline lake failed" in failure.step_failure_data.error.message
    assert not result.get_asset_materialization_events()


def test_the_schedule_runs_the_pipeline_at_each_cron_tick_in_utc(tmp_path: Path) -> None:
    path = csv_pipeline(tmp_path, 'schedule: "@hourly"')
    defs = pipeline_definitions(path, resource=OmconnectResource(working_dir=str(tmp_path)))
    (schedule,) = defs.schedules or []
    assert schedule.cron_schedule == "0 * * * *" and schedule.execution_timezone == "UTC"
    assert not list(defs.sensors or [])

    tick = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    data = schedule.evaluate_tick(dg.build_schedule_context(scheduled_execution_time=tick))
    (request,) = data.run_requests or []
    assert request.run_key == tick.isoformat()

    job = defs.resolve_job_def(schedule.job_name)
    assert job.execute_in_process().success
    assert parquet_ids(tmp_path / "out") == list(range(1, 41))


def test_the_sensor_requests_a_run_when_new_files_or_rows_arrive(tmp_path: Path) -> None:
    resource = OmconnectResource(working_dir=str(tmp_path))
    defs = pipeline_definitions(csv_pipeline(tmp_path), resource=resource)
    (sensor,) = defs.sensors or []

    def evaluate(cursor: str | None) -> Any:
        context = dg.build_sensor_context(cursor=cursor, resources={"omconnect": resource})
        return sensor.evaluate_tick(context)

    first = evaluate(None)
    (request,) = first.run_requests or []
    assert first.cursor == request.run_key
    unchanged = evaluate(first.cursor)
    assert not unchanged.run_requests and unchanged.skip_message

    write_csv(tmp_path / "in.csv", 41, 42, header=False)
    grown = evaluate(first.cursor)
    (again,) = grown.run_requests or []
    assert again.run_key not in (None, request.run_key)


def test_the_sensor_of_a_sink_only_pipeline_waits_for_its_topic_to_be_ahead(
    tmp_path: Path,
) -> None:
    """A topic-to-Parquet pipeline's sensor requests a run while the sink's consumer group
    is behind the topic's end offsets, and none once a run caught up."""
    write_csv(tmp_path / "in.csv", 1, 10)
    (tmp_path / "publish.yaml").write_text(
        "name: publish\nsource: {connector: csv, path: in.csv}\ntopic: feed\n"
    )
    (tmp_path / "land.yaml").write_text(
        "name: land\ntopic: feed\nsink: {connector: parquet, path: landed/}\n"
    )
    resource = OmconnectResource(working_dir=str(tmp_path))
    defs = definitions_from_folder(tmp_path, resource=resource)
    sensor = defs.get_sensor_def("omconnect_land_new_data")

    def evaluate() -> Any:
        return sensor.evaluate_tick(dg.build_sensor_context(resources={"omconnect": resource}))

    assert not evaluate().run_requests  # nothing published yet
    assert defs.resolve_job_def("omconnect_publish").execute_in_process().success
    (request,) = evaluate().run_requests or []
    assert request.run_key
    assert defs.resolve_job_def("omconnect_land").execute_in_process().success
    assert parquet_ids(tmp_path / "landed") == list(range(1, 11))
    assert not evaluate().run_requests


def test_a_fan_out_runs_each_source_task_as_a_partition_then_the_sink(
    tmp_path: Path,
) -> None:
    """Two SQLite tables of 2,000 rows, ``tasks: 2`` (``split_source``)."""
    pipeline = split_pipeline(tmp_path)
    resource = OmconnectResource(working_dir=str(tmp_path))
    defs = pipeline_definitions(pipeline, resource=resource)
    topic_key, sink_key = dg.AssetKey(["embedded", "split"]), dg.AssetKey(["parquet", "out"])
    topic = defs.get_assets_def(topic_key)
    assert topic.partitions_def == dg.StaticPartitionsDefinition(["0", "1"])
    sink = defs.get_assets_def(sink_key)
    assert topic_key in sink.asset_deps[sink_key]
    assert sink.automation_conditions_by_key[sink_key] is not None
    # A database source: the sensor asks for a run of every task while none is active.
    (sensor,) = defs.sensors or []
    context = dg.build_sensor_context(
        resources={"omconnect": resource}, repository_def=defs.get_repository_def()
    )
    tick = sensor.evaluate_tick(context)
    assert sorted(r.partition_key or "" for r in tick.run_requests or []) == ["0", "1"]

    job = defs.resolve_job_def("omconnect_split")
    for task in ("0", "1"):
        run = job.execute_in_process(partition_key=task)
        assert run.success
        metadata = only_materialisation(run)
        assert metadata["records_read"] == metadata["records_published"] == 2_000
        assert metadata["records_written"] == 0 and metadata["source_tasks"] == task
        assert checks(run) == {ROW_COUNT_CHECK: True, DEAD_LETTERS_CHECK: True}
    assert not (tmp_path / "out").exists()

    sunk = dg.materialize([sink], resources=defs.resources, raise_on_error=False)
    assert sunk.success
    metadata = only_materialisation(sunk)
    assert metadata["records_consumed"] == metadata["records_written"] == 4_000
    assert metadata["source_tasks"] == ""
    assert parquet_ids(tmp_path / "out") == [*range(1, 2_001), *range(10_001, 12_001)]


def test_the_component_loads_from_defs_yaml_and_runs_the_pipeline() -> None:
    from dagster.components.testing import create_defs_folder_sandbox

    with create_defs_folder_sandbox() as sandbox:
        root = sandbox.project_root
        (root / "pipelines").mkdir()
        write_csv(root / "in.csv", 1, 12)
        (root / "pipelines" / "lake.yaml").write_text(CSV_PIPELINE.format(extra=""))
        defs_path = sandbox.defs_folder_path / "lake"
        defs_path.mkdir()
        (defs_path / "defs.yaml").write_text(
            "type: omconnect.runtime.dagster.OmconnectPipelineComponent\n"
            "attributes:\n  pipeline: pipelines/lake.yaml\n  dead_letter_tolerance: 3\n"
        )
        with sandbox.load_component_and_build_defs(defs_path=defs_path) as (component, defs):
            assert isinstance(component, OmconnectPipelineComponent)
            assert component.dead_letter_tolerance == 3
            assert defs.get_assets_def(dg.AssetKey(["parquet", "out"]))
            assert defs.resolve_job_def("omconnect_lake").execute_in_process().success
        assert parquet_ids(root / "out") == list(range(1, 13))


def test_the_repository_pipelines_become_one_code_location() -> None:
    """Every file in pipelines/: one asset each, lineage from a shared source, jobs Dagster
    accepts, and two pipelines publishing to one topic kept apart."""
    defs = definitions_from_folder(ROOT / "pipelines")
    graph = defs.resolve_asset_graph()
    quickstart = graph.get(dg.AssetKey(["parquet", "out", "orders"]))
    assert quickstart.parent_keys == {dg.AssetKey(["csv", "pipelines", "data", "orders.csv"])}
    assert (
        dg.AssetKey(["embedded", "plant-telemetry", "mqtt-to-topic"]) in graph.get_all_asset_keys()
    )
    assert "omconnect_quickstart" in {job.name for job in defs.resolve_all_job_defs()}


def test_nothing_outside_the_dagster_package_imports_dagster() -> None:
    importers = []
    for file in (ROOT / "omconnect").rglob("*.py"):
        if "dagster" in file.relative_to(ROOT / "omconnect").parts:
            continue
        text = file.read_text()
        if "dagster" not in text:
            continue
        for node in ast.walk(ast.parse(text)):
            names = (
                [alias.name for alias in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            if any(name.split(".")[0] == "dagster" for name in names):
                importers.append(str(file.relative_to(ROOT)))
    assert importers == []


def test_without_a_broker_a_split_source_runs_as_one_asset_with_its_sink(
    tmp_path: Path,
) -> None:
    """``broker: none``: the source's tasks hand their rows to the sink in one process, so
    there is no fan-out of source tasks to materialise apart."""
    pipeline = split_pipeline(tmp_path)
    pipeline.write_text("broker: none\n" + pipeline.read_text())
    resource = OmconnectResource(working_dir=str(tmp_path))
    defs = pipeline_definitions(pipeline, resource=resource)
    sink_key = dg.AssetKey(["parquet", "out"])
    assert defs.get_assets_def(sink_key).partitions_def is None
    run = defs.resolve_job_def("omconnect_split").execute_in_process()
    assert run.success
    metadata = only_materialisation(run)
    assert metadata["records_read"] == metadata["records_written"] == 4_000
    assert parquet_ids(tmp_path / "out") == [*range(1, 2_001), *range(10_001, 12_001)]

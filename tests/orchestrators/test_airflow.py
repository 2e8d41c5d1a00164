"""The Airflow integration under ``dag.test()`` on a SQLite metadata database: the operator
moving real data, a failed run retried, a second run resuming from offsets, the DAG factory's
fan-out, the deferrable variant, secrets from Connections and Variables, and the provider.

Every DAG is written as a file into this process's Airflow DAG folder (``dag.test()`` parses
the folder and runs only DAGs it found there) and imported back to be tested.
"""

from __future__ import annotations

import asyncio
import importlib.util
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pyarrow.dataset as ds
import pytest

from omconnect.runtime.config.loader import load_pipeline, redacted_config
from omconnect.runtime.config.problems import PipelineConfigError
from omconnect.runtime.config.reference_resolvers import (
    register_resolver,
    registered_prefixes,
    unregister_resolver,
)
from tests.support.split_source import SPLIT_PIPELINE, two_table_database

# One worker runs them all: Airflow's metadata database is created once per process.
pytestmark = pytest.mark.xdist_group("airflow")

CSV_PIPELINE = """name: {name}
source: {{connector: csv, path: in.csv, key: [id]}}
topic: {name}
sink:
  connector: parquet
  path: "{out}"
"""


def write_csv(path: Path, first: int, last: int, header: bool = True) -> None:
    lines = [f"{i},name{i}\n" for i in range(first, last + 1)]
    with path.open("a") as handle:
        handle.write(("id,name\n" if header else "") + "".join(lines))


def csv_pipeline(directory: Path, name: str, rows: int, out: str = "out/") -> None:
    """``in.csv`` with ids 1..rows and ``pipeline.yaml`` moving it to Parquet in ``out``."""
    write_csv(directory / "in.csv", 1, rows)
    (directory / "pipeline.yaml").write_text(CSV_PIPELINE.format(name=name, out=out))


def parquet_ids(directory: Path) -> list[int]:
    return sorted(ds.dataset(directory, format="parquet").to_table()["id"].to_pylist())


def load_dag_file(airflow_home: Path, name: str, source: str) -> Any:
    """Write a DAG file into the DAG folder and import it; its ``dag`` (or ``dags``)."""
    path = airflow_home / "dags" / f"{name}.py"
    path.write_text(textwrap.dedent(source))
    spec = importlib.util.spec_from_file_location(f"omconnect_test_dag_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def operator_dag(
    airflow_home: Path, dag_id: str, working_dir: Path, operator_args: str, extra: str = ""
) -> Any:
    module = load_dag_file(
        airflow_home,
        dag_id,
        f"""
        from datetime import datetime, timedelta
        from pathlib import Path
        from airflow.sdk import DAG
        from omconnect.runtime.airflow import OmconnectRunOperator
        {extra}
        with DAG("{dag_id}", schedule=None, start_date=datetime(2024, 1, 1)) as dag:
            OmconnectRunOperator(
                task_id="run", pipeline="pipeline.yaml", working_dir=r"{working_dir}",
                {operator_args}
            )
        """,
    )
    return module.dag


def task_states(run: Any) -> dict[tuple[str, int], tuple[str, int]]:
    """``(task_id, map_index) -> (state, try_number)`` of a finished DAG run."""
    return {
        (ti.task_id, ti.map_index): (str(ti.state), ti.try_number)
        for ti in run.get_task_instances()
    }


def xcom(run: Any, task_id: str, map_index: int = -1) -> Any:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    query = XComModel.get_many(
        run_id=run.run_id,
        key="return_value",
        dag_ids=run.dag_id,
        task_ids=task_id,
        map_indexes=map_index,
    )
    with create_session() as session:
        row = session.scalars(query).first()
        assert row is not None, f"no XCom from {task_id}[{map_index}]"
        return XComModel.deserialize_value(row)


def test_the_operator_moves_a_csv_file_into_parquet_and_returns_a_summary(
    airflow_home: Path, tmp_path: Path
) -> None:
    csv_pipeline(tmp_path, "af-move", 1_000)
    dag = operator_dag(airflow_home, "af_move", tmp_path, "")
    run = dag.test()
    assert task_states(run) == {("run", -1): ("success", 1)}
    assert parquet_ids(tmp_path / "out") == list(range(1, 1_001))
    summary = xcom(run, "run")
    assert summary["pipeline"] == "af-move"
    assert summary["records_read"] == summary["records_written"] == 1_000
    assert summary["records_published"] == 1_000 and summary["dead_letters"] == 0
    assert summary["bytes_published"] > 0 and summary["duration_seconds"] > 0
    kinds = {entry["kind"] for entry in summary["positions"]}
    assert kinds == {"source", "sink"} and summary["positions_committed"] >= 2


def test_a_second_run_resumes_from_the_committed_offsets(
    airflow_home: Path, tmp_path: Path
) -> None:
    csv_pipeline(tmp_path, "af-resume", 300)
    dag = operator_dag(airflow_home, "af_resume", tmp_path, "")
    assert xcom(dag.test(), "run")["records_read"] == 300
    again = xcom(dag.test(), "run")
    assert (again["records_read"], again["records_written"]) == (0, 0)
    write_csv(tmp_path / "in.csv", 301, 350, header=False)
    appended = xcom(dag.test(), "run")
    assert (appended["records_read"], appended["records_written"]) == (50, 50)
    assert parquet_ids(tmp_path / "out") == list(range(1, 351))


def test_a_failed_run_raises_and_airflow_retries_it(airflow_home: Path, tmp_path: Path) -> None:
    """The sink's directory is a file on the first try; the retry callback clears it."""
    csv_pipeline(tmp_path, "af-retry", 200, out="blocked/")
    blocked = tmp_path / "blocked"
    blocked.write_text("not a directory")
    dag = operator_dag(
        airflow_home,
        "af_retry",
        tmp_path,
        "retries=2, retry_delay=timedelta(0), on_retry_callback=clear",
        extra=f"def clear(context):\n            Path(r'{blocked}').unlink()",
    )
    run = dag.test()
    assert task_states(run) == {("run", -1): ("success", 2)}
    assert parquet_ids(blocked) == list(range(1, 201))


def test_a_pipeline_file_that_does_not_load_fails_without_retries(
    airflow_home: Path, tmp_path: Path
) -> None:
    (tmp_path / "pipeline.yaml").write_text("name: af-bad\nsource: {connector: nosuch}\n")
    dag = operator_dag(airflow_home, "af_bad", tmp_path, "retries=3, retry_delay=timedelta(0)")
    assert task_states(dag.test()) == {("run", -1): ("failed", 1)}


@pytest.fixture
def two_tables(tmp_path: Path) -> Path:
    """A SQLite database of two tables (ids 1..300 and 10001..10300) and a pipelines folder."""
    database = two_table_database(tmp_path / "db.sqlite", 300)
    folder = tmp_path / "pipelines"
    folder.mkdir()
    (folder / "split.yaml").write_text(
        SPLIT_PIPELINE.format(name="af-split", database=database) + 'schedule: "0 * * * *"\n'
    )
    (folder / "single.yaml").write_text(
        CSV_PIPELINE.format(name="af-single", out="single/") + 'schedule: "@daily"\n'
    )
    (folder / "manual.yaml").write_text(CSV_PIPELINE.format(name="af-manual", out="manual/"))
    (folder / "direct.yaml").write_text(
        "broker: none\n"
        + SPLIT_PIPELINE.format(name="af-direct", database=database).replace("out/", "direct/")
        + 'schedule: "0 * * * *"\n'
    )
    (folder / "broken.yaml").write_text("name: [\n")
    return folder


def test_the_dag_factory_fans_a_split_source_out_into_mapped_tasks_then_the_sink(
    airflow_home: Path, tmp_path: Path, two_tables: Path
) -> None:
    module = load_dag_file(
        airflow_home,
        "af_folder",
        f"""
        from omconnect.runtime.airflow import dags_from_folder
        dags = dags_from_folder(r"{two_tables}")
        """,
    )
    dags = module.dags
    # No schedule, does not load: left out. Without a broker a split source is one task.
    assert sorted(dags) == ["af-direct", "af-single", "af-split"]
    assert [t.task_id for t in dags["af-direct"].tasks] == ["run"]
    split = dags["af-split"]
    assert split.catchup is False and split.max_active_runs == 1
    assert "omconnect" in split.tags and "sql" in split.tags
    assert split.default_args["retries"] >= 1 and split.default_args["retry_exponential_backoff"]
    assert [t.task_id for t in dags["af-single"].tasks] == ["run"]
    assert split.get_task("source").downstream_task_ids == {"sink"}

    run = split.test()
    assert task_states(run) == {
        ("source", 0): ("success", 1),
        ("source", 1): ("success", 1),
        ("sink", -1): ("success", 1),
    }
    read = [xcom(run, "source", index)["records_read"] for index in (0, 1)]
    assert read == [300, 300]
    assert [xcom(run, "source", index)["records_written"] for index in (0, 1)] == [0, 0]
    assert xcom(run, "sink")["records_written"] == 600
    assert parquet_ids(tmp_path / "out") == [*range(1, 301), *range(10_001, 10_301)]

    direct = dags["af-direct"].test()
    assert task_states(direct) == {("run", -1): ("success", 1)}
    assert xcom(direct, "run")["records_written"] == 600
    assert parquet_ids(tmp_path / "direct") == [*range(1, 301), *range(10_001, 10_301)]


def test_the_deferrable_operator_runs_a_streaming_pipeline_in_the_trigger_until_n_records(
    airflow_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A continuous run (no --once) in the trigger's child process, stopped cleanly after
    400 records: its positions are committed, so a run afterwards reads nothing new."""
    from omconnect.runtime.airflow import operators

    def not_in_the_worker(*args: object, **kwargs: object) -> None:
        raise AssertionError("a deferrable run ran in the worker")

    monkeypatch.setattr(operators, "run_pipeline", not_in_the_worker)
    csv_pipeline(tmp_path, "af-defer", 400)
    dag = operator_dag(
        airflow_home, "af_defer", tmp_path, "deferrable=True, until_records=400, poll_interval=0.2"
    )
    run = dag.test()
    assert task_states(run) == {("run", -1): ("success", 1)}
    summary = xcom(run, "run")
    assert summary["records_written"] == 400
    assert parquet_ids(tmp_path / "out") == list(range(1, 401))
    caught_up = operator_dag(airflow_home, "af_defer_caught_up", tmp_path, "deferrable=True")
    assert xcom(caught_up.test(), "run")["records_read"] == 0


def test_a_trigger_waits_while_the_pipeline_runs_elsewhere_then_runs_it(tmp_path: Path) -> None:
    """Two copies of a trigger (a triggerer failover): the second finds the pipeline's lock
    held, waits and tries again, and runs once the first has let go."""
    from omconnect.runtime.airflow.triggers import OmconnectRunTrigger
    from omconnect.runtime.state import PipelineLock

    csv_pipeline(tmp_path, "af-busy", 50)
    holding = PipelineLock(str(tmp_path / ".omconnect"), "af-busy")
    holding.acquire("another triggerer")

    async def run_while_held() -> Any:
        trigger = OmconnectRunTrigger("pipeline.yaml", str(tmp_path), poll_interval=0.2)
        running = asyncio.ensure_future(anext(trigger.run()))
        await asyncio.sleep(2.0)
        assert not running.done()  # refused, waiting: not failed
        holding.release()
        async with asyncio.timeout(60):
            return await running

    event = asyncio.run(run_while_held())
    assert event.payload["status"] == "success"
    assert event.payload["summary"]["records_written"] == 50


def test_a_cancelled_trigger_stops_its_run_cleanly(tmp_path: Path) -> None:
    """Cancelling the trigger (a timeout, a cleared task, a triggerer stopping) stops the
    child run: it lets go of the pipeline, and the next run resumes where it committed."""
    from omconnect.runtime.airflow.pipeline_run import RunRequest, run_pipeline
    from omconnect.runtime.airflow.triggers import OmconnectRunTrigger
    from omconnect.runtime.state import PipelineLock, PipelineRunningError

    csv_pipeline(tmp_path, "af-cancel", 100)
    lock = PipelineLock(str(tmp_path / ".omconnect"), "af-cancel")

    async def cancel_while_streaming() -> None:
        trigger = OmconnectRunTrigger("pipeline.yaml", str(tmp_path), until_records=10**9)
        running = asyncio.ensure_future(anext(trigger.run()))
        async with asyncio.timeout(60):
            while not (tmp_path / "out").exists():  # the child runs and has written
                await asyncio.sleep(0.1)
        with pytest.raises(PipelineRunningError):
            lock.acquire("a test")
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running

    asyncio.run(cancel_while_streaming())
    lock.acquire("a test")  # the child has ended
    lock.release()
    # What it had not committed is delivered by the next run: nothing lost, nothing twice.
    run_pipeline(RunRequest("pipeline.yaml", str(tmp_path)))
    assert parquet_ids(tmp_path / "out") == list(range(1, 101))


def test_the_trigger_serializes_without_secrets_and_round_trips(tmp_path: Path) -> None:
    from omconnect.runtime.airflow.triggers import OmconnectRunTrigger

    trigger = OmconnectRunTrigger("p.yaml", str(tmp_path), [1], False, 10, 0.5)
    classpath, kwargs = trigger.serialize()
    assert classpath == "omconnect.runtime.airflow.triggers.OmconnectRunTrigger"
    assert OmconnectRunTrigger(**kwargs).serialize() == (classpath, kwargs)
    assert kwargs["tasks"] == [1] and kwargs["until_records"] == 10


def test_connections_and_variables_resolve_as_redacted_secrets(
    airflow_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_AF_REGISTRY", "http://reader:s3cret-pw@registry.test:8081")
    monkeypatch.setenv("AIRFLOW_VAR_AF_OUT", "from-variable/")
    write_csv(tmp_path / "in.csv", 1, 10)
    pipeline = tmp_path / "pipeline.yaml"
    text = CSV_PIPELINE.format(name="af-secrets", out="${airflow_var:af_out}")
    pipeline.write_text(text + "schema_registry: ${airflow:af_registry}\n")
    from omconnect.runtime.airflow.secrets import register_airflow_resolvers

    unregister_resolver("airflow")
    with pytest.raises(
        PipelineConfigError, match=r"pipeline.yaml:7: schema_registry: invalid"
    ) as error:
        load_pipeline(pipeline)
    assert '"airflow:" resolves only where an integration registered it' in str(error.value)
    register_airflow_resolvers()
    loaded = load_pipeline(pipeline)
    assert loaded.config.schema_registry == "http://reader:s3cret-pw@registry.test:8081"
    assert loaded.sink is not None and str(dict(loaded.sink.spec)["path"]) == "from-variable/"
    shown = str(redacted_config(loaded))
    assert "s3cret-pw" not in shown and "***" in shown
    monkeypatch.delenv("AIRFLOW_CONN_AF_REGISTRY")
    with pytest.raises(PipelineConfigError, match=r'cannot resolve "\$\{airflow:af_registry\}"'):
        load_pipeline(pipeline)


def test_the_variable_resolver_works_inside_a_dag_run(
    airflow_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW_VAR_AF_RUN_OUT", "var-out/")
    csv_pipeline(tmp_path, "af-var", 20, out="${airflow_var:af_run_out}")
    dag = operator_dag(airflow_home, "af_var", tmp_path, "")
    assert task_states(dag.test()) == {("run", -1): ("success", 1)}
    assert parquet_ids(tmp_path / "var-out") == list(range(1, 21))


def test_a_resolver_prefix_is_checked_and_can_be_removed() -> None:
    with pytest.raises(ValueError, match="cannot be a reference prefix"):
        register_resolver("file", str)
    register_resolver("omc_test", str.upper)
    assert "omc_test" in registered_prefixes()
    unregister_resolver("omc_test")
    assert "omc_test" not in registered_prefixes()


def test_airflow_lists_omconnect_as_a_provider(airflow_home: Path) -> None:
    from airflow.providers_manager import ProvidersManager

    providers = ProvidersManager().providers
    assert "omconnect" in providers
    info = providers["omconnect"].data
    assert info["operators"][0]["python-modules"] == ["omconnect.runtime.airflow.operators"]
    assert info["triggers"][0]["python-modules"] == ["omconnect.runtime.airflow.triggers"]


def test_the_core_does_not_import_airflow() -> None:
    code = (
        "import sys, omconnect.runtime.worker.runner, omconnect.runtime.config, "
        "omconnect.runtime.cli.main, omconnect.runtime.airflow.provider; "
        "assert 'airflow' not in sys.modules, 'airflow imported'"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr

"""An orchestrated run logs per run, never per batch.

Under Airflow every record goes through its structlog processors and handlers, under Dagster
through its log manager, so a log call on the batch path would cost each batch far more than
on the command line. These tests run a 50-batch pipeline through the Airflow and Dagster entry
points with the root logger at DEBUG and count omconnect's records: as many as for a run of
one batch (none today), whatever the number of batches.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

PIPELINE = """name: logged
source: {{connector: csv, path: in.csv, key: [id], batch_size: {batch_size}}}
batching: {{max_rows: {batch_size}}}
sink: {{connector: parquet, path: out/}}
"""
ROWS = 5_000


def _airflow_run(directory: Path) -> dict[str, Any]:
    from omconnect.runtime.airflow.pipeline_run import RunRequest, run_pipeline

    return run_pipeline(RunRequest("pipeline.yaml", str(directory)))


def _dagster_run(directory: Path) -> dict[str, Any]:
    from omconnect.runtime.dagster.resource import OmconnectResource

    resource = OmconnectResource(working_dir=str(directory))
    summary = resource.run(resource.load("pipeline.yaml"))
    return {"records_written": summary.metrics.rows_written}


def _omconnect_records(
    directory: Path,
    caplog: pytest.LogCaptureFixture,
    run: Callable[[Path], dict[str, Any]],
    batch_size: int,
) -> list[logging.LogRecord]:
    directory.mkdir()
    lines = "".join(f"{i},name{i}\n" for i in range(1, ROWS + 1))
    (directory / "in.csv").write_text("id,name\n" + lines)
    (directory / "pipeline.yaml").write_text(PIPELINE.format(batch_size=batch_size))
    caplog.clear()
    with caplog.at_level(logging.DEBUG):
        summary = run(directory)
    assert summary["records_written"] == ROWS
    return [r for r in caplog.records if r.name.startswith("omconnect")]


@pytest.mark.parametrize("run", [_airflow_run, _dagster_run], ids=["airflow", "dagster"])
def test_an_orchestrated_run_logs_no_record_per_batch_even_at_debug(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, run: Callable[[Path], dict[str, Any]]
) -> None:
    if run is _dagster_run:
        pytest.importorskip("dagster")
    one_batch = _omconnect_records(tmp_path / "one", caplog, run, ROWS)
    fifty_batches = _omconnect_records(tmp_path / "fifty", caplog, run, ROWS // 50)
    assert len(fifty_batches) == len(one_batch), [r.getMessage() for r in fifty_batches]

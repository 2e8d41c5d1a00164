"""Running some of a source's tasks (``omconnect run --task N``, ``PipelineRunner(tasks=...)``):
the tasks of one pipeline run side by side in separate processes, each with its own
positions, while a task runs once at a time and a run of the whole pipeline excludes them."""

from __future__ import annotations

from pathlib import Path

import pyarrow.dataset as ds
import pytest

from omconnect.runtime.config.loader import load_pipeline
from omconnect.runtime.state import PipelineLock, PipelineRunningError
from omconnect.runtime.worker.runner import PipelineRunner, source_task_count
from tests.support.omconnect_process import omconnect, spawn_omconnect
from tests.support.split_source import split_pipeline


@pytest.fixture
def pipeline(tmp_path: Path) -> Path:
    """Two tables of 2,000 rows (ids 1..2000 and 10001..12000), one task each."""
    return split_pipeline(tmp_path)


def delivered_ids(tmp_path: Path) -> list[int]:
    return sorted(ds.dataset(tmp_path / "out", format="parquet").to_table()["id"].to_pylist())


def test_the_source_counts_its_tasks(pipeline: Path) -> None:
    assert source_task_count(load_pipeline(pipeline)) == 2
    with pytest.raises(ValueError, match="has no source task 2: its source splits into 2"):
        PipelineRunner(load_pipeline(pipeline), once=True, tasks=[2])


def test_a_fan_out_runs_the_tasks_side_by_side_then_the_sink_alone(
    tmp_path: Path, pipeline: Path
) -> None:
    """An orchestrator's fan-out: each task publishes in a process of its own (no sink),
    then the sink alone writes what they published; each task keeps its own positions."""
    runs = [
        spawn_omconnect(
            "run", pipeline.name, "--once", "--task", str(task), "--no-sink", cwd=tmp_path
        )
        for task in (0, 1)
    ]
    for process in runs:
        _, stderr = process.communicate(timeout=120)
        assert process.returncode == 0, stderr
        assert "read=2000 published=2000 written=0 " in stderr, stderr
    assert not (tmp_path / "out").exists()
    sink = omconnect("run", pipeline.name, "--once", "--sink-only", cwd=tmp_path)
    assert sink.returncode == 0, sink.stderr
    ids = delivered_ids(tmp_path)
    assert ids == [*range(1, 2_001), *range(10_001, 12_001)]
    # Each task stored its own positions: running one again reads nothing new.
    again = omconnect("run", pipeline.name, "--once", "--task", "1", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "read=0 " in again.stderr
    assert delivered_ids(tmp_path) == ids
    refused = omconnect("run", pipeline.name, "--sink-only", "--task", "1", cwd=tmp_path)
    assert refused.returncode == 2 and "not with --task" in refused.stderr


def test_a_task_runs_once_at_a_time_and_the_whole_pipeline_waits_for_its_tasks(
    tmp_path: Path, pipeline: Path
) -> None:
    state = str(tmp_path / ".omconnect")
    holding = PipelineLock(state, "split", tasks=[1])
    holding.acquire("a test")
    try:
        same = omconnect("run", pipeline.name, "--once", "--task", "1", cwd=tmp_path)
        assert same.returncode == 1
        assert same.stderr.strip().startswith("task 1 of pipeline 'split' is already running")
        whole = omconnect("run", pipeline.name, "--once", cwd=tmp_path)
        assert whole.returncode == 1
        assert whole.stderr.strip().startswith("pipeline 'split' is already running")
        other = omconnect("run", pipeline.name, "--once", "--task", "0", cwd=tmp_path)
        assert other.returncode == 0, other.stderr
    finally:
        holding.release()
    assert delivered_ids(tmp_path) == list(range(1, 2_001))
    with pytest.raises(PipelineRunningError):
        whole_lock = PipelineLock(state, "split")
        whole_lock.acquire("a test")
        try:
            PipelineLock(state, "split", tasks=[0]).acquire("another test")
        finally:
            whole_lock.release()

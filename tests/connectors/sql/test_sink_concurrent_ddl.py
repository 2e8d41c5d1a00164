"""Two sql sink tasks writing one table, each in its own process with its own connections,
create and evolve it at the same moment on every dialect: both succeed, every column exists
once, and every row of both is in the table.

Processes, not threads: the sink writes SQLite through ADBC's own copy of the SQLite library
and reflects through Python's, and POSIX file locks belong to a process, so two copies of the
library in one process do not see each other's locks; tasks on two threads of one process
would not be kept apart as tasks in two processes are. The tasks meet at a
``multiprocessing`` barrier (the process form of ``threading.Barrier``) before each flush, so
both find the new column missing at once."""

from __future__ import annotations

import multiprocessing
import queue
from typing import Any

import pyarrow as pa
import pytest

from omconnect.runtime.testing import SinkDriver, sink_batches
from tests.support.omconnect_process import REPO
from tests.support.sql_databases import SqlDatabase

from .sink_fixtures import read_table, sink_config

TASKS = 2
ROUNDS = 5
ROWS = 200
TOPIC = "events"
WAIT = 120.0
POSITION_COLUMNS = ["__omconnect_offset", "__omconnect_topic_partition"]


def step_rows(task: int, step: int) -> pa.Table:
    """The rows task ``task`` writes at ``step``: step 0 creates the table (``id``,
    ``task``); each later step ``s`` brings the new nullable column ``c{s}`` (text for odd
    ``s``, integers for even), beside the columns of the steps before."""
    ids = [task * 1_000_000 + step * 1_000 + i for i in range(ROWS)]
    columns: dict[str, pa.Array] = {
        "id": pa.array(ids, pa.int64()),
        "task": pa.array([task] * ROWS, pa.int64()),
    }
    for s in range(1, step + 1):
        columns[f"c{s}"] = pa.array([expected_value(i, s) for i in ids])
    return pa.table(columns)


def expected_value(row_id: int, column: int) -> Any:
    return f"{row_id}-{column}" if column % 2 else row_id * column


def write_steps(config: dict[str, Any], task: int, barrier: Any, failures: Any) -> None:
    """One sink task (run in a process of its own): start at the barrier with the other
    task, then for each step put its rows, meet the other task at the barrier, and flush.
    A failure goes to ``failures`` as one line and breaks the barrier (the other task then
    reports a ``BrokenBarrierError``)."""
    try:
        barrier.wait(WAIT)
        sink = SinkDriver("sql", config)
        try:
            for step in range(ROUNDS + 1):
                batches = sink_batches(
                    step_rows(task, step),
                    topic=TOPIC,
                    partition=task,
                    first_offset=step * ROWS,
                    batch_rows=ROWS,
                )
                sink.put_all(batches)
                barrier.wait(WAIT)
                sink.flush(batches)
        finally:
            sink.stop()
    except BaseException as error:
        barrier.abort()
        failures.put(f"task {task}: {type(error).__name__}: {error}")


def run_tasks(config: dict[str, Any]) -> list[str]:
    """Run ``TASKS`` sink tasks in processes of their own; the failures they report."""
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(TASKS)
    failures = context.Queue()
    processes = [
        context.Process(target=write_steps, args=(config, task, barrier, failures))
        for task in range(TASKS)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(WAIT * (ROUNDS + 2))
    reported = []
    while True:
        try:
            reported.append(failures.get(timeout=1))
        except queue.Empty:
            break
    for task, process in enumerate(processes):
        if process.is_alive():
            process.kill()
            reported.append(f"task {task}: still running after {WAIT * (ROUNDS + 2):.0f} s")
        elif process.exitcode and not reported:
            reported.append(f"task {task}: exited with {process.exitcode}")
    return reported


def test_two_tasks_create_and_evolve_one_table_at_the_same_moment(
    sql_database: SqlDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(REPO))  # the spawned processes import this module
    failures = run_tasks(sink_config(sql_database))
    assert failures == [], "\n".join(failures)

    table = read_table(sql_database)
    added_in = range(1, ROUNDS + 1)  # step s added column c{s}
    added = [f"c{s}" for s in added_in]
    assert sorted(table.column_names) == sorted(["id", "task", *added, *POSITION_COLUMNS])
    rows = {row["id"]: row for row in table.to_pylist()}
    assert len(rows) == table.num_rows == TASKS * (ROUNDS + 1) * ROWS, "rows are missing"
    for task in range(TASKS):
        for step in range(ROUNDS + 1):
            for row_id in step_rows(task, step).column("id").to_pylist():
                row = rows[row_id]
                assert row["task"] == task
                got = [row[f"c{s}"] for s in range(1, ROUNDS + 1)]
                want = [expected_value(row_id, s) if s <= step else None for s in added_in]
                assert got == want, f"row {row_id} of task {task}, step {step}"

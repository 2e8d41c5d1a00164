"""``broker: none``: the sink takes the source's rows in the same process, with no topic.

What a user of dlt or sling expects of a table or file landed as Parquet: the rows arrive
whole, nothing is written besides the output and the positions, a second run appends what is
new without touching the files of the first, and the sink is never behind what the source
says it delivered. Crashes (SIGKILL at random moments, SIGTERM) are in
``tests/e2e/test_crash_recovery.py``, dead letters in ``tests/e2e/test_dead_letters.py``.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from omconnect.runtime.brokers.direct import sink_namespace
from omconnect.runtime.brokers.embedded import LOG_FILE_NAME
from omconnect.runtime.config.loader import load_pipeline
from omconnect.runtime.config.problems import PipelineConfigError
from omconnect.runtime.state.backends import open_pipeline_offset_store
from omconnect.runtime.worker.runner import PipelineRunner
from tests.support.omconnect_process import omconnect
from tests.support.toy_connectors import COLLECTED
from tests.worker.conftest import run_pipeline


def write_csv(path: Path, first: int, count: int) -> None:
    ids = np.arange(first, first + count, dtype=np.int64)
    pacsv.write_csv(pa.table({"id": ids, "name": np.char.add("n", ids.astype(str))}), path)


def landing(tmp_path: Path, extra: str = "") -> str:
    return (
        f"name: land\nbroker: none\nstate: {tmp_path}/state\n"
        f"source: {{connector: csv, path: '{tmp_path}/in/*.csv', batch_size: 1000}}\n"
        f"sink: {{connector: parquet, path: '{tmp_path}/out/'}}\n"
        "tasks: 2\n" + extra
    )


def parquet_files(out: Path) -> dict[str, list[int]]:
    return {
        p.name: pq.read_table(p).column("id").to_pylist()
        for p in sorted(out.iterdir())
        if not p.name.startswith(".")
    }


def test_rows_land_whole_and_a_second_run_appends_without_touching_the_first(
    tmp_path: Path,
) -> None:
    (tmp_path / "in").mkdir()
    write_csv(tmp_path / "in" / "a.csv", 0, 5000)
    write_csv(tmp_path / "in" / "b.csv", 5000, 5000)
    metrics = run_pipeline(tmp_path / "p.yaml", landing(tmp_path))
    assert metrics.rows_written == 10_000
    first = parquet_files(tmp_path / "out")
    assert sorted(i for ids in first.values() for i in ids) == list(range(10_000))
    # Nothing went through a broker: no embedded log in the state directory.
    assert not (tmp_path / "state" / LOG_FILE_NAME).exists()

    write_csv(tmp_path / "in" / "c.csv", 10_000, 3000)
    run_pipeline(tmp_path / "p.yaml", landing(tmp_path))
    second = parquet_files(tmp_path / "out")
    for name, ids in first.items():
        assert second[name] == ids, f"{name} changed by the second run"
    new = sorted(i for name, ids in second.items() if name not in first for i in ids)
    assert new == list(range(10_000, 13_000)), "the second run delivers only the new file"

    listed = omconnect("offsets", "list", str(tmp_path / "p.yaml"), cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    sink = [e for e in map(json.loads, listed.stdout.splitlines()) if e["kind"] == "sink"]
    assert sink == [
        {
            "kind": "sink",
            "partition": {"topic": "land", "partition": 0},
            "offset": {"offset": 13_000},
        }
    ]


def test_a_small_in_flight_budget_makes_the_sink_commit_rather_than_stall(tmp_path: Path) -> None:
    """The source's sends are acknowledged by the sink's commits: with a budget far below the
    input, the sink must commit when it holds half of it, not wait for commit_interval."""
    (tmp_path / "in").mkdir()
    write_csv(tmp_path / "in" / "a.csv", 0, 200_000)
    text = landing(
        tmp_path,
        "batching: {max_rows: 5000}\nmax_in_flight_bytes: 256KiB\ncommit_interval: 10m\n",
    )
    metrics = run_pipeline(tmp_path / "p.yaml", text, timeout=60)
    assert metrics.rows_written == 200_000
    assert metrics.sink_commits > 5, metrics.sink_commits
    files = parquet_files(tmp_path / "out")
    assert sorted(i for ids in files.values() for i in ids) == list(range(200_000))


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ("sink", "needs both a source and a sink"),
        ("exactly_once: true", "exactly_once does not apply with broker: none"),
        ("format: json", "format does not apply with broker: none"),
        ("partitions: 3", "partitions does not apply with broker: none"),
        ("offsets: broker", "offsets: broker needs a broker"),
        ("state: postgresql://localhost/test", "keeps dead letters in the embedded broker"),
    ],
)
def test_what_needs_a_broker_is_refused_before_anything_runs(
    tmp_path: Path, change: str, expected: str
) -> None:
    text = landing(tmp_path)
    if change == "sink":
        text = "\n".join(line for line in text.splitlines() if not line.startswith("sink:"))
    elif change.startswith("state:"):
        text = text.replace(f"state: {tmp_path}/state", change)
    else:
        text += change + "\n"
    (tmp_path / "p.yaml").write_text(text)
    with pytest.raises(PipelineConfigError) as refused:
        load_pipeline(tmp_path / "p.yaml")
    assert expected in str(refused.value)


def to_sqlite(tmp_path: Path) -> str:
    """``landing`` into a table of SQLite through the sql sink, which stores its positions."""
    return landing(tmp_path).replace(
        f"sink: {{connector: parquet, path: '{tmp_path}/out/'}}",
        f"sink: {{connector: sql, url: 'sqlite:///{tmp_path}/t.db', table: t, create: true}}",
    )


def sqlite_ids(tmp_path: Path) -> list[int]:
    with sqlite3.connect(tmp_path / "t.db") as connection:
        return sorted(row[0] for row in connection.execute("SELECT id FROM t"))


def sqlite_positions(tmp_path: Path) -> list[tuple[str, int]]:
    with sqlite3.connect(tmp_path / "t.db") as connection:
        query = "SELECT topic, next_offset FROM omconnect_sink_positions"
        return sorted(connection.execute(query).fetchall())


def test_a_sink_that_stores_its_own_positions_lands_rows_and_resumes(tmp_path: Path) -> None:
    """A table into a table (the sql sink) without a broker: the rows land once, the sink's
    positions table and the offset store agree, and a second run adds only what is new."""
    (tmp_path / "in").mkdir()
    write_csv(tmp_path / "in" / "a.csv", 0, 5000)
    write_csv(tmp_path / "in" / "b.csv", 5000, 5000)
    run_pipeline(tmp_path / "p.yaml", to_sqlite(tmp_path))
    assert sqlite_ids(tmp_path) == list(range(10_000))
    assert sqlite_positions(tmp_path) == [("land", 10_000)]

    write_csv(tmp_path / "in" / "c.csv", 10_000, 3000)
    run_pipeline(tmp_path / "p.yaml", to_sqlite(tmp_path))
    assert sqlite_ids(tmp_path) == list(range(13_000))
    assert sqlite_positions(tmp_path) == [("land", 13_000)]


def test_rows_sent_before_the_sink_numbered_its_topic_land_in_the_same_run(
    tmp_path: Path,
) -> None:
    """A few rows are sent before the sink has started and numbered the topic from its
    positions: the sink still ends after them, not at the topic's end before they came."""
    (tmp_path / "in").mkdir()
    write_csv(tmp_path / "in" / "a.csv", 0, 3)
    for run in (1, 2):
        run_pipeline(tmp_path / "p.yaml", to_sqlite(tmp_path))
        assert sqlite_ids(tmp_path) == list(range(3 * run)), f"run {run}"
        assert sqlite_positions(tmp_path) == [("land", 3 * run)]
        if run == 1:
            write_csv(tmp_path / "in" / "b.csv", 3, 3)


def test_rows_are_numbered_from_the_sink_positions_when_the_offset_store_is_behind(
    tmp_path: Path,
) -> None:
    """A crash after the sink's transaction and before the offset store kept its commit
    leaves the offset store behind the sink's own positions. Numbered from the offset store,
    the rows read next would get numbers the sink already stored and be skipped: lost. They
    are numbered from the sink's positions instead, and land."""
    (tmp_path / "in").mkdir()
    write_csv(tmp_path / "in" / "a.csv", 0, 10_000)
    run_pipeline(tmp_path / "p.yaml", to_sqlite(tmp_path))
    store = open_pipeline_offset_store(tmp_path / "state")
    try:
        assert store.delete(sink_namespace("land")) == 1  # the commit the crash lost
    finally:
        store.close()

    write_csv(tmp_path / "in" / "b.csv", 10_000, 3000)
    run_pipeline(tmp_path / "p.yaml", to_sqlite(tmp_path))
    assert sqlite_ids(tmp_path) == list(range(13_000)), "rows read after the crash were lost"
    assert sqlite_positions(tmp_path) == [("land", 13_000)]


def test_a_run_of_the_source_alone_is_refused(tmp_path: Path) -> None:
    """An orchestrator's fan-out runs source tasks without the sink: impossible without a
    broker to hold what they read."""
    (tmp_path / "in").mkdir()
    write_csv(tmp_path / "in" / "a.csv", 0, 10)
    (tmp_path / "p.yaml").write_text(landing(tmp_path))
    runner = PipelineRunner(load_pipeline(tmp_path / "p.yaml"), once=True, sink=False)
    with pytest.raises(ValueError, match="cannot run one without the other"):
        asyncio.run(runner.run())


def test_rewinding_the_sink_is_refused_with_what_to_do_instead(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(landing(tmp_path))
    reset = omconnect("offsets", "reset", str(tmp_path / "p.yaml"), "--sink", cwd=tmp_path)
    assert reset.returncode == 2
    assert "resetting the source's positions is what delivers the rows again" in reset.stderr


def test_streams_deletes_keys_and_ids_reach_the_sink_as_through_a_topic(tmp_path: Path) -> None:
    text = (
        f"name: toy\nbroker: none\nstate: {tmp_path}/s\n"
        "source: {connector: toy-streams, streams: [a, b], rows: 6, deletes: [2, 5]}\n"
        "sink: {connector: toy-collect}\n"
    )
    run_pipeline(tmp_path / "p.yaml", text)
    rows = COLLECTED["default"].rows
    assert {r["topic"] for r in rows} == {"toy.a", "toy.b"}
    for topic in ("toy.a", "toy.b"):
        mine = [r for r in rows if r["topic"] == topic]
        assert sorted(r["key"] for r in mine if r["deleted"]) == ["k2", "k5"]
        assert sorted(r["id"] for r in mine if not r["deleted"]) == [0, 1, 3, 4]
    assert all(r["message_id"] for r in rows), "every row carries its message id"
    assert len({r["message_id"] for r in rows}) == len(rows)
    key_schemas = {r["key_schema"] for r in rows}
    assert None not in key_schemas and [f.name for f in key_schemas.pop().fields] == ["key"]


def test_a_sink_that_leaves_rows_not_durable_fails_the_run_instead_of_hanging(
    tmp_path: Path,
) -> None:
    """The sources' sends wait for the sink's commits: a sink whose last flush keeps some of
    what it was given from being durable would leave them waiting for ever."""
    text = (
        f"name: toy\nbroker: none\nstate: {tmp_path}/s\n"
        "source: {connector: toy-streams, rows: 10}\n"
        "sink: {connector: toy-collect, durable_every: 4}\n"
    )
    with pytest.raises(Exception, match=r"left 2 row\(s\) it was given not durable"):
        run_pipeline(tmp_path / "p.yaml", text, timeout=30)


def test_rows_for_a_topic_the_sink_does_not_read_fail_the_run_with_its_name(
    tmp_path: Path,
) -> None:
    """A batch with a topic of its own (a heartbeat topic) has nowhere to go without a broker:
    refused at once, not left waiting for a sink that never reads it."""
    text = (
        f"name: toy\nbroker: none\nstate: {tmp_path}/s\n"
        "source: {connector: toy-streams, rows: 10, absolute_topic: beats}\n"
        "sink: {connector: toy-collect}\n"
    )
    with pytest.raises(ValueError, match="rows for topic 'beats', which the sink does not read"):
        run_pipeline(tmp_path / "p.yaml", text, timeout=30)

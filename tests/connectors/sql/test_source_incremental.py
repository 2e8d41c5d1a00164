"""Incremental reads at the boundary, on every dialect: rows sharing a cursor value, a late
commit behind the position, and writers inserting while the source reads; the lag of a time
cursor (PostgreSQL, MariaDB); and ``omconnect run`` running continuously (PostgreSQL)."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from omconnect.connectors.sql._incremental import MAX_BOUNDARY_KEYS
from omconnect.runtime.testing import MemoryOffsetReader, SourceDriver
from tests.support.failing_pipeline import topic_messages
from tests.support.omconnect_process import spawn_omconnect, tail_topic
from tests.support.sql_databases import SqlDatabase


def events_table(database: SqlDatabase, autoincrement: bool = False) -> sa.Table:
    table = sa.Table(
        "events",
        database.metadata(),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=autoincrement),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("body", sa.String(32)),
    )
    table.create(database.engine)
    return table


def insert(database: SqlDatabase, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    with database.engine.begin() as connection:
        connection.execute(table.insert(), rows)


def write_sqlite_in_another_process(database: SqlDatabase, tag: str) -> None:
    """Five rows in one transaction from another process: two SQLite libraries in one
    process (Python's and the ADBC driver's) would break each other's file locks."""
    path = database.url.removeprefix("sqlite:///")
    script = (
        "import sqlite3, sys; c = sqlite3.connect(sys.argv[1], timeout=30); "
        "c.executemany('INSERT INTO events (seq, body) VALUES (0, ?)', [(sys.argv[2],)] * 5); "
        "c.commit()"
    )
    subprocess.run([sys.executable, "-c", script, path, tag], check=True, timeout=60)


def written(database: SqlDatabase, table: sa.Table) -> int:
    with database.engine.connect() as connection:
        return int(connection.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def run_once(database: SqlDatabase, offsets: MemoryOffsetReader, **options: Any) -> list[int]:
    """One ``run --once`` of the source: every id read, positions committed."""
    config = {"url": database.url, "tables": [database.table("events")], **options}
    source = SourceDriver("sql", {"mode": "incremental", "cursor": "seq", **config}, offsets)
    ids: list[int] = []
    for batch in source.read_to_end():
        ids.extend(batch.values.column("id").to_pylist())
        source.commit(batch.positions)
    source.stop()
    return ids


def test_rows_sharing_the_boundary_cursor_value_are_read_once(sql_database: SqlDatabase) -> None:
    table = events_table(sql_database)
    insert(sql_database, table, [{"id": i, "seq": 1 + i // 50, "body": "a"} for i in range(120)])
    offsets = MemoryOffsetReader()
    first = run_once(sql_database, offsets, chunk_size=7)
    assert sorted(first) == list(range(120))
    # More rows at the last cursor value (3), as a writer that commits later would add.
    insert(sql_database, table, [{"id": 500 + i, "seq": 3, "body": "late"} for i in range(10)])
    insert(sql_database, table, [{"id": 600, "seq": 4, "body": "new"}])
    second = run_once(sql_database, offsets, chunk_size=7)
    assert sorted(second) == [*range(500, 510), 600]
    assert run_once(sql_database, offsets, chunk_size=7) == []


def test_a_crowded_cursor_value_keeps_positions_small_and_reads_each_row_once(
    sql_database: SqlDatabase,
) -> None:
    """5,000 rows share one cursor value (a bulk load's timestamp): positions hold the last
    key there instead of 5,000 keys, every row is read once across runs, and the read goes
    on normally once the cursor moves on."""
    crowd = MAX_BOUNDARY_KEYS * 5
    table = events_table(sql_database)
    insert(sql_database, table, [{"id": i, "seq": 7, "body": "bulk"} for i in range(crowd)])
    offsets = MemoryOffsetReader()
    config = {"url": sql_database.url, "tables": [sql_database.table("events")]}
    source = SourceDriver(
        "sql", {"mode": "incremental", "cursor": "seq", "chunk_size": 700, **config}, offsets
    )
    ids: list[int] = []
    for index, batch in enumerate(source.read_to_end()):
        ids.extend(batch.values.column("id").to_pylist())
        if index < 3:  # a run that stops after three batches
            source.commit(batch.positions)
        for mark in batch.marks:
            assert len(mark.position.offset["keys"]) <= MAX_BOUNDARY_KEYS
    source.stop()
    assert sorted(ids) == list(range(crowd))
    resumed = run_once(sql_database, offsets, chunk_size=700)
    assert sorted(resumed) == list(range(2100, crowd)), "resumed after the third batch"
    (_, offset), *_ = offsets.all()
    assert offset["after_key"] == [crowd - 1] and offset["keys"] == []
    insert(
        sql_database, table, [{"id": crowd + i, "seq": 8 + i % 2, "body": "n"} for i in range(5)]
    )
    assert sorted(run_once(sql_database, offsets, chunk_size=700)) == list(range(crowd, crowd + 5))
    assert run_once(sql_database, offsets, chunk_size=700) == []


def test_a_late_commit_within_the_lag_is_read(sql_database: SqlDatabase) -> None:
    table = events_table(sql_database)
    insert(sql_database, table, [{"id": i, "seq": i, "body": "a"} for i in range(1, 101)])
    offsets = MemoryOffsetReader()
    late = sql_database.engine.connect()
    transaction = late.begin()
    # Took its cursor value (101) first, commits after the others and after a read.
    late.execute(table.insert(), [{"id": 101, "seq": 101, "body": "late"}])
    if sql_database.dialect == "sqlite":  # one writer at a time: commit it, read around it
        transaction.commit()
        late.close()
        sql_database.execute("DELETE FROM events WHERE id = 101")
    insert(sql_database, table, [{"id": i, "seq": i, "body": "b"} for i in range(102, 111)])
    first = run_once(sql_database, offsets, lag=10)
    assert sorted(first) == list(range(1, 101)), "the lag holds back the newest 10 values"
    if sql_database.dialect == "sqlite":
        insert(sql_database, table, [{"id": 101, "seq": 101, "body": "late"}])
    else:
        transaction.commit()
        late.close()
    insert(sql_database, table, [{"id": i, "seq": i, "body": "c"} for i in range(111, 121)])
    second = run_once(sql_database, offsets, lag=10)
    assert sorted(second) == list(range(101, 111)), "the late row is read, nothing twice"


def test_concurrent_writers_lose_and_repeat_nothing(sql_database: SqlDatabase) -> None:
    """Writers insert (cursor = the id the database's sequence gives them, committed in
    any order) while the source reads run after run; every row at or below the final upper
    bound is delivered exactly once."""
    table = events_table(sql_database, autoincrement=True)
    stop = threading.Event()
    errors: list[BaseException] = []

    def writer(tag: str) -> None:
        try:
            while not stop.is_set():
                if sql_database.dialect == "sqlite":
                    write_sqlite_in_another_process(sql_database, tag)
                    continue
                with sql_database.engine.begin() as connection:
                    for _ in range(5):
                        connection.execute(table.insert().values(seq=0, body=tag))
        except BaseException as error:  # reported by the test below
            errors.append(error)

    lag = 50
    threads = [threading.Thread(target=writer, args=(f"w{n}",)) for n in range(2)]
    offsets = MemoryOffsetReader()
    delivered: list[int] = []
    for thread in threads:
        thread.start()
    try:
        deadline = time.monotonic() + 120
        runs = 0
        while runs < 8 or (written(sql_database, table) < 300 and time.monotonic() < deadline):
            time.sleep(0.2)
            runs += 1
            delivered.extend(run_once(sql_database, offsets, lag=lag, chunk_size=50, cursor="id"))
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert not errors, errors
    delivered.extend(run_once(sql_database, offsets, lag=lag, chunk_size=50, cursor="id"))
    with sql_database.engine.connect() as connection:
        top = connection.execute(sa.select(sa.func.max(table.c.id))).scalar_one()
        expected = connection.execute(sa.select(table.c.id).where(table.c.id <= top - lag))
        expected_ids = sorted(expected.scalars())
    repeated = [i for i, n in Counter(delivered).items() if n > 1]
    assert not repeated, f"rows delivered twice: {repeated[:10]}"
    assert sorted(delivered) == expected_ids
    assert len(expected_ids) > 100, "the writers wrote too little to test anything"


TIME_COLUMNS = [
    ("postgresql", "timestamptz", "now()"),
    ("postgresql", "timestamp", "localtimestamp"),
    ("mysql", "DATETIME(6)", "NOW(6)"),
    ("mysql", "TIMESTAMP(6)", "NOW(6)"),
]


@pytest.mark.parametrize(
    ("sql_database", "column_type", "now"),
    TIME_COLUMNS,
    indirect=["sql_database"],
    ids=[f"{d}-{c}" for d, c, _ in TIME_COLUMNS],
)
def test_the_lag_of_a_time_cursor_holds_back_rows_newer_than_now_minus_lag(
    sql_database: SqlDatabase, column_type: str, now: str
) -> None:
    """With a timestamp cursor the upper bound is the database's now() - lag: a row stamped
    just now waits for a read after the lag has passed; older rows are read at once."""
    events = sql_database.table("events")
    interval = (
        "INTERVAL '1 minute'" if sql_database.dialect == "postgresql" else "INTERVAL 1 MINUTE"
    )
    sql_database.execute(
        f"CREATE TABLE {events} (id integer PRIMARY KEY, at {column_type} NOT NULL)",
        f"INSERT INTO {events} VALUES (1, {now} - {interval}), (2, {now} - {interval})",
        f"INSERT INTO {events} VALUES (3, {now})",
    )
    offsets = MemoryOffsetReader()
    lag = 3.0
    started = time.monotonic()
    first = run_once(sql_database, offsets, cursor="at", lag=lag)
    assert time.monotonic() - started < lag, "the read was too slow for the test to mean much"
    assert sorted(first) == [1, 2], "the row stamped just now is newer than now() - lag"
    time.sleep(lag + 0.5)
    assert run_once(sql_database, offsets, cursor="at", lag=lag) == [3]
    assert run_once(sql_database, offsets, cursor="at", lag=lag) == []


def test_a_continuous_run_delivers_new_rows_and_stops_on_sigterm(
    postgres_database: SqlDatabase, tmp_path: Path
) -> None:
    """``omconnect run`` without ``--once``: rows inserted while it runs reach the topic
    within a few seconds (``poll_interval``), and SIGTERM ends it with exit status 0."""
    table = events_table(postgres_database)
    insert(postgres_database, table, [{"id": i, "seq": i, "body": "a"} for i in range(1, 11)])
    (tmp_path / "p.yaml").write_text(
        textwrap.dedent(
            f"""\
            name: continuous
            source:
              connector: sql
              url: {postgres_database.url}
              tables: ["{postgres_database.table("events")}"]
              mode: incremental
              cursor: seq
              poll_interval: 0.5
            topic: continuous
            commit_interval: 0.2
            """
        )
    )
    topic = f"continuous.{postgres_database.table('events')}"
    run = spawn_omconnect("run", "p.yaml", cwd=tmp_path)
    try:
        wait_for_messages(run, tmp_path, topic, 10)
        for n in range(3):  # three more writes, each seen while the run goes on
            first = 11 + 5 * n
            rows = [{"id": i, "seq": i, "body": "b"} for i in range(first, first + 5)]
            insert(postgres_database, table, rows)
            wait_for_messages(run, tmp_path, topic, first + 4)
        assert run.poll() is None, "the run ended by itself: " + (
            run.stderr.read() if run.stderr else ""
        )
        run.send_signal(signal.SIGTERM)
        code = run.wait(timeout=30)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait(timeout=30)
    assert code == 0, run.stderr.read() if run.stderr else ""
    ids = [m["value"]["id"] for m in tail_topic(topic, tmp_path)]
    assert sorted(ids) == list(range(1, 26))


def wait_for_messages(
    run: subprocess.Popen[str], cwd: Path, topic: str, count: int, within: float = 15.0
) -> None:
    deadline = time.monotonic() + within
    seen = 0
    while time.monotonic() < deadline:
        assert run.poll() is None, "the run stopped: " + (run.stderr.read() if run.stderr else "")
        if (cwd / ".omconnect" / "broker.sqlite").exists():
            seen = topic_messages(cwd, topic)
            if seen >= count:
                return
        time.sleep(0.3)
    raise AssertionError(f"{seen} of {count} messages on {topic} after {within} s")

"""Incremental reads at the boundary, on every dialect: rows sharing a cursor value, a late
commit behind the position, and writers inserting while the source reads."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections import Counter
from typing import Any

import sqlalchemy as sa

from omconnect.runtime.testing import MemoryOffsetReader, SourceDriver
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

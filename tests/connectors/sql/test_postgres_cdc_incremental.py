"""Incremental snapshots of the ``postgres-cdc`` source through its signal table, against the
machine's PostgreSQL: chunks read while streaming goes on, streamed changes winning over
stale chunk rows (a consumer applying the events rebuilds the table exactly, with writers
busy throughout), progress kept across runs, bad signals ignored."""

from __future__ import annotations

import json
import random
import threading
import time
from typing import Any

import sqlalchemy as sa

from omconnect.runtime.testing import MemoryOffsetReader, SourceDriver
from tests.connectors.sql import test_postgres_cdc
from tests.connectors.sql.test_postgres_cdc import Cdc, Pipeline, apply_debezium, table_rows

cdc = test_postgres_cdc.cdc  # the fixture: a schema, a slot name, a pipeline folder

SIGNALS = "omconnect_signal"


def signal(cdc: Cdc, ident: str, kind: str, data: Any) -> None:
    text = data if isinstance(data, str) else json.dumps(data)
    with cdc.database.engine.begin() as connection:
        connection.execute(
            sa.text(f'INSERT INTO "{cdc.schema}".{SIGNALS} (id, type, data) VALUES (:i, :t, :d)'),
            {"i": ident, "t": kind, "d": text},
        )


def snapshot_table(cdc: Cdc, rows: int) -> None:
    cdc.database.execute(
        f'CREATE TABLE "{cdc.schema}".items (id int PRIMARY KEY, v text, n int)',
        f"INSERT INTO \"{cdc.schema}\".items SELECT i, 'v' || i, 0 "
        f"FROM generate_series(1, {rows}) i",
    )


def test_a_signal_reads_the_table_again_in_chunks(cdc: Cdc) -> None:
    snapshot_table(cdc, 25)
    cdc.pipeline(
        ["items"],
        snapshot="never",
        signal_table=f"{cdc.schema}.{SIGNALS}",
        incremental_chunk_size=10,
    )
    cdc.run_once()  # the slot and the signal table
    assert cdc.events("items") == [], "snapshot: never reads nothing at first"
    signal(cdc, "s-1", "execute-snapshot", {"data-collections": [f"{cdc.schema}.items"]})
    ran = cdc.run_once()
    events = cdc.events("items")
    assert sorted(e["key"]["id"] for e in events) == list(range(1, 26))
    assert {e["value"]["op"] for e in events} == {"r"}
    assert {e["value"]["source"]["snapshot"] for e in events} == {"incremental"}
    assert "incremental snapshot of" in ran.stderr
    cdc.run_once()
    assert len(cdc.events("items")) == 25, "a finished snapshot is not read again"


def test_streamed_changes_win_over_chunk_rows_while_writers_run(cdc: Cdc) -> None:
    """Writers update, delete and insert rows throughout an incremental snapshot read in
    chunks of 50: applying the topic's events in order gives the table exactly."""
    rows = 3000
    snapshot_table(cdc, rows)
    cdc.pipeline(
        ["items"],
        snapshot="never",
        signal_table=f"{cdc.schema}.{SIGNALS}",
        incremental_chunk_size=50,
        heartbeat_interval=1,
    )
    cdc.run_once()
    stop = threading.Event()
    written = [0]

    def write() -> None:
        rng = random.Random(7)
        next_id = rows + 1
        with cdc.database.engine.connect() as connection:
            while not stop.is_set():
                choice = rng.random()
                key = rng.randint(1, next_id)
                if choice < 0.6:
                    statement = f'UPDATE "{cdc.schema}".items SET n = n + 1 WHERE id = {key}'
                elif choice < 0.8:
                    statement = f'DELETE FROM "{cdc.schema}".items WHERE id = {key}'
                else:
                    statement = f"INSERT INTO \"{cdc.schema}\".items VALUES ({next_id}, 'new', 0)"
                    next_id += 1
                connection.execute(sa.text(statement))
                connection.commit()
                written[0] += 1

    with Pipeline(cdc) as running:
        writers = [threading.Thread(target=write)]
        for thread in writers:
            thread.start()
        try:
            time.sleep(0.5)
            signal(cdc, "s-1", "execute-snapshot", {"data-collections": [f"{cdc.schema}.items"]})
            running.wait_until(
                lambda: (
                    "incremental snapshot of" in running.stderr() and "done" in running.stderr()
                ),
                120,
                "the incremental snapshot to finish",
            )
        finally:
            stop.set()
            for thread in writers:
                thread.join()
        assert written[0] > 100, "the writers hardly ran"
        marker = f"INSERT INTO \"{cdc.schema}\".items VALUES (-1, 'last', 0)"
        cdc.database.execute(marker)
        running.wait_until(
            lambda: any(e["key"] == {"id": -1} for e in cdc.events("items")),
            60,
            "the last insert to arrive",
        )
    events = cdc.events("items")
    reads = [e for e in events if e["value"] and e["value"]["op"] == "r"]
    assert len(reads) > rows // 2, "the snapshot read the table"
    expected = table_rows(cdc.database, "items", "id")
    assert apply_debezium(events, "id") == expected


def test_progress_survives_a_new_task_and_bad_signals_are_ignored(cdc: Cdc) -> None:
    snapshot_table(cdc, 100)
    config = {
        "url": cdc.database.url,
        "tables": [f"{cdc.schema}.items"],
        "slot": cdc.slot,
        "snapshot": "never",
        "signal_table": f"{cdc.schema}.{SIGNALS}",
        "incremental_chunk_size": 30,
    }
    SourceDriver("postgres-cdc", config).stop()  # the slot and the signal table
    signal(cdc, "bad", "execute-snapshot", "{not json")
    signal(cdc, "odd", "resnap-everything", "{}")
    signal(cdc, "s-1", "execute-snapshot", {"data-collections": [f"{cdc.schema}.items"]})
    offsets = MemoryOffsetReader()

    def read_ids(batches: list[Any]) -> list[int]:
        return [k["id"] for b in batches if b.keys is not None for k in b.keys.to_pylist()]

    first = SourceDriver("postgres-cdc", config, offsets)
    read: list[int] = []
    try:
        while len(read) < 30:  # the first chunk
            polled = first.poll()
            if polled is None:
                continue
            read += read_ids(polled)
            for batch in polled:
                first.commit(batch.positions)
    finally:
        first.stop()
    assert len(read) < 100
    second = SourceDriver("postgres-cdc", config, offsets)
    try:
        rest = read_ids(second.read_to_end())
    finally:
        second.stop()
    assert sorted(set(read) | set(rest)) == list(range(1, 101))
    assert len(rest) <= 100 - 30, "the second task read on from the first's progress"

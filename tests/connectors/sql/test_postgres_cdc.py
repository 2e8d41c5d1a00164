"""The ``postgres-cdc`` source against the machine's PostgreSQL (``wal_level = logical``):
snapshot then stream, Debezium's envelope read back and applied by a consumer that knows only
Debezium's event format, resume without loss after SIGKILL inside a large transaction, TOAST,
schema changes, and one-line errors."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa

from omconnect.connectors.sql._pgoutput import format_lsn
from omconnect.runtime.testing import MemoryOffsetReader, SourceDriver
from tests.support.failing_pipeline import topic_messages
from tests.support.omconnect_process import omconnect, tail_topic
from tests.support.served_worker import wait_until
from tests.support.sql_databases import POSTGRES_URL, SqlDatabase, drop_replication_slot

LOGICAL = (
    "PostgreSQL on 127.0.0.1:5432 has wal_level = {level}; the postgres-cdc tests need "
    'logical: run `psql -h 127.0.0.1 -U postgres -c "ALTER SYSTEM SET wal_level = logical"` '
    "and `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main restart` "
    "(.ci/run does both)"
)


@dataclass
class Cdc:
    """One test's database schema, slot and pipeline folder."""

    database: SqlDatabase
    slot: str
    folder: Path

    @property
    def schema(self) -> str:
        return self.database.schema

    def topic(self, table: str) -> str:
        return f"cdc.{self.schema}.{table}"

    def pipeline(self, tables: list[str], **options: Any) -> Path:
        lines = [
            "name: cdc-test",
            "source:",
            "  connector: postgres-cdc",
            f"  url: {self.database.url}",
            f"  tables: [{', '.join(f'{self.schema}.{t}' for t in tables)}]",
            f"  slot: {self.slot}",
            *(f"  {key}: {json.dumps(value)}" for key, value in options.items()),
            "topic: cdc",
        ]
        path = self.folder / "cdc.yaml"
        path.write_text("\n".join(lines) + "\n")
        return path

    def run_once(self) -> subprocess.CompletedProcess[str]:
        ran = omconnect("run", "cdc.yaml", "--once", cwd=self.folder, timeout=180)
        assert ran.returncode == 0, ran.stderr
        return ran

    def events(self, table: str) -> list[dict[str, Any]]:
        return tail_topic(self.topic(table), self.folder)


@pytest.fixture
def cdc(postgres_database: SqlDatabase, tmp_path: Path) -> Iterator[Cdc]:
    with postgres_database.engine.connect() as connection:
        level = connection.execute(sa.text("SHOW wal_level")).scalar()
    if level != "logical":
        pytest.fail(LOGICAL.format(level=level))
    slot = f"omc_test_{uuid.uuid4().hex[:12]}"
    yield Cdc(postgres_database, slot, tmp_path)
    with postgres_database.engine.connect() as connection:
        drop_replication_slot(connection, slot)


class Pipeline:
    """``omconnect run cdc.yaml`` running continuously, its stderr in ``run.log``."""

    def __init__(self, cdc: Cdc) -> None:
        self.cdc = cdc
        self.log = cdc.folder / "run.log"
        self._stderr = self.log.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "omconnect.runtime.cli.main", "run", "cdc.yaml"],
            cwd=cdc.folder,
            stdout=subprocess.DEVNULL,
            stderr=self._stderr,
        )

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def alive(self) -> bool:
        assert self.process.poll() is None, f"the pipeline exited:\n{self.stderr()}"
        return True

    def stderr(self) -> str:
        return self.log.read_text()

    def wait_until(self, condition: Callable[[], Any], timeout: float, what: str) -> Any:
        return wait_until(lambda: self.alive() and condition(), timeout, what)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)
        self._stderr.close()


def apply_debezium(events: list[dict[str, Any]], key: str) -> dict[Any, dict[str, Any]]:
    """A table rebuilt from Debezium change events as Debezium documents them: ``op`` r/c/u
    put ``after`` at its key, ``d`` removes ``before``'s key, ``t`` empties the table, and a
    tombstone (null value) changes nothing."""
    rows: dict[Any, dict[str, Any]] = {}
    for event in events:
        value = event["value"]
        if value is None:
            continue
        if value["op"] in ("r", "c", "u"):
            rows[value["after"][key]] = value["after"]
        elif value["op"] == "d":
            rows.pop(value["before"][key], None)
        elif value["op"] == "t":
            rows.clear()
    return rows


def table_rows(database: SqlDatabase, table: str, key: str) -> dict[Any, dict[str, Any]]:
    with database.engine.connect() as connection:
        result = connection.execute(
            sa.text(f'SELECT * FROM "{database.schema}".{table} ORDER BY {key}')
        )
        return {row[key]: dict(row) for row in result.mappings()}


def test_snapshot_then_changes_rebuild_the_table(cdc: Cdc) -> None:
    schema = cdc.schema
    cdc.database.execute(
        f'CREATE TABLE "{schema}".orders (id bigint PRIMARY KEY, customer text NOT NULL, '
        "amount numeric(10,2), paid boolean, placed timestamptz, doc jsonb, code uuid, "
        "raw bytea, day date)",
        f"INSERT INTO \"{schema}\".orders SELECT i, 'c' || i, i * 1.25, i % 2 = 0, "
        "'2024-01-01 00:00:00+00'::timestamptz + i * interval '1 hour', "
        "jsonb_build_object('i', i), md5(i::text)::uuid, decode(md5(i::text), 'hex'), "
        "date '2024-01-01' + i FROM generate_series(1, 50) i",
    )
    cdc.pipeline(["orders"])
    cdc.run_once()
    events = cdc.events("orders")
    assert [e["value"]["op"] for e in events] == ["r"] * 50
    assert {e["key"]["id"] for e in events} == set(range(1, 51))
    first = next(e["value"] for e in events if e["key"]["id"] == 1)
    assert first["before"] is None and first["source"]["snapshot"] == "true"
    assert first["source"]["connector"] == "postgresql" and first["source"]["table"] == "orders"

    cdc.database.execute(
        f"INSERT INTO \"{schema}\".orders (id, customer, amount) VALUES (51, 'new', 9.99)",
        f'UPDATE "{schema}".orders SET amount = 100.00, paid = true WHERE id = 1',
        f'DELETE FROM "{schema}".orders WHERE id = 2',
        f"UPDATE \"{schema}\".orders SET customer = 'moved' WHERE id BETWEEN 10 AND 12",
    )
    cdc.run_once()
    events = cdc.events("orders")
    streamed = events[50:]
    assert [(e["value"] or {}).get("op") for e in streamed] == ["c", "u", "d", None, "u", "u", "u"]
    insert, update, delete, tombstone = streamed[:4]
    assert insert["value"]["after"]["customer"] == "new" and insert["key"] == {"id": 51}
    assert update["value"]["after"]["amount"] in ("100.00", 100.0)
    assert update["value"]["source"]["lsn"] > 0 and update["value"]["source"]["txId"] > 0
    assert delete["value"]["before"]["id"] == 2 and delete["value"]["after"] is None
    assert tombstone["key"] == {"id": 2} and tombstone["value"] is None
    # The run confirmed the slot past what it delivered: the server keeps no WAL of the
    # last change for it (the slot's confirmed position is past that change's commit).
    with cdc.database.engine.connect() as connection:
        confirmed_past = connection.execute(
            sa.text(
                "SELECT confirmed_flush_lsn > CAST(:lsn AS pg_lsn) FROM pg_replication_slots "
                "WHERE slot_name = :slot"
            ),
            {"lsn": format_lsn(streamed[-1]["value"]["source"]["lsn"]), "slot": cdc.slot},
        ).scalar()
    assert confirmed_past, "run --once left the slot behind what it delivered"

    rebuilt = apply_debezium(events, "id")
    expected = table_rows(cdc.database, "orders", "id")
    assert sorted(rebuilt) == sorted(expected)
    for key, row in expected.items():
        assert rebuilt[key]["customer"] == row["customer"]

    cdc.run_once()  # nothing new: nothing published again
    assert len(cdc.events("orders")) == len(events)


# Rows of the large transaction: enough that streaming it takes a few seconds, so the kill
# lands inside it however fast decoding gets.
BIG = 300_000


@pytest.mark.parametrize("written_by", ["insert", "copy"])
def test_a_kill_inside_a_large_transaction_loses_nothing(cdc: Cdc, written_by: str) -> None:
    """The large transaction is an ``INSERT ... SELECT`` or a ``COPY ... FROM STDIN``."""
    schema = cdc.schema
    cdc.database.execute(f'CREATE TABLE "{schema}".big (id bigint PRIMARY KEY, v text)')
    cdc.pipeline(["big"], snapshot="never", batch_size=2000)
    cdc.run_once()  # creates the slot: changes from here on are kept
    if written_by == "insert":
        cdc.database.execute(
            f"INSERT INTO \"{schema}\".big SELECT i, repeat('x', 20) "
            f"FROM generate_series(1, {BIG}) i"
        )
    else:
        with (
            psycopg.connect(POSTGRES_URL) as connection,
            connection.cursor() as cursor,
            cursor.copy(f'COPY "{schema}".big (id, v) FROM STDIN') as copy,
        ):
            for i in range(1, BIG + 1):
                copy.write_row((i, "x" * 20))
    running = subprocess.Popen(
        [sys.executable, "-m", "omconnect.runtime.cli.main", "run", "cdc.yaml"],
        cwd=cdc.folder,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=os.environ.copy(),
    )
    try:
        deadline = time.monotonic() + 120
        while topic_messages(cdc.folder, cdc.topic("big")) < 10_000:
            assert running.poll() is None, running.stderr.read() if running.stderr else ""
            assert time.monotonic() < deadline, "no events within 2 minutes"
            time.sleep(0.05)
        running.send_signal(signal.SIGKILL)
        running.wait(timeout=30)
    finally:
        if running.poll() is None:
            running.kill()
    published = topic_messages(cdc.folder, cdc.topic("big"))
    assert published < BIG, "the kill came after the whole transaction was published"
    listed = omconnect("offsets", "list", "cdc.yaml", cwd=cdc.folder)
    stored = [json.loads(line) for line in listed.stdout.splitlines() if line.startswith("{")]
    offset = stored[0]["offset"] if stored else {"complete": True}
    committed = 0 if offset["complete"] else offset["index"]  # its changes stored
    cdc.run_once()
    ids = [e["key"]["id"] for e in cdc.events("big")]
    assert set(ids) == set(range(1, BIG + 1))
    # Duplicates: exactly what was published after the stored position, nothing more.
    assert len(ids) - BIG == published - committed


def test_unchanged_toasted_values_are_named_not_invented(cdc: Cdc) -> None:
    schema = cdc.schema
    cdc.database.execute(
        f'CREATE TABLE "{schema}".docs (id int PRIMARY KEY, n int, body text)',
        # Random text does not compress: stored out of line (TOAST).
        f"INSERT INTO \"{schema}\".docs SELECT 1, 0, string_agg(md5(random()::text), '') "
        "FROM generate_series(1, 400)",
    )
    cdc.pipeline(["docs"], snapshot="never")
    cdc.run_once()
    cdc.database.execute(f'UPDATE "{schema}".docs SET n = 1 WHERE id = 1')
    cdc.run_once()
    (event,) = cdc.events("docs")
    assert event["value"]["op"] == "u"
    assert event["value"]["after"]["n"] == 1 and event["value"]["after"]["body"] is None
    assert event["value"]["unchanged"] == ["body"]


def test_a_column_added_midstream_gives_a_new_schema_version(cdc: Cdc) -> None:
    schema = cdc.schema
    cdc.database.execute(f'CREATE TABLE "{schema}".items (id int PRIMARY KEY, name text)')
    cdc.pipeline(["items"], snapshot="never")
    cdc.run_once()
    cdc.database.execute(
        f"INSERT INTO \"{schema}\".items VALUES (1, 'a')",
        f'ALTER TABLE "{schema}".items ADD COLUMN price numeric(8,2)',
        f"INSERT INTO \"{schema}\".items VALUES (2, 'b', 3.50)",
        f'TRUNCATE "{schema}".items',
    )
    cdc.run_once()
    events = cdc.events("items")
    assert [e["value"]["op"] for e in events] == ["c", "c", "t"]
    assert "price" not in events[0]["value"]["after"]
    assert events[1]["value"]["after"]["price"] in ("3.50", 3.5)


def test_a_table_without_a_primary_key_is_one_line(cdc: Cdc) -> None:
    cdc.database.execute(f'CREATE TABLE "{cdc.schema}".loose (v int)')
    cdc.pipeline(["loose"])
    ran = omconnect("run", "cdc.yaml", "--once", cwd=cdc.folder)
    assert ran.returncode != 0
    lines = [line for line in ran.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "has no primary key" in lines[0], ran.stderr


def test_a_slot_streamed_by_another_process_is_one_line(cdc: Cdc) -> None:
    cdc.database.execute(f'CREATE TABLE "{cdc.schema}".t (id int PRIMARY KEY)')
    cdc.pipeline(["t"], snapshot="never")
    cdc.run_once()
    with Pipeline(cdc):
        with cdc.database.engine.connect() as connection:
            for _ in range(100):
                active = connection.execute(
                    sa.text("SELECT active FROM pg_replication_slots WHERE slot_name = :s"),
                    {"s": cdc.slot},
                ).scalar()
                if active:
                    break
                time.sleep(0.1)
        other = cdc.folder / "other"
        other.mkdir()
        (other / "cdc.yaml").write_text((cdc.folder / "cdc.yaml").read_text())
        ran = omconnect("run", "cdc.yaml", "--once", cwd=other, timeout=120)
        assert ran.returncode != 0
        assert "another process is streaming this slot" in ran.stderr, ran.stderr
        assert "Traceback" not in ran.stderr


def test_full_before_images_key_changes_and_a_transaction_over_two_tables(cdc: Cdc) -> None:
    schema = cdc.schema
    cdc.database.execute(
        f'CREATE TABLE "{schema}".a (id int PRIMARY KEY, v text)',
        f'ALTER TABLE "{schema}".a REPLICA IDENTITY FULL',
        f'CREATE TABLE "{schema}".b (id int PRIMARY KEY, w int)',
    )
    cdc.pipeline(["a", "b"], snapshot="never")
    cdc.run_once()
    with cdc.database.engine.begin() as connection:  # one transaction
        for statement in (
            f"INSERT INTO \"{schema}\".a VALUES (1, 'x')",
            f'INSERT INTO "{schema}".b VALUES (1, 10)',
            f"UPDATE \"{schema}\".a SET v = 'y' WHERE id = 1",
            f'UPDATE "{schema}".a SET id = 2 WHERE id = 1',
            f'DELETE FROM "{schema}".b WHERE id = 1',
        ):
            connection.execute(sa.text(statement))
    cdc.run_once()
    a, b = cdc.events("a"), cdc.events("b")
    assert [(e["value"] or {}).get("op") for e in a] == ["c", "u", "d", None, "c"]
    assert a[1]["value"]["before"] == {"id": 1, "v": "x"}  # FULL: the whole old row
    assert a[2]["value"]["before"] == {"id": 1, "v": "y"} and a[2]["key"] == {"id": 1}
    assert a[3]["key"] == {"id": 1} and a[3]["value"] is None  # the old key's tombstone
    assert a[4]["value"]["after"] == {"id": 2, "v": "y"} and a[4]["key"] == {"id": 2}
    assert [(e["value"] or {}).get("op") for e in b] == ["c", "d", None]
    assert b[1]["value"]["before"]["id"] == 1 and b[1]["value"]["before"]["w"] is None
    sources = [e["value"]["source"] for e in a + b if e["value"]]
    assert len({(s["txId"], s["lsn"]) for s in sources}) == 1, "one transaction, one source"
    assert apply_debezium(a, "id") == {2: {"id": 2, "v": "y"}}
    assert apply_debezium(b, "id") == {}


@pytest.mark.parametrize("batch_size", [3, 10_000])
def test_a_task_resumed_at_any_mark_delivers_exactly_what_came_after_it(
    cdc: Cdc, batch_size: int
) -> None:
    """Polls of three messages cut transactions over two tables anywhere (inside a run of
    one table, between tables, at commits); a task started from any mark's offset, with the
    slot not confirmed, must deliver exactly the events after that mark, with the same
    message ids: none skipped (the change that opened the next table's run counted too
    early), none twice. Polls of 10,000 messages take the single-table transactions in a
    row at once (one mark after the last)."""
    schema = cdc.schema
    cdc.database.execute(
        f'CREATE TABLE "{schema}".a (id int PRIMARY KEY, v text)',
        f'CREATE TABLE "{schema}".b (id int PRIMARY KEY, w int)',
    )
    config = {
        "url": cdc.database.url,
        "tables": [f"{schema}.a", f"{schema}.b"],
        "slot": cdc.slot,
        "snapshot": "never",
        "batch_size": batch_size,
    }
    SourceDriver("postgres-cdc", config).stop()  # creates the slot
    statements = [
        [  # a transaction over both tables, interleaved
            f"INSERT INTO \"{schema}\".a VALUES (1, 'x'), (2, 'y')",
            f'INSERT INTO "{schema}".b VALUES (1, 10)',
            f"INSERT INTO \"{schema}\".a VALUES (3, 'z')",
            f'INSERT INTO "{schema}".b VALUES (2, 20), (3, 30)',
        ],
        [f"UPDATE \"{schema}\".a SET v = 'w' WHERE id = 1"],
        [f'DELETE FROM "{schema}".b WHERE id = 2'],
        [f'UPDATE "{schema}".a SET id = 4 WHERE id = 2', f'UPDATE "{schema}".b SET w = 0'],
    ]
    statements += [[f"INSERT INTO \"{schema}\".a VALUES ({i}, 's')"] for i in range(10, 16)]
    statements += [[f'DELETE FROM "{schema}".a WHERE id = {i}'] for i in range(10, 13)]
    statements += [[f'UPDATE "{schema}".a SET id = 100 WHERE id = 13']]  # a key moved
    statements += [[f"UPDATE \"{schema}\".a SET v = 't' WHERE id = {i}"] for i in (14, 15)]
    for transaction in statements:
        with cdc.database.engine.begin() as connection:
            for statement in transaction:
                connection.execute(sa.text(statement))

    def events_and_marks(offsets: MemoryOffsetReader) -> tuple[list[Any], list[Any]]:
        driver = SourceDriver("postgres-cdc", config, offsets)
        try:
            batches = driver.read_to_end()
        finally:
            driver.stop()
        events: list[Any] = []
        marks: list[Any] = []
        for batch in batches:
            ops = batch.values.column("op").to_pylist()
            keys = batch.keys.to_pylist() if batch.keys is not None else [None] * len(ops)
            dead = (
                batch.tombstones.to_pylist() if batch.tombstones is not None else [False] * len(ops)
            )
            ids = batch.message_ids.to_pylist() if batch.message_ids is not None else []
            assert len(ids) == len(ops), "the task gives its events their ids"
            row_events = [
                (batch.stream, None if tomb else op, key, ident)
                for op, key, tomb, ident in zip(ops, keys, dead, ids, strict=True)
            ]
            at = 0
            for mark in batch.marks:
                events += row_events[at : mark.end_row]
                at = mark.end_row
                marks.append((len(events), mark.position))
            events += row_events[at:]
        return events, marks

    everything, marks = events_and_marks(MemoryOffsetReader())
    # 6 inserts; an update; a delete and its tombstone; a key moved (delete, tombstone,
    # create) and two updates; 6 inserts; 3 deletes and their tombstones; a key moved; 2
    # updates
    assert len(everything) == 6 + 1 + 2 + 5 + 6 + 6 + 3 + 2
    if batch_size == 3:
        assert len(marks) > len(statements), "polls of three messages mark inside transactions"
    assert len({event[3] for event in everything}) == len(everything), "message ids are unique"
    for before, position in marks:
        offsets = MemoryOffsetReader()
        offsets.commit([position])
        rest, _ = events_and_marks(offsets)
        assert rest == everything[before:], f"resumed at {dict(position.offset)}"


@pytest.mark.parametrize("tolerance", ["all", "none"])
def test_values_that_do_not_fit_are_dead_lettered_and_good_rows_go_on(
    cdc: Cdc, tolerance: str
) -> None:
    """A numeric ``NaN`` (decimal columns cannot hold it) and an ``infinity`` date, among
    good rows of single-row and larger transactions: under ``errors.tolerance: all`` they go
    to the dead letter topic naming the table, column and value, every other event is
    published; under ``none`` the run fails with that one line."""
    schema = cdc.schema
    cdc.database.execute(
        f'CREATE TABLE "{schema}".m (id int PRIMARY KEY, amount numeric(10,2), day date)'
    )
    cdc.pipeline(["m"], snapshot="never")
    with (cdc.folder / "cdc.yaml").open("a") as pipeline:
        pipeline.write(f"errors: {{tolerance: {tolerance}}}\n")
    cdc.run_once()
    cdc.database.execute(
        f"INSERT INTO \"{schema}\".m VALUES (1, 1.50, '2026-01-01')",
        f"INSERT INTO \"{schema}\".m VALUES (2, 'NaN', '2026-01-02')",
        f"INSERT INTO \"{schema}\".m VALUES (3, 3.00, '2026-01-03')",
        f"INSERT INTO \"{schema}\".m SELECT i, i, CASE WHEN i = 7 THEN 'infinity'::date "
        "ELSE '2026-02-01'::date END FROM generate_series(4, 9) i",
        f'UPDATE "{schema}".m SET amount = 10 WHERE id = 1',
    )
    ran = omconnect("run", "cdc.yaml", "--once", cwd=cdc.folder, timeout=180)
    if tolerance == "none":
        assert ran.returncode != 0
        assert 'column amount: "NaN" does not fit' in ran.stderr, ran.stderr
        assert "Traceback" not in ran.stderr
        return
    assert ran.returncode == 0, ran.stderr
    events = cdc.events("m")
    assert [(e["value"]["op"], e["key"]["id"]) for e in events] == [
        ("c", 1),
        ("c", 3),
        *[("c", i) for i in (4, 5, 6, 8, 9)],
        ("u", 1),
    ]
    dead = tail_topic("cdc.dlq", cdc.folder)
    assert len(dead) == 2
    reasons = [d["headers"]["omconnect.error.reason"] for d in dead]
    assert f'table {schema}.m, column amount: "NaN" does not fit' in reasons[0]
    assert f'table {schema}.m, column day: "infinity" does not fit date' in reasons[1]
    assert dead[0]["value"]["after"] == {"id": "2", "amount": "NaN", "day": "2026-01-02"}
    place = json.loads(dead[1]["headers"]["omconnect.error.position"])
    assert place["table"] == f"{schema}.m" and place["slot"] == cdc.slot
    assert re.fullmatch(r"[0-9A-F]+/[0-9A-F]+", place["commit_lsn"]), place


def test_heartbeat_query_runs_with_every_heartbeat(cdc: Cdc) -> None:
    """A quiet database: each heartbeat runs ``heartbeat_query``, here an upsert into a
    captured table, whose changes reach its topic; a query that fails stops the pipeline
    with the database's one line."""
    schema = cdc.schema
    cdc.database.execute(
        f'CREATE TABLE "{schema}".hb (id int PRIMARY KEY, beats int NOT NULL)',
        f'CREATE TABLE "{schema}".quiet (id int PRIMARY KEY)',
    )
    query = (
        f'INSERT INTO "{schema}".hb VALUES (1, 1) '
        "ON CONFLICT (id) DO UPDATE SET beats = hb.beats + 1"
    )
    cdc.pipeline(["hb", "quiet"], snapshot="never", heartbeat_interval=0.3, heartbeat_query=query)
    cdc.run_once()  # the slot (no heartbeats under --once)
    assert cdc.events("hb") == []
    with Pipeline(cdc) as running:
        running.wait_until(lambda: len(cdc.events("hb")) >= 3, 60, "three heartbeats")
    beats = [e["value"]["after"]["beats"] for e in cdc.events("hb")]
    assert beats[:3] == [1, 2, 3]

    cdc.pipeline(
        ["hb"], snapshot="never", heartbeat_interval=0.3, heartbeat_query="SELECT * FROM nowhere"
    )
    failed = subprocess.run(
        [sys.executable, "-m", "omconnect.runtime.cli.main", "run", "cdc.yaml"],
        cwd=cdc.folder,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert failed.returncode != 0
    assert "heartbeat_query" in failed.stderr and "nowhere" in failed.stderr, failed.stderr
    assert "Traceback" not in failed.stderr


def test_snapshot_rows_that_do_not_fit_are_dead_lettered(cdc: Cdc) -> None:
    """The initial snapshot under ``errors.tolerance: all``: a numeric ``NaN`` and an
    ``infinity`` date go to the dead letter topic naming table, key and column; the other
    rows are read, and the stream goes on after the snapshot."""
    schema = cdc.schema
    cdc.database.execute(
        f'CREATE TABLE "{schema}".s (id int PRIMARY KEY, amount numeric(10,2), day date)',
        f"INSERT INTO \"{schema}\".s VALUES (1, 1.5, '2026-01-01'), (2, 'NaN', '2026-01-02'), "
        f"(3, 3, 'infinity'), (4, 4, '2026-01-04')",
    )
    cdc.pipeline(["s"])
    with (cdc.folder / "cdc.yaml").open("a") as pipeline:
        pipeline.write("errors: {tolerance: all}\n")
    cdc.run_once()
    cdc.database.execute(f"INSERT INTO \"{schema}\".s VALUES (5, 5, '2026-01-05')")
    cdc.run_once()
    events = cdc.events("s")
    assert [(e["value"]["op"], e["key"]["id"]) for e in events] == [
        ("r", 1),
        ("r", 4),
        ("c", 5),
    ]
    reasons = [d["headers"]["omconnect.error.reason"] for d in tail_topic("cdc.dlq", cdc.folder)]
    assert len(reasons) == 2
    assert "column amount" in reasons[0] and '"id": 2' in reasons[0]
    assert "column day" in reasons[1] and '"id": 3' in reasons[1]

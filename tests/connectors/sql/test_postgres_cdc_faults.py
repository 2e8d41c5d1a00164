"""Faults of the ``postgres-cdc`` source against the machine's real PostgreSQL: the server
restarted and the walsender terminated under a running pipeline (it reconnects by itself and
loses nothing), a task started while the server is down (retried, not failed), heartbeats
moving the slot on a database whose writes are all unpublished, the slot's lag in the log
(idle and stalled tell apart), one-line errors (a user without REPLICATION, a publication
dropped under the slot, a table dropped between runs), and three concurrent writers whose
tables the topics rebuild exactly.

The tests that restart or stop PostgreSQL do it to a private server of this module
(``private_postgres``: initdb'd in a temporary directory, on a free port), never to the
machine's shared one on 5432, which the other tests use meanwhile; after each of them it
accepts connections again, also when the test fails. The other tests use the shared server.
"""

from __future__ import annotations

import functools
import logging
import random
import re
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa

from omconnect.connectors.api import (
    Position,
    RecordBatch,
    RetriableError,
    TaskContext,
)
from omconnect.connectors.sql import _cdc_task
from omconnect.connectors.sql._cdc_task import PostgresCdcTask
from omconnect.connectors.sql._replication import _translated, unreachable
from omconnect.connectors.sql.postgres_cdc import PostgresCdcSpec
from omconnect.runtime.testing import CollectingErrorReporter, MemoryOffsetReader
from tests.connectors.sql import test_postgres_cdc
from tests.connectors.sql.test_postgres_cdc import Cdc, Pipeline, apply_debezium, table_rows
from tests.support.failing_pipeline import topic_messages
from tests.support.omconnect_process import omconnect
from tests.support.postgres_server import PostgresServerProcess
from tests.support.served_worker import wait_until
from tests.support.sql_databases import (
    POSTGRES_URL,
    SqlDatabase,
    drop_replication_slot,
    open_database,
    sqlalchemy_url,
)

# One worker runs this file under xdist, so its tests share one private server.
pytestmark = pytest.mark.xdist_group("private-postgres")

cdc = test_postgres_cdc.cdc  # the fixture: a schema, a slot name, a pipeline folder

# -- the servers -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def private_postgres() -> Iterator[PostgresServerProcess]:
    """A PostgreSQL server of this module's own, for the tests that restart or stop it."""
    with PostgresServerProcess() as server:
        server.start()
        yield server


@pytest.fixture
def private_cdc(private_postgres: PostgresServerProcess, tmp_path: Path) -> Iterator[Cdc]:
    """A ``Cdc`` (a schema, a slot name, a pipeline folder) on the private server. Whatever
    the test did to the server, it accepts connections after it; the slot and its publication
    are dropped."""
    private_postgres.ensure_running()
    slot = f"omc_test_{uuid.uuid4().hex[:12]}"
    for database in open_database("postgresql", tmp_path, private_postgres.url):
        try:
            yield Cdc(database, slot, tmp_path)
        finally:
            private_postgres.ensure_running()
            with database.engine.connect() as connection:
                drop_replication_slot(connection, slot)


# -- the slot, the pipeline process, the topics ---------------------------------------------


def _scalar(database: SqlDatabase, statement: str, **parameters: Any) -> Any:
    with database.engine.connect() as connection:
        return connection.execute(sa.text(statement), parameters).scalar()


def _slot_active(cdc: Cdc) -> bool:
    return bool(
        _scalar(
            cdc.database,
            "SELECT active FROM pg_replication_slots WHERE slot_name = :slot",
            slot=cdc.slot,
        )
    )


def _confirmed_past(cdc: Cdc, lsn: str) -> bool:
    """Whether the slot's confirmed_flush_lsn is at or past ``lsn``."""
    return bool(
        _scalar(
            cdc.database,
            "SELECT pg_wal_lsn_diff(confirmed_flush_lsn, CAST(:lsn AS pg_lsn)) >= 0 "
            "FROM pg_replication_slots WHERE slot_name = :slot",
            lsn=lsn,
            slot=cdc.slot,
        )
    )


def _terminate_walsender(cdc: Cdc) -> None:
    cdc.database.execute(
        "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots "
        f"WHERE slot_name = '{cdc.slot}' AND active_pid IS NOT NULL"
    )


def _current_lsn(database: SqlDatabase) -> str:
    return str(_scalar(database, "SELECT pg_current_wal_lsn()::text"))


def _ids(events: list[dict[str, Any]]) -> list[int]:
    return [e["value"]["after"]["id"] for e in events if e["value"] and e["value"]["after"]]


def _one_line_failure(ran: subprocess.CompletedProcess[str]) -> str:
    assert ran.returncode != 0, ran.stderr
    lines = [line for line in ran.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, ran.stderr
    assert "Traceback" not in ran.stderr
    return lines[0]


# -- 1. the database restarts mid-stream ----------------------------------------------------


class InsertingWriter(threading.Thread):
    """Inserts ids 1, 2, 3 ... one transaction each, through server restarts: a failed insert
    is tried again (``ON CONFLICT DO NOTHING``: one whose commit was lost with the connection
    is not inserted twice), so the table holds exactly the ids 1 .. ``next_id - 1``."""

    def __init__(self, url: str, table: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.table = table
        self.next_id = 1
        self.failures = 0
        self.halt = threading.Event()

    def run(self) -> None:
        connection: psycopg.Connection[Any] | None = None
        while not self.halt.is_set():
            try:
                if connection is None:
                    connection = psycopg.connect(self.url, autocommit=True, connect_timeout=3)
                connection.execute(
                    f"INSERT INTO {self.table} VALUES (%s, 'v') ON CONFLICT (id) DO NOTHING",
                    (self.next_id,),
                )
                self.next_id += 1
                time.sleep(0.002)
            except psycopg.Error:
                self.failures += 1
                if connection is not None:
                    connection.close()
                connection = None
                time.sleep(0.1)
        if connection is not None:
            connection.close()


def test_a_restart_of_the_database_mid_stream_loses_nothing(
    private_postgres: PostgresServerProcess, private_cdc: Cdc
) -> None:
    cdc = private_cdc
    table = f'"{cdc.schema}".ev'
    cdc.database.execute(f"CREATE TABLE {table} (id bigint PRIMARY KEY, v text)")
    cdc.pipeline(["ev"], snapshot="never", heartbeat_interval=1)
    cdc.run_once()  # the slot: changes from here on are kept
    writer = InsertingWriter(cdc.database.url, table)
    with Pipeline(cdc) as pipeline:
        writer.start()
        try:
            pipeline.wait_until(
                lambda: topic_messages(cdc.folder, cdc.topic("ev")) >= 100, 60, "events flow"
            )
            # The walsender terminated (AdminShutdown, 57P01): the task connects again.
            _terminate_walsender(cdc)
            pipeline.wait_until(
                lambda: "connected again" in pipeline.stderr(), 60, "the stream reconnects"
            )
            private_postgres.restart()
            # Writes after the restart too, then the writer stops.
            after_restart = writer.next_id
            wait_until(lambda: writer.next_id > after_restart + 200, 60, "writes resume")
        finally:
            writer.halt.set()
            writer.join(timeout=30)
        assert writer.failures > 0, "the restart interrupted no write"
        committed = set(range(1, writer.next_id))
        assert set(table_rows(cdc.database, "ev", "id")) == committed

        def all_published() -> bool:
            return (
                topic_messages(cdc.folder, cdc.topic("ev")) >= len(committed)
                and set(_ids(cdc.events("ev"))) >= committed
            )

        pipeline.wait_until(
            all_published, 120, f"all {len(committed)} committed rows are on the topic"
        )
        assert pipeline.stderr().count("connected again") >= 2, pipeline.stderr()
    ids = _ids(cdc.events("ev"))
    assert set(ids) == committed
    # The task reconnects and skips what it delivered: the server's resent transactions
    # are not published again.
    assert len(ids) - len(committed) <= 100, f"{len(ids) - len(committed)} duplicates"


def test_a_terminated_walsender_and_a_lost_connection_are_retriable(cdc: Cdc) -> None:
    """What psycopg2 really raises, classified: a terminated walsender is AdminShutdown
    (57P01), a refused connection has no pgcode; both are retriable. A refused login (an
    unknown role, no pgcode either) is not. (A server shutting down ends the stream, and
    psycopg2 then says "no COPY in progress", no pgcode: the restart tests see it.)"""
    import psycopg2
    import psycopg2.extras

    cdc.database.execute(f'CREATE TABLE "{cdc.schema}".t (id int PRIMARY KEY)')
    cdc.pipeline(["t"], snapshot="never")
    cdc.run_once()
    connection = psycopg2.connect(
        POSTGRES_URL, connection_factory=psycopg2.extras.LogicalReplicationConnection
    )
    try:
        cursor = connection.cursor()
        cursor.start_replication(
            slot_name=cdc.slot,
            decode=False,
            options={"proto_version": "1", "publication_names": cdc.slot},
        )
        wait_until(lambda: _slot_active(cdc), 30, "the slot is streamed")
        _terminate_walsender(cdc)
        with pytest.raises(psycopg2.Error) as terminated:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                cursor.read_message()
                time.sleep(0.05)
        assert terminated.value.pgcode == "57P01"
        assert isinstance(terminated.value, psycopg2.errors.AdminShutdown)
        assert isinstance(_translated(terminated.value, "stream"), RetriableError)
        assert unreachable(terminated.value)
    finally:
        connection.close()
    with pytest.raises(psycopg2.Error) as refused:
        psycopg2.connect("postgresql://postgres@127.0.0.1:1/test", connect_timeout=3)
    assert refused.value.pgcode is None
    assert isinstance(_translated(refused.value, "open"), RetriableError)
    assert unreachable(refused.value)
    with pytest.raises(psycopg2.Error) as no_role:
        psycopg2.connect(f"postgresql://omc_none_{uuid.uuid4().hex[:8]}@127.0.0.1:5432/test")
    assert not isinstance(_translated(no_role.value, "open"), RetriableError)
    assert not unreachable(no_role.value)


def _task_context(offsets: MemoryOffsetReader, once: bool = False) -> TaskContext:
    return TaskContext(
        pipeline="cdc-test",
        task_id=0,
        offsets=offsets,
        errors=CollectingErrorReporter(),
        once=once,
        logger=logging.getLogger("omconnect.test.cdc"),
    )


def _poll_until(
    task: PostgresCdcTask, condition: Callable[[list[RecordBatch]], bool], timeout: float
) -> list[RecordBatch]:
    """Poll (retrying RetriableError, as the runtime does) until the batches polled so far
    satisfy ``condition``."""
    batches: list[RecordBatch] = []
    deadline = time.monotonic() + timeout
    while not condition(batches):
        assert time.monotonic() < deadline, f"nothing satisfying within {timeout:.0f}s"
        try:
            polled = task.poll()
        except RetriableError:
            time.sleep(0.3)
            continue
        if isinstance(polled, RecordBatch):
            batches.append(polled)
        elif polled:
            batches.extend(b for b in polled if isinstance(b, RecordBatch))
    return batches


def _batch_ids(batches: list[RecordBatch]) -> set[int]:
    ids: set[int] = set()
    for batch in batches:
        if batch.num_rows and batch.keys is not None:
            ids.update(batch.keys.column("id").to_pylist())
    return ids


def _last_position(batches: list[RecordBatch]) -> Position:
    return [m.position for b in batches for m in b.marks][-1]


def _stop_postgres_while_polling(server: PostgresServerProcess, task: PostgresCdcTask) -> None:
    """Stop the server while polling ``task``, as the runtime would (a walsender that shuts
    down waits for its client to answer), retrying RetriableError."""
    failed: list[BaseException] = []

    def stop() -> None:
        try:
            server.stop()
        except BaseException as error:  # seen below
            failed.append(error)

    stopper = threading.Thread(target=stop, daemon=True)
    stopper.start()
    while stopper.is_alive():
        try:
            task.poll()
        except RetriableError:
            time.sleep(0.1)
    assert not failed, failed


def test_a_task_started_or_polled_while_the_server_is_down_retries(
    private_postgres: PostgresServerProcess, private_cdc: Cdc
) -> None:
    """In-process, as the runtime drives it: ``start`` and ``poll`` raise RetriableError
    (never another error) while PostgreSQL is stopped, ``commit`` does not raise, and the same
    task streams again once it is back, without delivering anything twice."""
    cdc = private_cdc
    table = f'"{cdc.schema}".t'
    cdc.database.execute(f"CREATE TABLE {table} (id int PRIMARY KEY)")
    spec = PostgresCdcSpec.model_validate(
        {
            "url": cdc.database.url,
            "tables": [f"{cdc.schema}.t"],
            "slot": cdc.slot,
            "snapshot": "never",
        }
    )
    offsets = MemoryOffsetReader()
    task = PostgresCdcTask()
    try:
        private_postgres.stop()
        try:
            for _ in range(2):  # a retried start, as the runtime retries it
                with pytest.raises(RetriableError):
                    task.start(spec, _task_context(offsets))
        finally:
            private_postgres.ensure_running()
        task.start(spec, _task_context(offsets))
        cdc.database.execute(f"INSERT INTO {table} VALUES (1), (2)")
        batches = _poll_until(task, lambda b: _batch_ids(b) >= {1, 2}, 60)
        position = _last_position(batches)
        offsets.commit([position])
        task.commit([position])

        try:
            _stop_postgres_while_polling(private_postgres, task)
            task.commit([position])  # while the server is down: kept, not raised
            failures = 0
            for _ in range(4):
                try:
                    task.poll()
                except RetriableError:
                    failures += 1
            assert failures == 4, "polls against a stopped server did not fail as retriable"
        finally:
            private_postgres.ensure_running()
        cdc.database.execute(f"INSERT INTO {table} VALUES (3)")
        batches = _poll_until(task, lambda b: 3 in _batch_ids(b), 60)
        assert _batch_ids(batches) == {3}, "rows delivered before the restart came again"
        task.commit([_last_position(batches)])
    finally:
        task.stop()


def _poll_until_lost(task: PostgresCdcTask, delivered: list[int]) -> None:
    """Poll until the stream reports its connection lost (RetriableError)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            polled = task.poll()
        except RetriableError:
            return
        delivered += _batch_id_list(polled)
    raise AssertionError("the terminated walsender was not noticed")


def _batch_id_list(polled: Any) -> list[int]:
    batches = [polled] if isinstance(polled, RecordBatch) else list(polled or [])
    return [
        key
        for batch in batches
        if batch.num_rows and batch.keys is not None
        for key in batch.keys.column("id").to_pylist()
    ]


def test_a_large_transaction_sent_again_twice_is_delivered_once(cdc: Cdc) -> None:
    """In-process: the connection is lost inside a large transaction, and lost again while
    the server sends it once more, before it got back to what was delivered: every change is
    delivered exactly once (the position of what was delivered never moves back)."""
    table = f'"{cdc.schema}".big'
    cdc.database.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, pad text)")
    spec = PostgresCdcSpec.model_validate(
        {
            "url": POSTGRES_URL,
            "tables": [f"{cdc.schema}.big"],
            "slot": cdc.slot,
            "snapshot": "never",
            "batch_size": 1000,
        }
    )
    task = PostgresCdcTask()
    rows = 40_000
    delivered: list[int] = []
    try:
        task.start(spec, _task_context(MemoryOffsetReader()))
        # Wide enough rows that the transaction does not fit in the socket's buffers.
        cdc.database.execute(
            f"INSERT INTO {table} SELECT i, repeat('x', 200) FROM generate_series(1, {rows}) i"
        )
        deadline = time.monotonic() + 60
        while len(delivered) < 8000:
            assert time.monotonic() < deadline, "the transaction did not come"
            delivered += _batch_id_list(task.poll())
        _terminate_walsender(cdc)
        _poll_until_lost(task, delivered)
        assert len(delivered) < rows, "the whole transaction came before the walsender ended"
        before = len(delivered)
        delivered += _batch_id_list(task.poll())  # connects again, reads the start again
        assert len(delivered) == before, "changes delivered already came again"
        _terminate_walsender(cdc)
        _poll_until_lost(task, delivered)
        deadline = time.monotonic() + 60
        while len(set(delivered)) < rows:
            assert time.monotonic() < deadline, f"{len(set(delivered))} of {rows} delivered"
            try:
                delivered += _batch_id_list(task.poll())
            except RetriableError:
                time.sleep(0.3)
    finally:
        task.stop()
    assert sorted(delivered) == list(range(1, rows + 1)), "a change was delivered twice"


# -- 2. heartbeats and the slot's lag --------------------------------------------------------


def _busy_writes(database: SqlDatabase, table: str, transactions: int) -> None:
    with database.engine.connect() as connection:
        for _ in range(transactions):
            connection.execute(
                sa.text(f"INSERT INTO {table} (v) SELECT 'x' FROM generate_series(1, 20)")
            )
            connection.commit()


def test_heartbeats_move_the_slot_past_writes_to_unpublished_tables(private_cdc: Cdc) -> None:
    # On the private server: the shared one's WAL grows with every other test's writes.
    cdc = private_cdc
    schema = cdc.schema
    cdc.database.execute(
        f'CREATE TABLE "{schema}".quiet (id int PRIMARY KEY)',
        f'CREATE TABLE "{schema}".busy (id serial PRIMARY KEY, v text)',
    )
    cdc.pipeline(["quiet"], snapshot="never", heartbeat_interval=1)
    cdc.run_once()
    with Pipeline(cdc) as pipeline:
        pipeline.wait_until(lambda: _slot_active(cdc), 60, "the pipeline streams the slot")
        for round_ in range(5):
            _busy_writes(cdc.database, f'"{schema}".busy', 100)
            written = _current_lsn(cdc.database)
            # A heartbeat a second, confirmed at once: within a few seconds, not only at
            # psycopg2's status updates (every 10 s).
            pipeline.wait_until(
                functools.partial(_confirmed_past, cdc, written),
                3,
                f"round {round_}: the slot is confirmed past the unpublished writes",
            )


_LAG_LINE = re.compile(r"slot \S+: lag (\d+) bytes .*last confirmed ([\d.]+) s ago")


def test_the_lag_tells_a_stalled_pipeline_from_an_idle_one(
    private_cdc: Cdc, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In-process: while a delivered transaction is never stored (a stalled broker or sink),
    heartbeats cannot confirm anything and the logged lag and age grow; once it is stored,
    both fall back."""
    cdc = private_cdc  # the lag is in bytes of WAL: only this test writes the private server's
    schema = cdc.schema
    cdc.database.execute(
        f'CREATE TABLE "{schema}".quiet (id int PRIMARY KEY)',
        f'CREATE TABLE "{schema}".busy (id serial PRIMARY KEY, v text)',
    )
    spec = PostgresCdcSpec.model_validate(
        {
            "url": cdc.database.url,
            "tables": [f"{schema}.quiet"],
            "slot": cdc.slot,
            "snapshot": "never",
            "heartbeat_interval": 0.2,
        }
    )
    monkeypatch.setattr(_cdc_task, "_LAG_LOG_SECONDS", 0.5)  # every minute otherwise
    task = PostgresCdcTask()
    caplog.set_level(logging.INFO, logger="omconnect.test.cdc")

    def lags() -> list[tuple[int, float]]:
        return [
            (int(m[1]), float(m[2]))
            for r in caplog.records
            if (m := _LAG_LINE.search(r.getMessage()))
        ]

    def poll_for(seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            task.poll()

    try:
        task.start(spec, _task_context(MemoryOffsetReader()))
        cdc.database.execute(f'INSERT INTO "{schema}".quiet VALUES (1)')
        delivered = _poll_until(task, lambda b: 1 in _batch_ids(b), 30)
        caplog.clear()
        for _ in range(3):  # stalled: nothing stored, the database written to meanwhile
            _busy_writes(cdc.database, f'"{schema}".busy', 50)
            poll_for(1.2)
        stalled = lags()
        assert len(stalled) >= 4, stalled
        assert stalled[-1][0] > stalled[0][0] + 10_000, f"the lag did not grow: {stalled}"
        assert stalled[-1][1] > stalled[0][1] + 2, f"the age did not grow: {stalled}"
        task.commit([_last_position(delivered)])  # stored: heartbeats confirm again
        caplog.clear()
        poll_for(2)
        idle = lags()
        assert idle, "no lag logged"
        assert idle[-1][0] < stalled[-1][0] / 4 and idle[-1][1] < 1.5, (stalled, idle)
    finally:
        task.stop()


# -- 3. one-line errors -----------------------------------------------------------------------


def test_a_user_without_replication_is_told_what_to_grant(cdc: Cdc) -> None:
    schema = cdc.schema
    role = f"omc_norepl_{uuid.uuid4().hex[:8]}"
    cdc.database.execute(
        f'CREATE TABLE "{schema}".t (id int PRIMARY KEY)',
        f"CREATE ROLE {role} LOGIN",
        f'GRANT USAGE ON SCHEMA "{schema}" TO {role}',
        f'GRANT SELECT ON ALL TABLES IN SCHEMA "{schema}" TO {role}',
    )
    try:
        cdc.database.url = POSTGRES_URL.replace("postgres@", f"{role}@")
        cdc.pipeline(["t"], snapshot="never")
        line = _one_line_failure(omconnect("run", "cdc.yaml", "--once", cwd=cdc.folder))
        assert f"ALTER ROLE {role} WITH REPLICATION" in line, line

        cdc.database.execute(f"ALTER ROLE {role} WITH REPLICATION")
        line = _one_line_failure(omconnect("run", "cdc.yaml", "--once", cwd=cdc.folder))
        statement = re.search(r"run, as their owner or a superuser, (CREATE PUBLICATION .*)", line)
        assert statement is not None, line

        cdc.database.execute(statement[1])  # as the tables' owner, as the message says
        cdc.run_once()
        cdc.database.execute(f'INSERT INTO "{schema}".t VALUES (7)')
        cdc.run_once()
        assert _ids(cdc.events("t")) == [7]
    finally:
        cdc.database.url = POSTGRES_URL
        wait_until(lambda: not _slot_active(cdc), 30, "the role's stream ended")
        cdc.database.execute(f"DROP OWNED BY {role}", f"DROP ROLE {role}")


@pytest.fixture
def own_database(tmp_path: Path) -> Iterator[Cdc]:
    """A ``Cdc`` on a database of its own: nothing else writes there, so a test may drop the
    publication and know that no other test's writes land between the drop and what comes
    after. Its slot is dropped, then the database (with the publication)."""
    name = f"omc_t_{uuid.uuid4().hex[:12]}"
    server = sa.create_engine(
        sqlalchemy_url(POSTGRES_URL), poolclass=sa.pool.NullPool, isolation_level="AUTOCOMMIT"
    )
    with server.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = POSTGRES_URL.rsplit("/", 1)[0] + f"/{name}"
    engine = sa.create_engine(sqlalchemy_url(url), poolclass=sa.pool.NullPool)
    slot = f"omc_test_{uuid.uuid4().hex[:12]}"
    try:
        yield Cdc(SqlDatabase("postgresql", url, "public", engine), slot, tmp_path)
    finally:
        engine.dispose()
        with server.connect() as connection:
            drop_replication_slot(connection, slot, publication=False)
            connection.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        server.dispose()


def _publication_exists(cdc: Cdc) -> bool:
    return bool(
        _scalar(cdc.database, "SELECT 1 FROM pg_publication WHERE pubname = :p", p=cdc.slot)
    )


def test_a_dropped_publication_is_created_again_and_nothing_is_lost(own_database: Cdc) -> None:
    cdc = own_database
    cdc.database.execute(
        "CREATE TABLE public.t (id int PRIMARY KEY, v text)",
        "INSERT INTO public.t VALUES (1, 'a'), (2, 'b')",
    )
    cdc.pipeline(["t"], snapshot="when_needed")
    cdc.run_once()
    cdc.database.execute("INSERT INTO public.t VALUES (3, 'c')")
    cdc.run_once()
    cdc.database.execute(f'DROP PUBLICATION "{cdc.slot}"')
    cdc.run_once()  # the slot's position is before the drop: streams past it, creates it again
    assert _publication_exists(cdc)
    cdc.database.execute("INSERT INTO public.t VALUES (4, 'd')", "UPDATE public.t SET v = 'B'")
    cdc.run_once()
    events = cdc.events("t")
    assert sorted(_ids([e for e in events if e["value"]["op"] in ("r", "c")])) == [1, 2, 3, 4]
    assert apply_debezium(events, "id") == table_rows(cdc.database, "t", "id")


def test_changes_made_while_the_publication_was_missing_are_one_line_with_the_way_out(
    own_database: Cdc,
) -> None:
    cdc = own_database
    cdc.database.execute("CREATE TABLE public.t (id int PRIMARY KEY, v text)")
    cdc.pipeline(["t"], snapshot="when_needed")
    cdc.run_once()
    cdc.database.execute(
        "INSERT INTO public.t VALUES (1, 'a')",
        f'DROP PUBLICATION "{cdc.slot}"',
    )
    cdc.database.execute("INSERT INTO public.t VALUES (2, 'b')")  # no publication: undecodable
    line = _one_line_failure(omconnect("run", "cdc.yaml", "--once", cwd=cdc.folder))
    assert f'publication "{cdc.slot}" does not exist' in line, line
    drop = f"SELECT pg_drop_replication_slot('{cdc.slot}')"
    assert drop in line and "snapshot: when_needed" in line, line

    wait_until(lambda: not _slot_active(cdc), 30, "the failed run's stream ended")
    cdc.database.execute(drop)  # what the message says; the pipeline has `when_needed`
    cdc.run_once()
    assert apply_debezium(cdc.events("t"), "id") == table_rows(cdc.database, "t", "id")
    assert set(table_rows(cdc.database, "t", "id")) == {1, 2}


def test_a_table_dropped_between_runs_is_one_line(cdc: Cdc) -> None:
    schema = cdc.schema
    cdc.database.execute(
        f'CREATE TABLE "{schema}".a (id int PRIMARY KEY)',
        f'CREATE TABLE "{schema}".b (id int PRIMARY KEY)',
    )
    cdc.pipeline(["a", "b"], snapshot="never")
    cdc.run_once()
    cdc.database.execute(
        f'INSERT INTO "{schema}".a VALUES (1)',
        f'INSERT INTO "{schema}".b VALUES (1)',
        f'DROP TABLE "{schema}".b',
        f'INSERT INTO "{schema}".a VALUES (2)',
    )
    line = _one_line_failure(omconnect("run", "cdc.yaml", "--once", cwd=cdc.folder))
    assert f"source.tables[1]: there is no table '{schema}.b'" in line, line

    cdc.pipeline(["a"], snapshot="never")  # what the message says
    cdc.run_once()
    assert _ids(cdc.events("a")) == [1, 2]


# -- 4. concurrent writers ---------------------------------------------------------------------


class RandomWriter(threading.Thread):
    """Random inserts, updates (of the key too) and deletes on ``tables``, one to three per
    transaction; a transaction that fails (a duplicate key, a deadlock) is rolled back."""

    def __init__(self, database: SqlDatabase, tables: list[str], seed: int) -> None:
        super().__init__(daemon=True)
        self.engine = database.engine
        self.tables = tables
        self.random = random.Random(seed)
        self.halt = threading.Event()
        self.committed = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with self.engine.connect() as connection:
                while not self.halt.is_set():
                    try:
                        for _ in range(self.random.randint(1, 3)):
                            connection.execute(*self._statement())
                        connection.commit()
                        self.committed += 1
                    except sa.exc.DBAPIError:
                        connection.rollback()
        except BaseException as error:  # seen by the test
            self.error = error

    def _statement(self) -> tuple[Any, dict[str, Any]]:
        table = self.random.choice(self.tables)
        key = self.random.randint(1, 300)
        kind = self.random.choices(["insert", "update", "rekey", "delete"], [4, 4, 1, 2])[0]
        value = {"k": key, "v": self.random.randint(0, 10**6), "n": self.random.randint(1, 300)}
        statement = {
            "insert": f"INSERT INTO {table} VALUES (:k, :v, 'w' || :v)",
            "update": f"UPDATE {table} SET v = :v, w = 'u' || :v WHERE id = :k",
            "rekey": f"UPDATE {table} SET id = :n, v = :v WHERE id = :k",
            "delete": f"DELETE FROM {table} WHERE id = :k",
        }[kind]
        return sa.text(statement), value


def test_three_concurrent_writers_are_rebuilt_exactly_from_the_topics(cdc: Cdc) -> None:
    schema = cdc.schema
    tables = [f'"{schema}".t1', f'"{schema}".t2']
    for table in tables:
        cdc.database.execute(
            f"CREATE TABLE {table} (id int PRIMARY KEY, v int, w text)",
            f"INSERT INTO {table} SELECT i, i, 's' FROM generate_series(1, 300, 2) i",
        )
    cdc.pipeline(["t1", "t2"], snapshot="initial")
    writers = [RandomWriter(cdc.database, tables, seed) for seed in range(3)]
    with Pipeline(cdc) as pipeline:
        for writer in writers:
            writer.start()  # while the pipeline snapshots, then streams
        try:
            end = time.monotonic() + 10
            while time.monotonic() < end:
                pipeline.alive()
                time.sleep(0.5)
        finally:
            for writer in writers:
                writer.halt.set()
            for writer in writers:
                writer.join(timeout=30)
        pipeline.alive()
    for writer in writers:
        assert writer.error is None, writer.error
        assert writer.committed > 100, "a writer committed almost nothing"
    cdc.run_once()
    for name in ("t1", "t2"):
        events = cdc.events(name)
        ops = {e["value"]["op"] for e in events if e["value"]}
        assert {"r", "c", "u", "d"} <= ops, ops
        assert apply_debezium(events, "id") == table_rows(cdc.database, name, "id"), name

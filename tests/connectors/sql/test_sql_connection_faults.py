"""The sql connector over connections that fail for real, with the database servers left
running (other work on this machine uses them): a TCP proxy (``tests.support.tcp_proxy``)
between ``omconnect run`` and the machine's PostgreSQL or MariaDB resets every connection in
the middle of a run and refuses new ones for a while; another session holds a lock.

- A read cut mid-way (snapshot, and an incremental pass) goes on from its chunk: every row
  reaches the topic, at most one chunk of them twice.
- A sink cut mid-way ends with its table equal to the input: the flush that failed was rolled
  back with its positions, and its records were delivered again from the stored ones.
- A lock held by another session is waited out: the sink's write, refused by its lock timeout,
  is retried, and everything is written once the lock is gone.
- A run started while the database cannot be reached retries for ``errors.retry_timeout``,
  then fails with one line naming the database and what to check; back in time, it succeeds.
- Every retriable cause that can be made here (a refused, dropped or terminated connection,
  MariaDB's lost connection, deadlocks, lock timeouts, a serialization failure, a locked SQLite
  file) is a ``RetriableError`` for the source and the sink alike.
"""

from __future__ import annotations

import sqlite3
import subprocess
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pytest
import sqlalchemy as sa

from omconnect.connectors.api import RetriableError
from omconnect.connectors.sql._database import Database, TableName, write_error
from tests.connectors.sql.test_database import (
    PASSWORD,
    assert_failed_after_retries,
    pipeline_file,
)
from tests.connectors.sql.test_sink_process import PUBLISH, SINK
from tests.support.failing_pipeline import sink_ids, topic_messages
from tests.support.omconnect_process import omconnect, spawn_omconnect
from tests.support.sql_databases import SqlDatabase, open_database, sqlalchemy_url
from tests.support.tcp_proxy import TcpProxy

from .sink_fixtures import quoted_table, scalar

ROWS = 200_000
CHUNK = 5_000
# How long a cut keeps the database unreachable: long enough for a few failed retries.
OUTAGE_SECONDS = 2.0
RETRY = "errors: {retry_timeout: 60s, retry_max_delay: 1s}\n"
SERVERS = ["postgresql", "mysql"]


@pytest.fixture(params=SERVERS)
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlDatabase]:
    """A fresh database on each server (``open_database``)."""
    yield from open_database(request.param, tmp_path)


def server_port(database: SqlDatabase) -> int:
    port = sa.make_url(database.url).port
    assert port is not None
    return port


@contextmanager
def proxy_to(database: SqlDatabase) -> Iterator[TcpProxy]:
    with TcpProxy(server_port(database)) as proxy:
        yield proxy


def still_running(run: subprocess.Popen[str], what: str) -> None:
    """Fail with the run's output when it has ended (before ``what``)."""
    if run.poll() is not None:
        raise AssertionError(f"the run ended before {what}: {run.communicate()[1]}")


def wait_for_cut(proxy: TcpProxy, run: subprocess.Popen[str]) -> None:
    """Wait until the armed cut happened, failing if the run ended first."""
    while not proxy.wait_cut(0.02):
        still_running(run, "the cut")


# -- a read cut mid-way --------------------------------------------------------------------


def make_big_table(database: SqlDatabase) -> None:
    """Table ``big``: ``ROWS`` rows of about 110 bytes (id, name)."""
    table = quoted_table(database, "big")
    database.execute(f"CREATE TABLE {table} (id BIGINT PRIMARY KEY, name VARCHAR(200))")
    if database.dialect == "postgresql":
        rows = f"SELECT i, repeat('x', 100) || i FROM generate_series(0, {ROWS - 1}) i"
    else:
        rows = f"SELECT seq, CONCAT(REPEAT('x', 100), seq) FROM seq_0_to_{ROWS - 1}"
    database.execute(f"INSERT INTO {table} {rows}")


def read_pipeline(url: str, table: str, mode: str) -> str:
    cursor = "cursor: [id]" if mode == "incremental" else ""
    text = textwrap.dedent(
        f"""\
        name: cut-read
        source:
          connector: sql
          url: {url}
          tables: ["{table}"]
          mode: {mode}
          {cursor}
          chunk_size: {CHUNK}
        topic: big
        max_in_flight_bytes: 1
        commit_interval: 0.05
        sink: {{connector: parquet, path: out}}
        """
    )
    return text + RETRY


# Where a read is cut. PostgreSQL's reader keeps one connection: cut in the middle of the
# bytes of a chunk (the table is about 22 MB through the proxy). ConnectorX (MariaDB) opens a
# connection per chunk and, the server being local, reads the rows over its Unix socket: cut
# as the tenth chunk's connection is made.
READ_CUT: dict[str, dict[str, int]] = {
    "postgresql": {"nbytes": 5_000_000},
    "mysql": {"connections": 10},
}


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["snapshot", "incremental"])
def test_a_read_cut_mid_way_goes_on_from_its_chunk(
    server: SqlDatabase,
    mode: str,
    tmp_path: Path,
) -> None:
    database = server
    make_big_table(database)
    with proxy_to(database) as proxy:
        url = proxy.url_of(database.url)
        (tmp_path / "p.yaml").write_text(read_pipeline(url, database.table("big"), mode))
        proxy.cut_after(**READ_CUT[database.dialect])
        run = spawn_omconnect("run", "p.yaml", "--once", cwd=tmp_path)
        wait_for_cut(proxy, run)
        connections_at_cut = proxy.accepted
        time.sleep(OUTAGE_SECONDS)
        proxy.restore()
        _, errors = run.communicate(timeout=300)
        assert run.returncode == 0, errors
        assert proxy.accepted > connections_at_cut, "the read did not connect again"
    if database.dialect == "postgresql":  # the connection of a chunk being read broke
        assert "source poll failed" in errors, errors

    total = topic_messages(tmp_path, f"big.{database.schema}.big")
    assert ROWS <= total <= ROWS + CHUNK, f"{total - ROWS} rows published twice"
    ids = pc.unique(sink_ids(tmp_path / "out"))
    assert len(ids) == ROWS, f"{ROWS - len(ids)} rows missing"
    assert pc.min(ids).as_py() == 0 and pc.max(ids).as_py() == ROWS - 1


# -- a sink cut mid-way --------------------------------------------------------------------


def publish_events(cwd: Path, rows: int) -> pa.Table:
    """``rows`` events (k, seq, payload) published to the topic ``events`` of the embedded
    broker under ``cwd`` (``PUBLISH``); returns them."""
    seq = np.arange(rows, dtype=np.int64)
    events = pa.table(
        {
            "k": (seq * 7919) % 20_000,
            "seq": seq,
            "payload": pa.array(np.char.add("p-", seq.astype(str))),
        }
    )
    (cwd / "data").mkdir()
    pacsv.write_csv(events, cwd / "data" / "events.csv")
    (cwd / "publish.yaml").write_text(PUBLISH)
    published = omconnect("run", "publish.yaml", "--once", cwd=cwd, timeout=300)
    assert published.returncode == 0, published.stderr
    return events


def sink_pipeline(url: str, database: SqlDatabase, table: str = "events") -> str:
    """``SINK``: the topic ``events`` appended into ``table``, retried for a minute."""
    return SINK.format(url=url, table=database.table(table), mode="append") + RETRY


def rows_in(database: SqlDatabase, table: str = "events") -> int:
    """The rows of ``table`` that committed flushes wrote (0 before it exists)."""
    if not sa.inspect(database.engine).has_table(table, schema=database.schema):
        return 0
    return int(scalar(database, f"SELECT COUNT(*) FROM {quoted_table(database, table)}"))


def assert_table_is(database: SqlDatabase, events: pa.Table, table: str = "events") -> None:
    """``table`` holds each of ``events`` once (by ``seq``), with its ``k`` and payload."""
    with database.engine.connect() as connection:
        got = connection.execute(
            sa.text(f"SELECT seq, k, payload FROM {quoted_table(database, table)} ORDER BY seq")
        ).all()
    assert len(got) == events.num_rows, f"{len(got)} rows, expected {events.num_rows}"
    assert [r[0] for r in got] == events.column("seq").to_pylist(), "rows lost or repeated"
    assert [r[1] for r in got] == events.column("k").to_pylist()
    assert [r[2] for r in got] == events.column("payload").to_pylist()


@pytest.mark.slow
def test_a_sink_cut_mid_way_ends_with_the_input_exactly(
    server: SqlDatabase,
    tmp_path: Path,
) -> None:
    database = server
    events = publish_events(tmp_path, ROWS)
    with proxy_to(database) as proxy:
        (tmp_path / "sink.yaml").write_text(sink_pipeline(proxy.url_of(database.url), database))
        # The input is some 5 MB (MariaDB's text) to 10 MB (PostgreSQL's binary COPY) through
        # the proxy, 10,000 rows a flush: the cut lands in the middle of a flush's load.
        proxy.cut_after(nbytes=2_000_000)
        run = spawn_omconnect("run", "sink.yaml", "--once", cwd=tmp_path)
        wait_for_cut(proxy, run)
        written_at_cut = rows_in(database)
        time.sleep(OUTAGE_SECONDS)
        proxy.restore()
        _, errors = run.communicate(timeout=300)
        assert run.returncode == 0, errors
    assert 0 < written_at_cut < ROWS, f"the cut came at {written_at_cut} rows, not mid-run"
    assert "sink flush failed, redelivering from stored positions" in errors, errors
    assert "cannot reach the database" in errors
    assert_table_is(database, events)


@pytest.mark.slow
def test_a_second_outage_after_progress_is_retried_for_the_whole_timeout_again(
    postgres_database: SqlDatabase, tmp_path: Path
) -> None:
    """``errors.retry_timeout`` is the time without progress: a sink that wrote on after an
    outage survives a second one that comes later than the timeout after the first."""
    database = postgres_database
    events = publish_events(tmp_path, ROWS)
    retry_timeout = 4.0
    with proxy_to(database) as proxy:
        pipeline = sink_pipeline(proxy.url_of(database.url), database)
        (tmp_path / "sink.yaml").write_text(
            pipeline.replace("retry_timeout: 60s", f"retry_timeout: {retry_timeout}s")
        )
        proxy.cut_after(nbytes=2_000_000)
        run = spawn_omconnect("run", "sink.yaml", "--once", cwd=tmp_path)
        wait_for_cut(proxy, run)
        first_outage = time.monotonic()
        written_at_cut = rows_in(database)
        time.sleep(1.5)
        proxy.restore()
        while rows_in(database) <= written_at_cut:  # written on after the outage
            still_running(run, "writing on")
            time.sleep(0.01)
        with database.engine.connect() as holder:
            # The sink waits for this lock (no lock_timeout): no progress, and no failure,
            # until the second outage, later than the timeout after the first.
            holder.execute(sa.text(f"LOCK TABLE {quoted_table(database, 'events')} IN SHARE MODE"))
            assert rows_in(database) < ROWS, "the sink finished before the second outage"
            time.sleep(max(0.0, first_outage + retry_timeout + 1.0 - time.monotonic()))
            proxy.cut()
            holder.commit()
        time.sleep(1.5)
        proxy.restore()
        _, errors = run.communicate(timeout=300)
    assert run.returncode == 0, errors
    assert errors.count("sink flush failed, redelivering from stored positions") >= 2, errors
    assert_table_is(database, events)


# -- a lock held by another session --------------------------------------------------------


def waiting_sessions(database: SqlDatabase, table: str) -> set[int]:
    """The sessions waiting for a lock on ``table`` now (their process ids)."""
    with database.engine.connect() as connection:
        return set(
            connection.execute(
                sa.text(
                    "SELECT pid FROM pg_locks WHERE NOT granted AND relation = to_regclass(:table)"
                ),
                {"table": quoted_table(database, table)},
            ).scalars()
        )


def test_a_lock_held_by_another_session_is_waited_out(
    postgres_database: SqlDatabase, tmp_path: Path
) -> None:
    """The sink's session gives up waiting after its ``lock_timeout`` (SQLSTATE 55P03): the
    flush is retried on a new connection, again and again, until the lock is released."""
    database = postgres_database
    events = publish_events(tmp_path, 20_000)
    table = quoted_table(database, "events")
    database.execute(f"CREATE TABLE {table} (k BIGINT, seq BIGINT, payload TEXT)")
    url = f"{database.url}?options=-clock_timeout%3D500"
    (tmp_path / "sink.yaml").write_text(sink_pipeline(url, database))
    holder = database.engine.connect()
    try:
        holder.execute(sa.text(f"LOCK TABLE {table} IN SHARE MODE"))  # no writes until commit
        run = spawn_omconnect("run", "sink.yaml", "--once", cwd=tmp_path)
        waiting: set[int] = set()
        while len(waiting) < 2:  # a second session waiting: the first one gave up, retried
            still_running(run, "the lock was released")
            waiting |= waiting_sessions(database, "events")
            time.sleep(0.02)
        assert rows_in(database) == 0
        holder.commit()
        _, errors = run.communicate(timeout=300)
    finally:
        holder.close()
    assert run.returncode == 0, errors
    assert "another session holds a lock the write needs" in errors, errors
    assert "lock timeout" in errors
    assert_table_is(database, events)


# -- a run started while the database cannot be reached ------------------------------------


def small_table(database: SqlDatabase, rows: int = 1_000) -> str:
    """Table ``orders`` of ``rows`` rows; its ``tables:`` entry."""
    table = quoted_table(database, "orders")
    database.execute(f"CREATE TABLE {table} (id BIGINT PRIMARY KEY, amount BIGINT)")
    with database.engine.begin() as connection:
        connection.execute(
            sa.text(f"INSERT INTO {table} (id, amount) VALUES (:id, :amount)"),
            [{"id": i, "amount": i * 10} for i in range(rows)],
        )
    return database.table("orders")


def with_password(url: str) -> str:
    """``url`` with ``PASSWORD`` (never tried: the proxy refuses the connection first)."""
    return sa.make_url(url).set(password=PASSWORD).render_as_string(hide_password=False)


def test_a_read_started_while_the_database_is_unreachable_fails_in_one_line(
    server: SqlDatabase,
    tmp_path: Path,
) -> None:
    database = server
    table = small_table(database)
    with proxy_to(database) as proxy:
        proxy.cut()
        pipeline = pipeline_file(tmp_path, table, retry_timeout="2s")
        env = {"SQL_URL": with_password(proxy.url_of(database.url))}
        ran = omconnect("run", pipeline, "--once", cwd=tmp_path, env=env, timeout=120)
    assert ran.returncode != 0
    place = f'{database.dialect} database "{sa.make_url(database.url).database}"'
    assert_failed_after_retries(
        ran.stderr + ran.stdout, place, f"127.0.0.1:{proxy.port}", "server runs", "`url`"
    )


def test_a_sink_started_while_the_database_is_unreachable_fails_in_one_line(
    postgres_database: SqlDatabase, tmp_path: Path
) -> None:
    database = postgres_database
    publish_events(tmp_path, 100)
    with proxy_to(database) as proxy:
        proxy.cut()
        url = with_password(proxy.url_of(database.url))
        (tmp_path / "sink.yaml").write_text(
            sink_pipeline(url, database).replace("retry_timeout: 60s", "retry_timeout: 2s")
        )
        ran = omconnect("run", "sink.yaml", "--once", cwd=tmp_path, timeout=120)
    assert ran.returncode != 0
    assert_failed_after_retries(
        ran.stderr + ran.stdout,
        f'table {database.table("events")} at postgresql database "test" on 127.0.0.1:{proxy.port}',
        "cannot reach the database",
        "is the server running",
    )


def back_after_first_retry(proxy: TcpProxy, cwd: Path, *args: str) -> tuple[int, str]:
    """Run ``omconnect ARGS`` against the cut ``proxy``; restore the proxy once the run said
    it retries its start; returns the exit status and the output."""
    run = spawn_omconnect(*args, cwd=cwd)
    assert run.stderr is not None
    seen = []
    for line in run.stderr:  # until the run says it retries (or ends)
        seen.append(line)
        if "task start failed" in line:
            break
    proxy.restore()
    out, errors = run.communicate(timeout=300)
    return run.returncode, "".join(seen) + errors + out


@pytest.mark.parametrize("side", ["source", "sink"])
def test_a_run_started_while_the_database_is_unreachable_goes_on_once_it_is_back(
    postgres_database: SqlDatabase, side: str, tmp_path: Path
) -> None:
    database = postgres_database
    with proxy_to(database) as proxy:
        proxy.cut()
        url = proxy.url_of(database.url)
        if side == "source":
            table = small_table(database)
            pipeline = pipeline_file(tmp_path, table, retry_timeout="60s")
            pipeline_text = (tmp_path / pipeline).read_text().replace("${SQL_URL}", url)
            (tmp_path / pipeline).write_text(pipeline_text)
        else:
            events = publish_events(tmp_path, 1_000)
            pipeline = "sink.yaml"
            (tmp_path / pipeline).write_text(sink_pipeline(url, database))
        code, output = back_after_first_retry(proxy, tmp_path, "run", pipeline, "--once")
    assert code == 0, output
    assert "task start failed (attempt 1)" in output
    if side == "source":
        assert topic_messages(tmp_path, f"errors.{database.schema}.orders") == 1_000
    else:
        assert_table_is(database, events)


# -- every retriable cause, made for real ---------------------------------------------------


def concurrently(first: Callable[[], None], second: Callable[[], None]) -> None:
    """Run ``first`` on a thread and ``second`` here; both must have ended."""
    failure: list[BaseException] = []

    def run_first() -> None:
        try:
            first()
        except BaseException as error:  # handed to the test's thread
            failure.append(error)

    thread = threading.Thread(target=run_first)
    thread.start()
    try:
        second()
    finally:
        thread.join(timeout=60)
    if failure:
        raise failure[0]


def two_rows(database: SqlDatabase) -> str:
    table = quoted_table(database, "locked")
    database.execute(
        f"CREATE TABLE {table} (id INT PRIMARY KEY, v INT)",
        f"INSERT INTO {table} VALUES (1, 0), (2, 0)",
    )
    return table


def raised(statement: Callable[[], Any]) -> BaseException:
    try:
        statement()
    except Exception as error:
        return error
    raise AssertionError("the statement did not fail")


def deadlock(database: SqlDatabase, _: TcpProxy) -> BaseException:
    """Two sessions each update a row, then the other's: one is chosen to fail."""
    table = two_rows(database)
    failures: list[BaseException] = []

    def session(first: int, second: int, pause: float) -> Callable[[], None]:
        def run() -> None:
            with database.engine.connect() as connection:
                connection.execute(sa.text(f"UPDATE {table} SET v = 1 WHERE id = {first}"))
                time.sleep(pause)
                try:
                    connection.execute(sa.text(f"UPDATE {table} SET v = 1 WHERE id = {second}"))
                except sa.exc.DBAPIError as error:
                    failures.append(error)
                connection.rollback()

        return run

    concurrently(session(1, 2, 0.5), session(2, 1, 1.0))
    assert len(failures) == 1, failures
    return failures[0]


def lock_timeout(database: SqlDatabase, _: TcpProxy) -> BaseException:
    """A row locked by one session; another gives up waiting for it."""
    table = two_rows(database)
    give_up = (
        "SET lock_timeout = 300"
        if database.dialect == "postgresql"
        else "SET innodb_lock_wait_timeout = 1"
    )
    with database.engine.connect() as holder, database.engine.connect() as waiter:
        holder.execute(sa.text(f"SELECT v FROM {table} WHERE id = 1 FOR UPDATE"))
        waiter.execute(sa.text(give_up))
        return raised(lambda: waiter.execute(sa.text(f"UPDATE {table} SET v = 2 WHERE id = 1")))


def serialization_failure(database: SqlDatabase, _: TcpProxy) -> BaseException:
    """Two serializable transactions that each read what the other writes."""
    table = two_rows(database)
    with database.engine.connect() as first, database.engine.connect() as second:
        for connection in (first, second):
            connection.execute(sa.text("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE"))
            connection.execute(sa.text(f"SELECT sum(v) FROM {table}"))
        first.execute(sa.text(f"UPDATE {table} SET v = 1 WHERE id = 1"))
        second.execute(sa.text(f"UPDATE {table} SET v = 1 WHERE id = 2"))
        first.commit()
        return raised(second.commit)


def refused(database: SqlDatabase, proxy: TcpProxy) -> BaseException:
    proxy.cut()
    engine = sa.create_engine(sqlalchemy_url(proxy.url_of(database.url)))
    try:
        return raised(engine.connect)
    finally:
        engine.dispose()


def dropped(database: SqlDatabase, proxy: TcpProxy) -> BaseException:
    engine = sa.create_engine(sqlalchemy_url(proxy.url_of(database.url)))
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
            proxy.cut()
            return raised(lambda: connection.execute(sa.text("SELECT 1")))
    finally:
        engine.dispose()


def terminated(database: SqlDatabase, _: TcpProxy) -> BaseException:
    """The session ended by the server (PostgreSQL: "terminating connection due to
    administrator command"; MariaDB: the connection killed, "Lost connection")."""
    with database.engine.connect() as victim, database.engine.connect() as admin:
        if database.dialect == "postgresql":
            pid = victim.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
            admin.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        else:
            pid = victim.execute(sa.text("SELECT CONNECTION_ID()")).scalar_one()
            admin.execute(sa.text(f"KILL CONNECTION {int(pid)}"))
        time.sleep(0.2)
        return raised(lambda: victim.execute(sa.text("SELECT 1")))


CAUSES: dict[str, Callable[[SqlDatabase, TcpProxy], BaseException]] = {
    "refused": refused,
    "dropped": dropped,
    "terminated": terminated,
    "deadlock": deadlock,
    "lock timeout": lock_timeout,
    "serialization failure": serialization_failure,
}
SERIAL = "serialization failure"


def assert_retriable_both_ways(error: BaseException, url: str) -> None:
    """``error`` is a ``RetriableError`` in the source's words and in the sink's, each one
    line."""
    database = Database.open(url)
    try:
        table = TableName("s", "t")
        for translated in (
            database.translate(error, table),
            write_error(error, table, database.url),
        ):
            assert isinstance(translated, RetriableError), (
                f"{type(translated).__name__}: {translated}"
            )
            assert "\n" not in str(translated)
    finally:
        database.close()


@pytest.mark.parametrize(
    ("dialect", "cause"),
    # InnoDB's SERIALIZABLE takes locks (a deadlock or a lock wait) instead of failing a commit.
    [(d, c) for d in SERVERS for c in CAUSES if (d, c) != ("mysql", SERIAL)],
)
def test_every_retriable_cause_is_retriable_for_source_and_sink(
    dialect: str, cause: str, tmp_path: Path
) -> None:
    for database in open_database(dialect, tmp_path):
        with proxy_to(database) as proxy:
            error = CAUSES[cause](database, proxy)
        assert_retriable_both_ways(error, database.url)


def test_a_locked_sqlite_file_is_retriable(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (id INTEGER)")
    holder.execute("BEGIN IMMEDIATE")
    writer = sqlite3.connect(path, timeout=0)
    try:
        error = raised(lambda: writer.execute("INSERT INTO t VALUES (1)"))
    finally:
        writer.close()
        holder.close()
    assert_retriable_both_ways(error, f"sqlite:///{path}")


@pytest.mark.parametrize(
    "message",
    [
        "the database system is starting up",
        "the database system is shutting down",
        "the database system is in recovery mode",
    ],
)
def test_a_restarting_server_is_retriable(message: str) -> None:
    """What libpq says while the server restarts (not made here: the server is shared)."""
    import psycopg

    error = psycopg.OperationalError(
        f'connection failed: connection to server at "127.0.0.1", port 5432 failed: FATAL:  '
        f"{message}"
    )
    assert_retriable_both_ways(error, "postgresql://postgres@127.0.0.1:5432/test")

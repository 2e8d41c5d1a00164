"""What only the Postgres state has: its schema and versioned tables, several workers opening
and writing it at once, a session the server dropped, and one-line errors for a server that
is unreachable, a user it refuses, a database it lacks and a right the user has not, none
of them showing the password. The contracts every backend keeps are in ``offsets/``,
``schema_registry/`` and ``test_pipeline_lock``."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from omconnect.runtime.state import (
    OffsetStoreError,
    PipelineLock,
    StateUnavailableError,
    open_offset_store,
    open_state,
)
from omconnect.runtime.state.postgres import DEFAULT_SCHEMA, PostgresState, StateLocation
from omconnect.schemas.record import Position
from tests.support.sql_databases import POSTGRES_URL
from tests.support.tcp_proxy import TcpProxy

CANARY = "pw-canary-5e1d"
TABLES = [
    "compatibility",
    "run_lock_holders",
    "schedule_progress",
    "schemas",
    "source_offsets",
    "state_version",
    "subject_versions",
]


def admin(*statements: str) -> list[tuple]:
    """Run ``statements`` as the server's superuser; the last one's rows."""
    with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
        rows: list[tuple] = []
        for statement in statements:
            cursor = connection.execute(statement)
            rows = cursor.fetchall() if cursor.description else []
        return rows


def tables_of(schema: str) -> list[str]:
    rows = admin(f"SELECT tablename FROM pg_tables WHERE schemaname = '{schema}' ORDER BY 1")
    return [row[0] for row in rows]


@pytest.fixture
def new_schema(postgres_state: str) -> Iterator[str]:
    """A schema name no state uses yet (dropped after, if the test made it)."""
    schema = f"{open_state(postgres_state).location.schema}_new"
    yield schema
    admin(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture
def unprivileged_user() -> Iterator[str]:
    """A login role with no right but CONNECT (dropped after)."""
    role = f"omc_{uuid.uuid4().hex[:10]}"
    admin(f"CREATE ROLE {role} LOGIN")
    yield role
    admin(f"DROP OWNED BY {role}", f"DROP ROLE {role}")


def test_the_url_names_the_server_and_the_schema_never_the_password() -> None:
    location = StateLocation.from_url(f"postgresql+psycopg://u:{CANARY}@db:6543/st?sslmode=require")
    assert (location.host, location.port, location.database, location.user) == (
        "db",
        "6543",
        "st",
        "u",
    )
    assert location.schema == DEFAULT_SCHEMA == "omconnect"
    assert location.where == "PostgreSQL at db:6543, database st"
    assert CANARY not in repr(location) and CANARY not in repr(PostgresState(POSTGRES_URL))
    assert StateLocation.from_url("postgres://db/st?schema=lake").schema == "lake"


@pytest.mark.parametrize(
    ("url", "words"),
    [
        (f"postgresql://u:{CANARY}%zz@db/st", "the postgresql:// URL is malformed"),
        ("postgresql://db/st?schema=", "schema= in the postgresql:// URL is empty"),
        ("postgresql://db/st?schema=pg_state", "starts with pg_"),
        (f"postgresql://db/st?schema={'s' * 64}", "longer than PostgreSQL's 63 bytes"),
        ("postgresql://db/st?schema=a&schema=b", "sets schema= twice"),
    ],
)
def test_a_bad_url_is_refused_in_one_line(url: str, words: str) -> None:
    with pytest.raises(StateUnavailableError, match=words) as refused:
        open_state(url)
    assert CANARY not in str(refused.value) and "\n" not in str(refused.value)


def test_the_schema_and_its_tables_are_created_with_a_layout_version(new_schema: str) -> None:
    store = open_offset_store(f"{POSTGRES_URL}?schema={new_schema}")
    store.close()
    assert tables_of(new_schema) == TABLES
    assert admin(f'SELECT version FROM "{new_schema}".state_version') == [(2,)]


def test_opening_existing_stores_creates_nothing(postgres_state: str, new_schema: str) -> None:
    missing = open_state(f"{POSTGRES_URL}?schema={new_schema}")
    assert missing.open_existing_offset_store() is None
    assert missing.open_existing_schema_registry() is None
    assert admin(f"SELECT 1 FROM pg_namespace WHERE nspname = '{new_schema}'") == []
    empty = open_state(postgres_state)  # its schema exists, with no tables
    assert empty.open_existing_offset_store() is None
    assert tables_of(empty.location.schema) == []


def test_a_state_written_by_a_newer_omconnect_is_refused(postgres_state: str) -> None:
    open_offset_store(postgres_state).close()
    schema = open_state(postgres_state).location.schema
    admin(f'UPDATE "{schema}".state_version SET version = 99')
    with pytest.raises(OffsetStoreError, match="layout version 99, written by a newer omconnect"):
        open_offset_store(postgres_state)
    with pytest.raises(OffsetStoreError, match="upgrade omconnect"):
        open_state(postgres_state).open_existing_schema_registry()


def test_workers_opening_a_new_state_at_once_all_get_it(new_schema: str) -> None:
    url = f"{POSTGRES_URL}?schema={new_schema}"
    start = threading.Barrier(6)
    failures: list[BaseException] = []

    def open_and_write(number: int) -> None:
        try:
            start.wait()
            store = open_offset_store(url)
            store.put("p", [Position({"worker": number}, {"n": 1})])
            store.close()
        except BaseException as error:
            failures.append(error)

    threads = [threading.Thread(target=open_and_write, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    store = open_offset_store(url)
    assert len(store.all("p")) == 6
    store.close()


def test_two_workers_putting_the_same_partitions_in_any_order_never_deadlock(
    postgres_state: str,
) -> None:
    partitions = [{"table": f"t{n}"} for n in range(30)]
    failures: list[BaseException] = []

    def worker(order: list[dict[str, str]], name: str) -> None:
        store = open_offset_store(postgres_state)  # a session of its own, as a process has
        try:
            for n in range(40):
                store.put("p", [Position(p, {"n": n, "by": name}) for p in order])
        except BaseException as error:
            failures.append(error)
        finally:
            store.close()

    threads = [
        threading.Thread(target=worker, args=(partitions, "forward")),
        threading.Thread(target=worker, args=(partitions[::-1], "backward")),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    store = open_offset_store(postgres_state)
    assert {p.offset["n"] for p in store.all("p")} == {39}
    store.close()


def test_a_store_carries_on_after_the_server_dropped_its_session(postgres_state: str) -> None:
    application = f"omc-test-{uuid.uuid4().hex[:8]}"
    store = open_offset_store(f"{postgres_state}&application_name={application}")
    store.put("p", [Position({"f": "a"}, {"n": 1})])
    terminated = admin(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        f"WHERE application_name = '{application}'"
    )
    assert terminated == [(True,)]
    store.put("p", [Position({"f": "a"}, {"n": 2})])
    assert store.get("p", {"f": "a"}) == {"n": 2}
    store.close()


def test_a_store_waits_out_a_brief_outage_and_reports_a_long_one(postgres_state: str) -> None:
    with TcpProxy(5432) as proxy:
        store = open_offset_store(proxy.url_of(postgres_state))
        store.put("p", [Position({"f": "a"}, {"n": 1})])
        proxy.cut()  # every session dropped, new ones refused: a restarting server
        threading.Timer(0.3, proxy.restore).start()
        store.put("p", [Position({"f": "a"}, {"n": 2})])
        assert store.get("p", {"f": "a"}) == {"n": 2}
        proxy.cut()
        started = time.monotonic()
        with pytest.raises(OffsetStoreError) as failed:
            store.put("p", [Position({"f": "a"}, {"n": 3})])
        assert time.monotonic() - started < 10
        assert str(failed.value).startswith(
            f"state: cannot reach PostgreSQL at 127.0.0.1:{proxy.port}, database test: "
        )
        assert "\n" not in str(failed.value)
        proxy.restore()
        store.put("p", [Position({"f": "a"}, {"n": 4})])
        assert store.get("p", {"f": "a"}) == {"n": 4}
        store.close()


def test_two_states_in_one_database_lock_apart(postgres_state: str, new_schema: str) -> None:
    first = PipelineLock(postgres_state, "orders")
    first.acquire("omconnect run")
    second = PipelineLock(f"{POSTGRES_URL}?schema={new_schema}", "orders")
    second.acquire("omconnect run")
    second.release()
    first.release()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_an_unreachable_server_is_named_in_one_line() -> None:
    port = free_port()
    started = time.monotonic()
    with pytest.raises(OffsetStoreError) as refused:
        open_offset_store(f"postgresql://postgres:{CANARY}@127.0.0.1:{port}/test")
    message = str(refused.value)
    assert message.startswith(
        f"state: cannot reach PostgreSQL at 127.0.0.1:{port}, database test: Connection refused"
    )
    assert "check that the server runs" in message
    assert CANARY not in message and "\n" not in message
    assert refused.value.__cause__ is None and refused.value.__suppress_context__
    assert time.monotonic() - started < 10
    with pytest.raises(OffsetStoreError, match="cannot reach"):
        PipelineLock(f"postgresql://127.0.0.1:{port}/test", "orders").acquire()


def test_a_missing_database_is_named_in_one_line() -> None:
    database = f"omc_missing_{uuid.uuid4().hex[:8]}"
    with pytest.raises(OffsetStoreError) as refused:
        open_state(
            f"postgresql://postgres:{CANARY}@127.0.0.1:5432/{database}"
        ).open_schema_registry()
    message = str(refused.value)
    assert message == (
        f"state: database {database} does not exist on PostgreSQL at 127.0.0.1:5432; "
        f"create it (CREATE DATABASE {database}) or correct the database in state:"
    )


def test_a_refused_user_is_named_in_one_line() -> None:
    user = f"omc_nobody_{uuid.uuid4().hex[:8]}"
    with pytest.raises(OffsetStoreError) as refused:
        open_offset_store(f"postgresql://{user}:{CANARY}@127.0.0.1:5432/test")
    message = str(refused.value)
    assert message.startswith(
        f"state: PostgreSQL at 127.0.0.1:5432, database test refused user {user}: "
    )
    assert f'role "{user}" does not exist' in message
    assert "check the user and password in state:" in message
    assert CANARY not in message and "\n" not in message


def test_a_user_who_may_not_create_the_schema_is_told_what_to_grant(
    unprivileged_user: str, postgres_state: str, new_schema: str
) -> None:
    url = f"postgresql://{unprivileged_user}:{CANARY}@127.0.0.1:5432/test"
    with pytest.raises(OffsetStoreError) as refused:
        open_offset_store(f"{url}?schema={new_schema}")
    message = str(refused.value)
    assert f"refused user {unprivileged_user}: permission denied for database test" in message
    assert f"GRANT CREATE ON DATABASE test TO {unprivileged_user}" in message
    assert f"CREATE SCHEMA {new_schema} AUTHORIZATION {unprivileged_user}" in message
    assert CANARY not in message and "\n" not in message
    # A state another user made, in a schema this one may not use.
    open_offset_store(postgres_state).close()
    schema = open_state(postgres_state).location.schema
    with pytest.raises(OffsetStoreError, match=f"GRANT USAGE, CREATE ON SCHEMA {schema} TO"):
        open_state(f"{url}?schema={schema}").open_existing_offset_store()


_WITHOUT_PSYCOPG = """
import sys
sys.modules["psycopg"] = None  # as if the sql extra were not installed
import omconnect.runtime.worker.runner  # the core imports without it
from omconnect.runtime.state import StateUnavailableError, open_state
open_state(".omconnect")
try:
    open_state("postgresql://db/state")
except StateUnavailableError as error:
    print(error)
"""


def test_without_psycopg_the_error_names_the_extra_to_install() -> None:
    result = subprocess.run(
        [sys.executable, "-c", _WITHOUT_PSYCOPG], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        "state: postgresql:// needs the psycopg driver; install it with "
        "pip install 'omconnect[sql]'"
    )

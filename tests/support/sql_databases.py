"""Fresh, real databases for the tests that use the sql connector: one per test, dropped after.

``open_database(dialect, tmp_path)`` gives a ``SqlDatabase``: a PostgreSQL schema and a
MariaDB database with unique names on the servers of this machine, or an SQLite file in the
test's temporary directory (``server_url`` puts them on another server: a private one of
``tests.support.postgres_server``, for the tests that restart it). A server that is not running
fails the test with the command that starts it; it is never skipped. The pytest fixtures built
on it live in ``tests/connectors/sql/conftest.py``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa

POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
MARIADB_URL = "mysql://root@127.0.0.1:3306/test"
DIALECTS = ("postgresql", "mysql", "sqlite")

_START = {
    "postgresql": (
        "PostgreSQL is not running on 127.0.0.1:5432; start it with "
        "`pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`"
    ),
    "mysql": (
        "MariaDB is not running on 127.0.0.1:3306; start it with "
        "`start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd`"
    ),
}


@dataclass
class SqlDatabase:
    """A database of one test: ``url`` for the connector, ``schema`` its tables live in,
    ``engine`` for the test's own statements."""

    dialect: str
    url: str
    schema: str
    engine: sa.Engine

    def table(self, name: str) -> str:
        """The ``tables:`` entry of table ``name``."""
        return f"{self.schema}.{name}"

    def execute(self, *statements: str) -> None:
        with self.engine.begin() as connection:
            for statement in statements:
                connection.execute(sa.text(statement))

    def metadata(self) -> sa.MetaData:
        return sa.MetaData(schema=None if self.dialect == "sqlite" else self.schema)


def sqlalchemy_url(url: str) -> str:
    """The URL with the drivers the tests use for their own statements."""
    return url.replace("postgresql://", "postgresql+psycopg://").replace(
        "mysql://", "mysql+pymysql://"
    )


def _server_engine(dialect: str, url: str) -> sa.Engine:
    engine = sa.create_engine(sqlalchemy_url(url), poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
    except sa.exc.OperationalError:
        shared = url in (POSTGRES_URL, MARIADB_URL)
        pytest.fail(_START[dialect] if shared else f"nothing answers at {url}", pytrace=False)
    return engine


def open_database(
    dialect: str, tmp_path: Path, server_url: str | None = None
) -> Iterator[SqlDatabase]:
    """A fresh database of ``dialect``, dropped after use: on the server whose ``test``
    database is at ``server_url``, the machine's shared one by default."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    if dialect == "sqlite":
        url = f"sqlite:///{tmp_path / 'source.db'}"
        engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
        yield SqlDatabase(dialect, url, "main", engine)
        engine.dispose()
        return
    server_url = server_url or (POSTGRES_URL if dialect == "postgresql" else MARIADB_URL)
    server = _server_engine(dialect, server_url)
    if dialect == "postgresql":
        with server.begin() as connection:
            connection.execute(sa.text(f'CREATE SCHEMA "{name}"'))
        url = server_url
        engine = sa.create_engine(sqlalchemy_url(url), poolclass=sa.pool.NullPool)
        drop = f'DROP SCHEMA "{name}" CASCADE'
    else:
        with server.begin() as connection:
            connection.execute(sa.text(f"CREATE DATABASE `{name}`"))
        url = server_url.rsplit("/", 1)[0] + f"/{name}"
        engine = sa.create_engine(sqlalchemy_url(url), poolclass=sa.pool.NullPool)
        drop = f"DROP DATABASE `{name}`"
    try:
        yield SqlDatabase(dialect, url, name, engine)
    finally:
        engine.dispose()
        with server.begin() as connection:
            connection.execute(sa.text(drop))
        server.dispose()


def drop_replication_slot(connection: sa.Connection, slot: str, publication: bool = True) -> None:
    """Drop ``slot`` (and, with ``publication``, the publication of the same name), ending
    its stream first: a slot left behind keeps the server's WAL for ever, and a server whose
    ``wal_level`` is set back below logical refuses to start while one exists. Skipping a slot
    that is still active (its walsender not gone yet) would leave it behind."""
    connection.execute(
        sa.text(
            "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots "
            "WHERE slot_name = :slot AND active_pid IS NOT NULL"
        ),
        {"slot": slot},
    )
    deadline = time.monotonic() + 10
    active = sa.text("SELECT active FROM pg_replication_slots WHERE slot_name = :slot")
    while connection.execute(active, {"slot": slot}).scalar():
        assert time.monotonic() < deadline, f"replication slot {slot} is still in use"
        time.sleep(0.1)
    connection.execute(
        sa.text(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
            "WHERE slot_name = :slot"
        ),
        {"slot": slot},
    )
    if publication:
        connection.execute(sa.text(f'DROP PUBLICATION IF EXISTS "{slot}"'))
    connection.commit()

"""Fresh, real databases for the tests that use the sql connector: one per test, dropped after.

``open_database(dialect, tmp_path)`` gives a ``SqlDatabase``: a PostgreSQL schema and a
MariaDB database with unique names on the servers of this machine, or an SQLite file in the
test's temporary directory. A server that is not running fails the test with the command that
starts it; it is never skipped. The pytest fixtures built on it live in
``tests/connectors/sql/conftest.py``.
"""

from __future__ import annotations

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


def _server_engine(dialect: str) -> sa.Engine:
    url = POSTGRES_URL if dialect == "postgresql" else MARIADB_URL
    engine = sa.create_engine(sqlalchemy_url(url), poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
    except sa.exc.OperationalError:
        pytest.fail(_START[dialect], pytrace=False)
    return engine


def open_database(dialect: str, tmp_path: Path) -> Iterator[SqlDatabase]:
    """A fresh database of ``dialect``, dropped after use."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    if dialect == "sqlite":
        url = f"sqlite:///{tmp_path / 'source.db'}"
        engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
        yield SqlDatabase(dialect, url, "main", engine)
        engine.dispose()
        return
    server = _server_engine(dialect)
    if dialect == "postgresql":
        with server.begin() as connection:
            connection.execute(sa.text(f'CREATE SCHEMA "{name}"'))
        url = POSTGRES_URL
        engine = sa.create_engine(sqlalchemy_url(url), poolclass=sa.pool.NullPool)
        drop = f'DROP SCHEMA "{name}" CASCADE'
    else:
        with server.begin() as connection:
            connection.execute(sa.text(f"CREATE DATABASE `{name}`"))
        url = MARIADB_URL.rsplit("/", 1)[0] + f"/{name}"
        engine = sa.create_engine(sqlalchemy_url(url), poolclass=sa.pool.NullPool)
        drop = f"DROP DATABASE `{name}`"
    try:
        yield SqlDatabase(dialect, url, name, engine)
    finally:
        engine.dispose()
        with server.begin() as connection:
            connection.execute(sa.text(drop))
        server.dispose()

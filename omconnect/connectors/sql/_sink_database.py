"""The sql sink's side of talking to a database: the engine from a URL, the password kept
out of every message, driver errors turned into one line a person can act on, table names
split and quoted, and reflection of what a table holds.

These are the concepts of the sql source's ``_database.py`` (written at the same time); this
module keeps the sink's copy private so the two can be merged into one later. Reflection and
DDL go through SQLAlchemy; the bulk data path has its own connection (``_sink_sessions``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine, make_url

from omconnect.connectors.api import ConfigError, ConnectorError, RetriableError

DIALECTS = ("postgresql", "mysql", "sqlite")
"""The dialects the sink writes (MariaDB is SQLAlchemy's ``mysql`` dialect)."""

_MASK = "***"


@dataclass(frozen=True)
class TableName:
    """A table named in config: an optional schema (a MariaDB database) and the table."""

    schema: str | None
    name: str

    def __str__(self) -> str:
        return f"{self.schema}.{self.name}" if self.schema else self.name


def parse_url(url: str) -> URL:
    """The SQLAlchemy URL of ``url``, refused (without echoing it) when it is not one of the
    dialects the sink writes.

    Raises:
        ConfigError: not a URL, another dialect, or an in-memory SQLite database.
    """
    try:
        parsed = make_url(url)
    except Exception:
        raise ConfigError(
            "not a SQLAlchemy URL (expected e.g. postgresql://user:password@host/db)", key="url"
        ) from None
    if dialect_of(parsed) not in DIALECTS:
        raise ConfigError(
            f"the sql sink writes PostgreSQL, MariaDB/MySQL and SQLite, not {parsed.drivername!r}",
            key="url",
        )
    if dialect_of(parsed) == "sqlite" and parsed.database in (None, "", ":memory:"):
        raise ConfigError("an in-memory SQLite database cannot be written: name a file", key="url")
    return parsed


def dialect_of(url: URL) -> str:
    """``postgresql``, ``mysql`` (MariaDB too) or ``sqlite``: the backend, without driver."""
    backend = url.get_backend_name()
    return "mysql" if backend == "mariadb" else backend


def create_engine(url: URL) -> Engine:
    """An engine for reflection and DDL (one connection at a time is enough)."""
    dialect = dialect_of(url)
    if dialect == "mysql":
        url = url.set(drivername="mysql+pymysql")
        return sa.create_engine(
            url, poolclass=sa.pool.NullPool, connect_args={"local_infile": True}
        )
    if dialect == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
        return sa.create_engine(
            url, poolclass=sa.pool.NullPool, connect_args={"connect_timeout": 10}
        )
    return sa.create_engine(url, poolclass=sa.pool.NullPool)


def mask_password(text: str, url: URL) -> str:
    """``text`` with the URL's password (and the URL as written) replaced by ``***``."""
    password = url.password
    if password:
        text = text.replace(str(password), _MASK)
    return text


def masked_url(url: URL) -> str:
    """The URL with its password shown as ``***``, for messages."""
    return url.render_as_string(hide_password=True)


def parse_table_name(text: str, key: str = "table") -> TableName:
    """``schema.table`` or ``table``; each part a plain name (it is quoted, never pasted).

    Raises:
        ConfigError: empty parts, more than one dot, or control characters.
    """
    parts = text.split(".")
    if len(parts) > 2 or any(not p or not p.isprintable() or '"' in p or "`" in p for p in parts):
        raise ConfigError(
            f"{text!r} is not a table name: write `table` or `schema.table` (letters, digits, "
            "underscores; no quotes)",
            key=key,
        )
    return TableName(parts[0], parts[1]) if len(parts) == 2 else TableName(None, parts[0])


def quote(engine: Engine, name: str) -> str:
    """``name`` quoted as an identifier of the engine's dialect."""
    return engine.dialect.identifier_preparer.quote_identifier(name)


def quote_table(engine: Engine, table: TableName) -> str:
    """The table's (schema-qualified) name, quoted for the engine's dialect."""
    name = quote(engine, table.name)
    return f"{quote(engine, table.schema)}.{name}" if table.schema else name


@dataclass(frozen=True)
class TableShape:
    """What reflection says a table holds: its columns (name -> SQLAlchemy type and
    nullability, in table order) and the column sets with a unique index (the primary key
    first)."""

    columns: dict[str, tuple[sa.types.TypeEngine[Any], bool]]
    unique_keys: list[tuple[str, ...]]


def reflect_table(engine: Engine, table: TableName) -> TableShape | None:
    """The shape of ``table``, or None when it does not exist."""
    with engine.connect() as connection:
        inspector = sa.inspect(connection)
        if not inspector.has_table(table.name, schema=table.schema):
            return None
        columns = {
            c["name"]: (c["type"], bool(c["nullable"]))
            for c in inspector.get_columns(table.name, schema=table.schema)
        }
        unique: list[tuple[str, ...]] = []
        primary = inspector.get_pk_constraint(table.name, schema=table.schema)
        if primary and primary.get("constrained_columns"):
            unique.append(tuple(primary["constrained_columns"]))
        for constraint in inspector.get_unique_constraints(table.name, schema=table.schema):
            unique.append(tuple(constraint["column_names"]))
        for index in inspector.get_indexes(table.name, schema=table.schema):
            names = index.get("column_names") or []
            if index.get("unique") and all(isinstance(n, str) for n in names):
                unique.append(tuple(str(n) for n in names))
    return TableShape(columns, unique)


def translate_error(error: BaseException, table: TableName, url: URL) -> ConnectorError:
    """A one-line error naming ``table`` and what to fix, with the password masked.

    Unreachable servers and dropped connections are ``RetriableError`` (the runtime retries,
    and a sink that stores positions redelivers from them); wrong credentials, missing
    privileges and anything else are not.
    """
    if isinstance(error, ConnectorError):
        return error
    original = getattr(error, "orig", None) or error
    text = " ".join(str(original).split()) or type(original).__name__
    detail = mask_password(text, url)[:300]
    lowered = detail.lower()
    where = f"table {table} at {masked_url(url)}"
    if _any_in(lowered, _CREDENTIALS) or ("role" in lowered and "does not exist" in lowered):
        return ConnectorError(
            f"{where}: the database refused the login ({detail}): check the user and password "
            "in url"
        )
    if _any_in(lowered, _PERMISSION):
        return ConnectorError(
            f"{where}: permission denied ({detail}): grant the url's user SELECT, INSERT, "
            "UPDATE, DELETE on the table (and CREATE for create: true and the positions table)"
        )
    if _any_in(lowered, _UNREACHABLE):
        check = (
            "does the file's directory exist, and may this user write there?"
            if dialect_of(url) == "sqlite"
            else "is the server running, and are the host and port in url right?"
        )
        return RetriableError(f"{where}: cannot reach the database ({detail}): {check}")
    if "database" in lowered and ("does not exist" in lowered or "unknown database" in lowered):
        return ConnectorError(f"{where}: {detail}: check the database name in url")
    return ConnectorError(f"{where}: {detail}")


_CREDENTIALS = ("password authentication failed", "(using password", "28p01")
_PERMISSION = (
    "permission denied",
    "command denied",
    "access denied",
    "42501",
    "attempt to write a readonly",
)
_UNREACHABLE = (
    "connection refused",
    "can't connect",
    "could not connect",
    "could not translate host",
    "server closed the connection",
    "lost connection",
    "timeout expired",
    "unable to open database file",
    "failed to open",
    "connection is closed",
    "gone away",
)


def _any_in(text: str, needles: tuple[str, ...]) -> bool:
    return any(needle in text for needle in needles)

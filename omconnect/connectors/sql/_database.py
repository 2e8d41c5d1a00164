"""One place for everything the sql source and sink say to a database through SQLAlchemy.

- ``Database.open(url)`` builds the engine from the ``url:`` option; ``mask_url`` gives the URL
  with its password replaced, the only form of it that ever reaches a message.
- Errors: one table, ``ERROR_KINDS``, sorts driver errors (by SQLSTATE or error number,
  else by the driver's words) into wrong credentials, a lock held by another session, a
  server that cannot be reached now (down, starting up or shutting down, the connection
  refused or lost), an SQLite file that cannot be opened, a missing privilege, a missing
  database, a missing table or column. ``classify`` finds the kind; the source's
  ``Database.errors``/``translate`` and the sink's ``write_error`` word it as one line that
  names the table and what to check, without the password and without a traceback, and
  both make the kinds that pass ``RetriableError`` (the runtime retries them with backoff
  until ``errors.retry_timeout``), so a read and a write of one database fail alike.
- Reflection: ``resolve_tables`` expands ``tables:`` entries (``schema.table``, ``table``,
  globs such as ``public.*``) against the tables that exist; ``reflect`` gives a table's
  columns, their omconnect types (``omconnect.schemas.sql``) and its primary key. On MariaDB
  it also reads the table's check clauses (one query), which tell its ``JSON`` columns from
  other ``LONGTEXT`` ones.
- Names: a table or column named in config is only ever used after it was found by
  reflection, as an SQLAlchemy ``Table``/``Column`` whose name the dialect's identifier
  preparer quotes when a statement is compiled. Config text is never pasted into SQL; an
  unknown or hostile name is a ``ConfigError`` with the names that do exist.
- For the sink (which names one table, maybe not there yet): ``parse_table_name`` checks a
  ``table:`` option, ``quote``/``quote_table`` quote names for the dialect, ``reflect_shape``
  says what a table holds (columns, unique keys).
- A source's ``query:`` (``reflect_query``): its result columns are reflected like a table's,
  from a temporary view of it (PostgreSQL, SQLite) or an empty temporary table made from it
  (MariaDB/MySQL, which has no temporary views), created and dropped on one connection in a
  transaction that is rolled back; the query becomes a subquery ``(<query>) AS q`` whose
  columns statements select, filter and order like a table's.
  ``Database.open(url, writes=True)`` gives the sink's engine (no pool; MariaDB with
  ``local_infile`` for ``LOAD DATA LOCAL INFILE``).

The API (``Database``, ``TableName``, ``TableInfo``, ``mask_url``, ``dialect_of``) is shared by
the source and the sink and kept stable.
"""

from __future__ import annotations

import difflib
import fnmatch
import re
import urllib.parse
import uuid
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url

from omconnect.connectors.api import ConfigError, ConnectorError, RetriableError
from omconnect.schemas import types as t
from omconnect.schemas.schema import Schema
from omconnect.schemas.sql import UnmappedSqlType, from_sql_type, json_checked_columns
from omconnect.schemas.types import DataType, Field

_MASK = "***"


def mask_url(url: str | URL) -> str:
    """``url`` with its password replaced by ``***`` (unparsable text is masked whole)."""
    try:
        parsed = url if isinstance(url, URL) else make_url(url)
    except Exception:
        return _MASK
    return parsed.render_as_string(hide_password=True)


def describe_url(url: str | URL) -> str:
    """Where ``url`` points, for messages: ``postgresql database "shop" on db:5432 as
    reader``. Holds neither the password nor the URL itself (which a pipeline may treat as a
    secret and mask whole)."""
    try:
        parsed = url if isinstance(url, URL) else make_url(url)
    except Exception:
        return "the database"
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return f'sqlite database "{parsed.database or ":memory:"}"'
    place = f"{parsed.host or 'localhost'}" + (f":{parsed.port}" if parsed.port else "")
    user = f" as {parsed.username}" if parsed.username else ""
    return f'{backend} database "{parsed.database or ""}" on {place}{user}'


def dialect_of(url: str | URL) -> str:
    """The dialect name of ``url``: ``postgresql``, ``mysql`` (also for MariaDB) or ``sqlite``.

    Raises:
        ConfigError: the URL cannot be parsed or names another database.
    """
    return _dialect(parse_url(url))


def parse_url(url: str | URL, writes: bool = False) -> URL:
    """The SQLAlchemy URL of ``url``, refused (without echoing it) when it is not one of the
    supported databases, or (``writes``) an in-memory SQLite database, which a sink cannot
    write to.

    Raises:
        ConfigError: at ``url``.
    """
    try:
        parsed = url if isinstance(url, URL) else make_url(url)
    except Exception:
        raise ConfigError(
            "not a database URL; expected e.g. postgresql://user@host:5432/db, "
            "mysql://user@host:3306/db or sqlite:///path/to.db",
            key="url",
        ) from None
    name = _dialect(parsed)
    if name not in ("postgresql", "mysql", "sqlite"):
        raise ConfigError(
            f"the sql connector reads and writes PostgreSQL, MariaDB/MySQL and SQLite, "
            f"not {name!r}",
            key="url",
        )
    if writes and name == "sqlite" and parsed.database in (None, "", ":memory:"):
        raise ConfigError("an in-memory SQLite database cannot be written: name a file", key="url")
    return parsed


def _dialect(url: URL) -> str:
    backend = url.get_backend_name()
    return "mysql" if backend == "mariadb" else backend


@dataclass(frozen=True, order=True)
class TableName:
    """A table: its schema (PostgreSQL schema, MySQL database, SQLite ``main``) and its name.

    Tables found by reflection always have their schema; the sink's ``table:`` may leave it
    out (``None``: the database's default schema)."""

    schema: str | None
    name: str

    def __str__(self) -> str:
        return f"{self.schema}.{self.name}" if self.schema else self.name


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


def quote(engine: sa.Engine, name: str) -> str:
    """``name`` quoted as an identifier of the engine's dialect."""
    return engine.dialect.identifier_preparer.quote_identifier(name)


def quote_table(engine: sa.Engine, table: TableName) -> str:
    """The table's (schema-qualified) name, quoted for the engine's dialect."""
    name = quote(engine, table.name)
    return f"{quote(engine, table.schema)}.{name}" if table.schema else name


QUERY = TableName(None, "query")
"""The name of a source's ``query:`` (its stream, and what messages call it)."""


@dataclass(frozen=True)
class TableInfo:
    """A reflected table: the SQLAlchemy ``Table`` (quoted by the dialect when compiled), its
    omconnect fields in column order and its primary key columns. For a ``query:``, the
    query as a subquery (``name`` is ``query``, without a schema, and there is no primary
    key)."""

    name: TableName
    table: sa.Table | sa.Subquery
    fields: tuple[Field, ...]
    primary_key: tuple[str, ...]

    @property
    def is_query(self) -> bool:
        """Whether this is the result of a ``query:`` rather than a table."""
        return isinstance(self.table, sa.Subquery)

    def column(self, name: str, option: str) -> sa.ColumnElement[Any]:
        """The reflected column ``name``; a ``ConfigError`` at ``option`` when there is none."""
        if name in self.table.c:
            return self.table.c[name]
        what = "the query's result" if self.is_query else f"table {self.name}"
        raise ConfigError(
            f"{what} has no column {name!r}{_did_you_mean(name, self.table.c.keys())}",
            key=option,
        )

    def schema(self, key_fields: Sequence[str], version: int = 1) -> Schema:
        """The omconnect schema of the table's rows, named after the table."""
        return Schema(
            name=f"{self.name.schema}_{self.name.name}",
            fields=self.fields,
            version=version,
            key_fields=tuple(key_fields),
        )


class Database:
    """An SQLAlchemy engine for one ``url``, with reflection and error translation.

    Build it with ``Database.open``; ``close()`` disposes of the engine's connections.
    """

    def __init__(self, engine: sa.Engine, url: URL) -> None:
        self.engine = engine
        self.url = url
        self.dialect = dialect_of(url)
        self.masked_url = mask_url(url)
        self.description = describe_url(url)

    @classmethod
    def open(cls, url: str, writes: bool = False) -> Database:
        """An engine for ``url`` (no connection is made yet).

        ``postgresql://`` uses psycopg and ``mysql://``/``mariadb://`` PyMySQL unless the URL
        names a driver. ``writes``: the sink's engine, for reflection and DDL beside its own
        bulk connection: no pool, a connect timeout for PostgreSQL, and MariaDB/MySQL
        connections allowed ``LOAD DATA LOCAL INFILE``; an in-memory SQLite URL is refused.

        Raises:
            ConfigError: the URL is not one of a supported database, or its driver is missing.
        """
        parsed = parse_url(url, writes)
        dialect = _dialect(parsed)
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        elif parsed.drivername in ("mysql", "mariadb"):
            parsed = parsed.set(drivername=f"{parsed.drivername}+pymysql")
        try:
            if writes:
                connect_args = {
                    "mysql": {"local_infile": True},
                    "postgresql": {"connect_timeout": 10},
                }.get(dialect, {})
                engine = sa.create_engine(
                    parsed, poolclass=sa.pool.NullPool, connect_args=connect_args
                )
            elif dialect == "sqlite":  # SQLite's pool takes no size
                engine = sa.create_engine(parsed)
            else:
                engine = sa.create_engine(parsed, pool_pre_ping=True, pool_size=2, max_overflow=2)
        except Exception as error:
            raise ConfigError(
                f"cannot use {mask_url(parsed)}: {_first_line(error)}", key="url"
            ) from None
        return cls(engine, parsed)

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def errors(self, table: TableName | str | None = None, doing: str = "read") -> Iterator[None]:
        """Turn driver errors raised inside into one-line ``ConnectorError``s naming ``table``.

        By their kind (``classify``): a server that cannot be reached now (down, restarting,
        the connection lost) and a lock held by another session become ``RetriableError``;
        errors that need a person (credentials, a missing database, table or column, a
        permission) are ``ConfigError`` at ``url`` or ``tables``; others ``ConnectorError``.
        """
        try:
            yield
        except ConnectorError:
            raise
        except sa.exc.SQLAlchemyError as error:
            raise self.translate(error, table, doing) from None

    def translate(
        self, error: BaseException, table: TableName | str | None = None, doing: str = "read"
    ) -> ConnectorError:
        """The one-line ``ConnectorError`` for a driver error (see ``errors``): what was done
        to what, where, the driver's words (the password masked) and what to check."""
        text = _masked(_first_line(getattr(error, "orig", None) or error), self.url)
        where = (
            "the query"
            if table == QUERY
            else f"table {table}"
            if table is not None
            else "the database"
        )
        message = f"cannot {doing} {where} at {self.description}: {text}"
        kind = classify(error)
        if kind is None:
            return ConnectorError(message)
        message = f"{message}; {kind.read_advice}"
        return RetriableError(message) if kind.retriable else ConfigError(message, key=kind.key)

    def connect(self) -> sa.Connection:
        """A connection, with connection failures translated."""
        with self.errors(doing="connect to"):
            return self.engine.connect()

    def check_connection(self) -> None:
        """Connect once and run ``SELECT 1``.

        Raises:
            RetriableError: the server cannot be reached now (see ``errors``).
            ConfigError: it refused the login, or the database is not there.
        """
        with self.errors(doing="connect to"), self.engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))

    @property
    def default_schema(self) -> str:
        """The schema a table named without one lives in (``public``, the URL's database,
        ``main``)."""
        with self.errors(doing="connect to"):
            inspector = sa.inspect(self.engine)
            return inspector.default_schema_name or "main"

    def schemas(self) -> list[str]:
        with self.errors(doing="list the schemas of"):
            return list(sa.inspect(self.engine).get_schema_names())

    def tables_in(self, schema: str) -> list[str]:
        with self.errors(doing="list the tables of"):
            return sorted(sa.inspect(self.engine).get_table_names(schema=schema))

    def resolve_tables(self, patterns: Sequence[str], option: str = "tables") -> list[TableName]:
        """The tables ``patterns`` name, in order, each once.

        An entry is ``schema.table`` or ``table`` (in the default schema); either part may be
        a glob (``public.*``, ``sales_*``). A name without glob characters must exist; a
        glob must match at least one table.

        Raises:
            ConfigError: at ``tables[i]``, naming the table and the near matches.
        """
        found: dict[TableName, None] = {}
        default = self.default_schema
        schemas = self.schemas()
        for index, pattern in enumerate(patterns):
            schema_pattern, table_pattern = split_table_pattern(pattern)
            schema_pattern = schema_pattern or default
            matched_schemas = [s for s in schemas if fnmatch.fnmatchcase(s, schema_pattern)]
            matches = [
                TableName(schema, table)
                for schema in matched_schemas
                for table in self.tables_in(schema)
                if fnmatch.fnmatchcase(table, table_pattern)
            ]
            if not matches:
                known = [str(TableName(s, t)) for s in matched_schemas for t in self.tables_in(s)]
                what = "no table matches" if _is_glob(pattern) else "there is no table"
                raise ConfigError(
                    f"{what} {pattern!r} in {self.description}{_did_you_mean(pattern, known)}",
                    key=f"{option}[{index}]",
                )
            found.update(dict.fromkeys(matches))
        return list(found)

    def reflect(self, name: TableName) -> TableInfo:
        """The columns, omconnect types and primary key of table ``name``.

        Raises:
            ConfigError: the table is gone, or a column has a type without an exact mapping
                (the message names the table, the column and the type).
        """
        with self.errors(name, doing="reflect"), self.engine.connect() as connection:
            metadata = sa.MetaData()
            try:
                with warnings.catch_warnings():
                    # A type SQLAlchemy does not know reflects as NullType: refused below.
                    warnings.filterwarnings("ignore", "Did not recognize type", sa.exc.SAWarning)
                    table = sa.Table(
                        name.name, metadata, schema=name.schema, autoload_with=connection
                    )
            except sa.exc.NoSuchTableError:
                raise ConfigError(
                    f"table {name} does not exist (any more) in {self.description}", key="tables"
                ) from None
            json_checked = (
                _mariadb_json_columns(connection, name) if self.dialect == "mysql" else frozenset()
            )
        fields = []
        for column in table.columns:
            try:
                dtype = from_sql_type(
                    column.type,
                    self.dialect,
                    f"{name}.{column.name}",
                    json_checked=column.name in json_checked,
                )
            except UnmappedSqlType as error:
                raise ConfigError(str(error), key="tables") from None
            nullable = bool(column.nullable) or _reads_as_null(self.dialect, dtype)
            fields.append(Field(column.name, dtype, nullable=nullable))
        primary_key = tuple(c.name for c in table.primary_key.columns)
        return TableInfo(name, table, tuple(fields), primary_key)

    def reflect_query(self, query: str, name: TableName) -> TableInfo:
        """The result columns of the SELECT ``query`` and their omconnect types, reflected
        like a table's (see the module docstring), and the query as a subquery to select from.

        Raises:
            ConfigError: at ``query``: the database refuses the query (the driver's one-line
                message), or a result column has a type without an exact mapping (an
                expression SQLite cannot type, for instance: cast it in the query).
        """
        relation = f"omconnect_query_{uuid.uuid4().hex[:16]}"
        self.check_connection()  # so that what fails below is the query's fault
        try:
            columns = self._query_columns(query, relation)
        except Exception as error:  # the driver's own errors too (its cursor runs the query)
            translated = self.translate(error, name, doing="run")
            if isinstance(translated, RetriableError):
                raise translated from None
            raise ConfigError(str(translated), key="query") from None
        fields = []
        typed = []
        for column in columns:
            column_name = str(column["name"])
            try:
                dtype = from_sql_type(column["type"], self.dialect, f"query.{column_name}")
            except UnmappedSqlType as error:
                raise ConfigError(
                    f"{error}; cast the column to a known type in the query", key="query"
                ) from None
            nullable = bool(column.get("nullable", True)) or _reads_as_null(self.dialect, dtype)
            fields.append(Field(column_name, dtype, nullable=nullable))
            typed.append(sa.column(column_name, column["type"]))
        # Only what text() would take for a bind parameter is escaped: the SQL stays the user's.
        text = _TEXT_BIND.sub(r"\\:\1", query)
        subquery = sa.text(text).columns(*typed).subquery("q")
        return TableInfo(name, subquery, tuple(fields), ())

    def _query_columns(self, query: str, relation: str) -> list[Any]:
        """The reflected columns of a temporary view (or table) of ``query``."""
        with self.engine.connect() as connection, connection.begin() as transaction:
            # The driver's own cursor, without parameters: a ``%`` in the text is the query's.
            cursor = connection.connection.cursor()
            try:
                if self.dialect == "mysql":
                    cursor.execute(
                        f"CREATE TEMPORARY TABLE {relation} AS SELECT * FROM ({query}) AS q LIMIT 0"
                    )
                else:
                    cursor.execute(f"CREATE TEMP VIEW {relation} AS {query}")
                schema = "temp" if self.dialect == "sqlite" else None
                with warnings.catch_warnings():
                    warnings.filterwarnings("ignore", "Did not recognize type", sa.exc.SAWarning)
                    columns = sa.inspect(connection).get_columns(relation, schema=schema)
            finally:
                if self.dialect == "mysql":
                    cursor.execute(f"DROP TEMPORARY TABLE IF EXISTS {relation}")
                cursor.close()
                transaction.rollback()
        return list(columns)


def _mariadb_json_columns(connection: sa.Connection, name: TableName) -> frozenset[str]:
    """The columns of table ``name`` declared ``JSON`` on a MariaDB/MySQL ``connection``:
    on MariaDB, which stores them as ``LONGTEXT`` with a ``json_valid`` check
    (``json_checked_columns``), found with one query of the table's check clauses; none on
    MySQL, whose ``JSON`` is a type of its own that reflection sees."""
    if not getattr(connection.dialect, "is_mariadb", False):
        return frozenset()
    clauses = connection.execute(
        sa.text(
            "SELECT CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS "
            "WHERE CONSTRAINT_SCHEMA = COALESCE(:schema, DATABASE()) AND TABLE_NAME = :table"
        ),
        {"schema": name.schema, "table": name.name},
    ).scalars()
    return json_checked_columns(str(clause) for clause in clauses)


@dataclass(frozen=True)
class TableShape:
    """What reflection says a table holds: its columns (name -> SQLAlchemy type and
    nullability, in table order) and the column sets with a unique index (the primary key
    first)."""

    columns: dict[str, tuple[sa.types.TypeEngine[Any], bool]]
    unique_keys: list[tuple[str, ...]]


def reflect_shape(engine: sa.Engine, table: TableName) -> TableShape | None:
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


def write_error(error: BaseException, table: TableName, url: URL) -> ConnectorError:
    """The sink's one-line error for a failed write to ``table``: where (``describe_url``),
    what happened, the driver's words (the password masked) and what to fix.

    Errors whose cause passes (``ErrorKind.retriable``: a server down or restarting, a lost
    connection, a lock held by another session) are ``RetriableError``: the runtime retries,
    and the sink, which stores positions, is redelivered from them. Others are not.
    """
    if isinstance(error, ConnectorError):
        return error
    original = getattr(error, "orig", None) or error
    text = " ".join(str(original).split()) or type(original).__name__
    detail = _masked(text, url)[:300]
    where = f"table {table} at {describe_url(url)}"
    kind = classify(error)
    if kind is None:
        return ConnectorError(f"{where}: {detail}")
    said = f"{kind.write_summary} ({detail})" if kind.write_summary else detail
    message = f"{where}: {said}" + (f": {kind.write_advice}" if kind.write_advice else "")
    return RetriableError(message) if kind.retriable else ConnectorError(message)


class RowsRefused(Exception):
    """A statement of the sink refused the data of some row, as the driver could not say:
    MariaDB's ``LOAD DATA LOCAL`` keeps a value too long or out of range cut to fit, with a
    warning (``_sink_mariadb``), and this error carries the warning's words."""


# MariaDB/MySQL's errors (and, from LOAD DATA LOCAL, warnings) about a row's data: a null in
# a NOT NULL column, a duplicate key, a missing parent row, a value too long, out of range or
# of the wrong form, a CHECK constraint.
MARIADB_ROW_ERRORS = frozenset(
    {1048, 1062, 1216, 1264, 1265, 1292, 1366, 1406, 1451, 1452, 1586, 3819, 4025}
)


def refused_row(error: BaseException) -> str | None:
    """The database's words when ``error`` refuses the data of a row (a constraint, a value
    too long, out of range or of the wrong form); None for any other error.

    PostgreSQL's SQLSTATE classes 22 (data exception) and 23 (integrity constraint), MariaDB's
    row errors and the DB-API's ``DataError`` and ``IntegrityError`` (SQLite's constraints
    through ADBC carry no code). An error that passes (``classify``) is never a row's."""
    if classify(error) is not None:
        return None
    # The error and what it wraps, not the errors it was raised while handling (a statement
    # after a refused one fails for its own reasons).
    chain = _error_chain(error, handling=False)
    codes = {code for e in chain for code in _driver_codes(e)}
    refused = any(
        code in MARIADB_ROW_ERRORS if isinstance(code, int) else code[:2] in ("22", "23")
        for code in codes
    ) or any(type(e).__name__ in ("DataError", "IntegrityError", "RowsRefused") for e in chain)
    return _driver_words(chain[0]) if refused else None


def _driver_words(error: BaseException) -> str:
    """What the server said of ``error``, on one line: without the statement's text, which
    ADBC quotes (``Failed to execute query '...': ERROR:  ...``), nor its SQLSTATE suffix."""
    original = getattr(error, "orig", None) or error
    if type(original).__module__.startswith("pymysql") and len(original.args) > 1:
        text = str(original.args[1])
    else:
        text = str(original)
        server = text.rfind("ERROR:")
        if server >= 0:
            text = text[server + len("ERROR:") :]
        text = re.sub(r"^[A-Z_]+: ", "", text.strip())  # ADBC's status: INTEGRITY: ...
        text = re.sub(r"\.?\s*SQLSTATE: \w+\s*$", "", text.strip())
    # MariaDB's "at row 3" counts the rows of the statement, not of the records.
    return re.sub(r" at row \d+$", "", " ".join(text.split()))


@dataclass(frozen=True)
class ErrorKind:
    """One class of driver errors: how to know it, whether it passes, and what the source and
    the sink say about it.

    Attributes:
        retriable: the cause is expected to pass (a server down or restarting, a lock held by
            another session): ``RetriableError``, retried by the runtime.
        key: the option a source's ``ConfigError`` of this kind names (None for the kinds
            that pass).
        read_advice: what the source's message says to check (after the driver's words).
        write_summary: what the sink's message calls it (None: the driver's words alone).
        write_advice: what the sink's message says to check (None: nothing more).
        codes: SQLSTATEs (PostgreSQL), error numbers (MariaDB/MySQL) and SQLite result names
            of the kind.
        words: what the drivers' messages of the kind say (lower case), for the errors that
            carry no code (a refused connect, a connection that broke, ConnectorX).
    """

    retriable: bool
    key: str | None
    read_advice: str
    write_summary: str | None
    write_advice: str | None
    codes: frozenset[str | int]
    words: re.Pattern[str]


# The server cannot be reached now: down, restarting, the connection lost (``unreachable``).
UNREACHABLE = ErrorKind(
    retriable=True,
    key=None,
    read_advice="check that the database server runs and that host and port in `url` are right",
    write_summary="cannot reach the database",
    write_advice="is the server running, and are the host and port in url right?",
    codes=frozenset(
        {"08000", "08001", "08003", "08004", "08006", "08007", "57P01", "57P02", "57P03"}
        | {"53300", 1040, 1053, 1927, 2002, 2003, 2005, 2006, 2013, 2055, 4031}
    ),
    words=re.compile(
        r"connection refused|could not connect|can't connect|timeout expired|timed out"
        r"|could not translate host|name or service not known|unknown mysql server host"
        r"|temporary failure in name resolution|server closed the connection|lost connection"
        r"|gone away|connection reset|broken pipe|connection is closed|connection is lost"
        r"|connection already closed|no connection to the server|terminating connection"
        r"|could not (receive|send) data (from|to) server|ssl syscall error|eof detected"
        r"|the database system is (starting up|shutting down|in recovery mode|not yet"
        r" accepting connections|not accepting connections)|server shutdown in progress"
        r"|too many connections|remaining connection slots"
        # psycopg2 on a replication stream whose walsender ended
        r"|no copy in progress|consuming input failed"
    ),
)


# The classes of driver errors, first match wins (a refused login is not a missing object).
ERROR_KINDS: tuple[ErrorKind, ...] = (
    ErrorKind(  # wrong credentials, unknown role
        retriable=False,
        key="url",
        read_advice="check the user name and password in `url`",
        write_summary="the database refused the login",
        write_advice="check the user and password in url",
        codes=frozenset({"28P01", "28000", 1045, 1698}),
        words=re.compile(
            r"password authentication failed|\(using password|authentication failed"
            r'|role ".*" does not exist'
        ),
    ),
    ErrorKind(  # a lock held by another session: deadlock, lock wait or lock timeout
        retriable=True,
        key=None,
        read_advice="another session holds a lock this read needs (retried)",
        write_summary="another session holds a lock the write needs",
        write_advice=(
            "retried; if it lasts, look for long transactions on the table "
            "(pg_stat_activity, SHOW PROCESSLIST)"
        ),
        codes=frozenset({"40P01", "40001", "55P03", 1205, 1213, "SQLITE_BUSY", "SQLITE_LOCKED"}),
        words=re.compile(
            r"deadlock|lock wait timeout|lock timeout|could not obtain lock"
            r"|could not serialize access|database is locked|database table is locked"
        ),
    ),
    UNREACHABLE,
    ErrorKind(  # an SQLite file that cannot be opened (its directory is not there, yet)
        retriable=True,
        key=None,
        read_advice="check that the file's directory exists and that this user may open it",
        write_summary="cannot reach the database",
        write_advice="does the file's directory exist, and may this user write there?",
        codes=frozenset({"SQLITE_CANTOPEN"}),
        words=re.compile(r"unable to open database file|failed to open"),
    ),
    ErrorKind(  # a privilege missing
        retriable=False,
        key="url",
        read_advice="grant the user SELECT on it, or use a user that has it",
        write_summary="permission denied",
        write_advice=(
            "grant the url's user SELECT, INSERT, UPDATE, DELETE on the table (and CREATE for "
            "create: true and the positions table)"
        ),
        codes=frozenset({"42501", 1044, 1142, 1143, 1227, "SQLITE_READONLY", "SQLITE_PERM"}),
        words=re.compile(
            r"permission denied|command denied|access denied|attempt to write a readonly"
        ),
    ),
    ErrorKind(  # the URL names a database that is not there
        retriable=False,
        key="url",
        read_advice="check the database name in `url`",
        write_summary=None,
        write_advice="check the database name in url",
        codes=frozenset({"3D000", 1049}),
        words=re.compile(r'database ".*" does not exist|unknown database'),
    ),
    ErrorKind(  # a table or column that is not there
        retriable=False,
        key="tables",
        read_advice="check the table and column names (`tables`, `key`, `cursor`)",
        write_summary=None,
        write_advice=None,
        codes=frozenset({"42P01", "42703", "3F000", 1054, 1146}),
        words=re.compile(
            r"does not exist|doesn't exist|no such table|no such column|unknown column"
        ),
    ),
)


def classify(error: BaseException) -> ErrorKind | None:
    """The kind of a driver error (``ERROR_KINDS``), or None for any other error.

    The driver's codes decide when the error (or one it was raised from, or the driver's error
    SQLAlchemy wrapped) carries one, since a message may quote SQL text; the words of the
    messages only for errors without a code."""
    chain = _error_chain(error)
    codes = {code for e in chain for code in _driver_codes(e)}
    if codes:
        return next((kind for kind in ERROR_KINDS if kind.codes & codes), None)
    text = " ".join(str(e) for e in chain).lower()
    return next((kind for kind in ERROR_KINDS if kind.words.search(text)), None)


def unreachable(error: BaseException) -> bool:
    """Whether ``error`` (any driver's, SQLAlchemy's, ADBC's, psycopg2's, or one raised from
    them) says the server cannot be reached now: refused, dropped, starting up, shutting
    down."""
    return classify(error) is UNREACHABLE


def _error_chain(error: BaseException, handling: bool = True) -> list[BaseException]:
    """``error``, the driver's error it wraps (SQLAlchemy's ``orig``) and the errors it was
    raised from, and (``handling``) those it was raised while handling."""
    found: list[BaseException] = []
    pending: list[Any] = [error]
    while pending:
        current = pending.pop()
        if not isinstance(current, BaseException) or any(current is e for e in found):
            continue
        found.append(current)
        pending += [getattr(current, "orig", None), current.__cause__]
        if handling:
            pending.append(current.__context__)
    return found


# A SQLSTATE that says what happened: not "no error" (00000), nor MySQL's "general error"
# (HY000), which it gives for most errors (the error number says what).
_SQLSTATE = re.compile(r"(?!00000|HY)[0-9A-Z]{5}")


def _driver_codes(error: BaseException) -> list[str | int]:
    """The codes a driver gave ``error``: psycopg's and ADBC's ``sqlstate``, psycopg2's
    ``pgcode``, PyMySQL's error number, sqlite3's primary result name."""
    codes: list[str | int] = []
    state = getattr(error, "sqlstate", None) or getattr(error, "pgcode", None)
    if isinstance(state, str) and _SQLSTATE.fullmatch(state):
        codes.append(state)
    name = getattr(error, "sqlite_errorname", None)
    if isinstance(name, str):  # SQLITE_BUSY_SNAPSHOT -> SQLITE_BUSY
        codes.append("_".join(name.split("_")[:2]))
    number = error.args[0] if error.args else None
    if type(error).__module__.startswith("pymysql") and isinstance(number, int) and number > 0:
        codes.append(number)
    return codes


def _reads_as_null(dialect: str, dtype: DataType) -> bool:
    """Whether a NOT NULL column of ``dtype`` may still read as null: a MariaDB/MySQL date or
    datetime, whose zero date (``0000-00-00``) is read as null (see ``_arrow_reads``)."""
    return dialect == "mysql" and (dtype == t.date() or isinstance(dtype, t.Timestamp))


def split_table_pattern(pattern: str) -> tuple[str, str]:
    """``schema.table`` -> ``("schema", "table")``; ``table`` -> ``("", "table")``. The first
    dot outside ``[...]`` separates them, so an escaped dot (``[.]``) belongs to a name."""
    depth = 0
    for index, char in enumerate(pattern):
        if char == "[":
            depth += 1
        elif char == "]" and depth:
            depth -= 1
        elif char == "." and depth == 0:
            return pattern[:index], pattern[index + 1 :]
    return "", pattern


# What ``sa.text`` reads as a bind parameter (``:name``), to be escaped in query text.
_TEXT_BIND = re.compile(r"(?<![:\w\\]):(\w+)(?!:)")


def _masked(text: str, url: URL) -> str:
    """``text`` without the URL's password (as written, and percent-encoded as in a URL)."""
    password = url.password
    if not password:
        return text
    for form in {str(password), urllib.parse.quote(str(password), safe="")}:
        text = text.replace(form, _MASK)
    return text


def _first_line(error: BaseException | str) -> str:
    text = str(error).strip()
    return text.splitlines()[0].strip() if text else type(error).__name__


def _is_glob(text: str) -> bool:
    return any(c in text for c in "*?[")


def _did_you_mean(name: str, known: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    return f' (did you mean "{close[0]}"?)' if close else ""


__all__ = [
    "ERROR_KINDS",
    "QUERY",
    "Database",
    "ErrorKind",
    "TableInfo",
    "TableName",
    "TableShape",
    "classify",
    "describe_url",
    "dialect_of",
    "mask_url",
    "parse_table_name",
    "parse_url",
    "quote",
    "quote_table",
    "reflect_shape",
    "split_table_pattern",
    "write_error",
]

"""The ``sql`` source: tables of PostgreSQL, MariaDB/MySQL and SQLite as Arrow record batches.

Each table is its own stream (``<schema>.<table>``, published to ``<topic>.<schema>.<table>``)
and its own position partition ``{"table": "<schema>.<table>"}``; tables are split across
tasks. A ``query:`` instead of ``tables:`` is one stream, ``query`` (published to
``<topic>.query``, partition ``{"query": "query"}``), read by one task through the same code
as a table: its result columns are reflected (``Database.reflect_query``) and statements
select from it as a subquery, ``SELECT ... FROM (<query>) AS q WHERE ... ORDER BY ... LIMIT``.
``mode: snapshot`` reads a table once in key-range chunks (``_snapshot``), resumable per chunk;
``mode: incremental`` reads what is new on a cursor, correct at the boundary (``_incremental``).
Reads take each dialect's Arrow fast path (``_arrow_reads``); names come from reflection
(``_database``). The reading task lives in ``_source_task``.

A database that cannot be reached now (down, restarting, the connection refused) is not a
mistake in the config: ``validate`` then leaves the checks to the tasks, ``streams`` names
none yet (their topics are made as they come) and ``task_configs`` gives one task for every
table. The tasks' ``start`` raises ``RetriableError``, which the runtime retries until
``errors.retry_timeout`` passes, then fails with the one line that says what to check.

This module is imported by every ``omconnect`` command (plugin loading), so it imports only
the spec and the connector classes; SQLAlchemy and the drivers are imported by the methods
that talk to a database.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from omconnect.connectors.api import (
    ConfigError,
    ConnectorSpec,
    RetriableError,
    SourceConnector,
    register,
)
from omconnect.connectors.sql._source_schema import INCREMENTAL, SNAPSHOT, Evolution
from omconnect.connectors.sql._source_task import SqlSourceTask

if TYPE_CHECKING:
    from omconnect.connectors.sql._database import Database, TableInfo, TableName

log = logging.getLogger("omconnect.connectors.sql")


class SqlSourceSpec(ConnectorSpec):
    """Options of the ``sql`` source."""

    url: SecretStr = Field(
        description=(
            "The database as an SQLAlchemy URL: `postgresql://user:password@host:5432/db`, "
            "`mysql://user:password@host:3306/db` (MariaDB too) or `sqlite:///path/to.db`. "
            "Secret: its password is never shown in logs or errors. Reads use each "
            "database's Arrow fast path: ADBC (binary COPY) for PostgreSQL, ADBC for SQLite, "
            "ConnectorX for MariaDB/MySQL. MariaDB/MySQL's zero date (`0000-00-00`, which "
            "MariaDB keeps when `sql_mode` lacks `NO_ZERO_DATE`) is read as null in `DATE`, "
            "`DATETIME` and `TIMESTAMP` columns, as Debezium and Connector/J's "
            "`zeroDateTimeBehavior=CONVERT_TO_NULL` read it, in a `NOT NULL` column too "
            "(whose field is nullable for that reason); a value that is no calendar date "
            "(`2024-00-10`, `2024-02-31`) is a bad row. SQLite keeps any value in any "
            "column: a value of another storage class than the column's (text in a `REAL` "
            "column) is a bad row, and floats keep every digit. A PostgreSQL array column is "
            "a list of its element type; PostgreSQL lets any row of it hold an array of more "
            "dimensions than one, or whose first index is not 1, which no list holds: a bad "
            "row, as is an array with an element that does not fit its type (an infinite "
            "timestamp). A bad row goes to the dead letter topic under "
            "`errors.tolerance: all` and stops the run under `none`."
        )
    )
    tables: list[str] = Field(
        default_factory=list,
        examples=[["public.orders"]],
        description=(
            "The tables to read, as `schema.table` or `table` (in the default schema: "
            "`public`, the URL's database, `main`); either part may be a glob "
            "(`public.*`, `sales.order_*`). Names are checked against the database and quoted "
            "by it. Each table is its own stream, published to `<topic>.<schema>.<table>`; "
            "tables are split across tasks. Give `tables` or `query`, not both."
        ),
    )
    query: str | None = Field(
        default=None,
        description=(
            "Instead of `tables`: one SELECT (a join, a filter, computed columns) whose rows "
            "are one stream, published to `<topic>.query`. The text is trusted like a view "
            "definition; the values the source adds (last cursor, keys) are bound as "
            "parameters, the query being wrapped as a subquery: "
            "`SELECT * FROM (<query>) AS q WHERE <key or cursor> > :last ORDER BY ... "
            "LIMIT :chunk_size`. Columns and types come from the query's result (a column "
            "whose type the database cannot tell, such as an SQLite expression, needs a "
            "CAST). There is no primary key: `mode: incremental` needs `cursor` and `key`; "
            "`mode: snapshot` with `key` is chunked and resumable, without `key` it streams "
            "the result in one statement and a stopped run starts the query over. Changing "
            "the query keeps the position: reset the offsets to start over."
        ),
    )
    mode: Literal["snapshot", "incremental"] = Field(
        default="snapshot",
        description=(
            "`snapshot` reads each table once, in chunks of `chunk_size` rows by key range; "
            "a run stopped half-way resumes at the chunk where it stopped. `incremental` "
            "reads the rows whose `cursor` is at or after the last one delivered (the first "
            "run reads every row), again in chunks, then (running continuously) every "
            "`poll_interval`."
        ),
    )
    cursor: list[str] = Field(
        default_factory=list,
        description=(
            "For `mode: incremental`: the column (or columns, compared in order) that grows "
            "as rows are added or changed, such as `updated_at` or an id from a sequence. "
            "The read range is closed at the last cursor value and rows delivered at that "
            "value are skipped by key, so rows sharing a cursor value are neither lost nor "
            "repeated. Past 1,000 rows at one value the position keeps the last key read "
            "there and reads on in key order: a row committed late at that value with a "
            "lower key needs `lag` to be read."
        ),
    )
    key: list[str] = Field(
        default_factory=list,
        description=(
            "The columns that identify a row (the message key, and the order of snapshot "
            "chunks). Default: the table's primary key; a table without one needs `key`, "
            "whose values must be unique."
        ),
    )
    lag: float = Field(
        default=0.0,
        ge=0,
        description=(
            "For `mode: incremental`: hold the read back from the newest rows, for writers "
            "whose transactions commit late. With a time cursor, seconds (or text such as "
            "`30s`, `5m`, `1h`): rows newer than the database's now() minus the lag wait for "
            "a later read. With a numeric cursor, cursor units below MAX(cursor)."
        ),
    )
    chunk_size: int = Field(
        default=50_000,
        ge=1,
        description=(
            "Rows per statement (and per emitted batch). Memory holds about one chunk per "
            "task whatever the table size; a run killed mid-chunk reads that chunk again."
        ),
    )
    schema_evolution: Evolution = Field(
        default="evolve",
        description=(
            "When a table's columns changed since the last run (added, dropped, widened): "
            "`evolve` publishes a new schema version, `freeze` stops with an error naming "
            "the change, `discard_column` leaves added columns out (and stops on a dropped "
            "or changed column)."
        ),
    )
    poll_interval: float = Field(
        default=5.0,
        gt=0,
        description=(
            "Running continuously in `mode: incremental`, the seconds between two reads of "
            "a table that was caught up."
        ),
    )

    @field_validator("query")
    @classmethod
    def _one_statement(cls, value: str | None) -> str | None:
        if value is None:
            return None
        text = value.strip().rstrip(";").strip()
        if not text:
            raise ValueError("the query is empty")
        return text

    @model_validator(mode="after")
    def _tables_or_query(self) -> SqlSourceSpec:
        if self.tables and self.query is not None:
            raise ValueError("give `tables` or `query`, not both")
        if not self.tables and self.query is None:
            raise ValueError("give `tables` (the tables to read) or `query` (a SELECT)")
        return self

    @field_validator("cursor", "key", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("lag", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        found = _DURATION.fullmatch(value.strip())
        if found is None:
            raise ValueError("expected seconds, or a number with ms, s, m, h or d (`30s`, `5m`)")
        return float(found["amount"]) * _UNIT_SECONDS[found["unit"] or "s"]


_DURATION = re.compile(r"(?P<amount>\d+(?:\.\d+)?)\s*(?P<unit>ms|s|m|h|d)?")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


class SqlSource(SourceConnector):
    """Reads tables (or one query) of PostgreSQL, MariaDB/MySQL and SQLite: chunked,
    resumable snapshots and boundary-correct incremental reads, as Arrow batches."""

    name = "sql"
    spec: ClassVar[type[ConnectorSpec]] = SqlSourceSpec
    task_class = SqlSourceTask
    _resolved_tables: list[TableName] | None = None  # what ``_tables`` found
    description = (
        "Read database tables or a query (PostgreSQL via ADBC binary COPY, SQLite via ADBC, "
        "MariaDB/MySQL via ConnectorX) as resumable key-range snapshots or boundary-correct "
        "incremental reads."
    )

    def validate(self) -> None:
        """Connect, find every table (or run the query for its columns), and check ``key``
        and ``cursor`` against each; when the database cannot be reached now, log it and
        leave the checks to the tasks (see the module docstring)."""
        config = self.config
        assert isinstance(config, SqlSourceSpec)
        if config.mode == INCREMENTAL and not config.cursor:
            raise ConfigError("mode incremental needs a `cursor` column", key="cursor")
        database = _open(config)
        try:
            database.check_connection()
            if config.query is None:  # kept for the run's streams and task configs
                self._resolved_tables = database.resolve_tables(config.tables)
            for info in reflect_sources(database, config, self._resolved_tables):
                check_table(info, config)
        except RetriableError as error:
            log.warning("%s (the tables are checked when the tasks start)", error)
        finally:
            database.close()

    def validate_offset(self, partition: Mapping[str, Any], offset: Mapping[str, Any]) -> None:
        if not isinstance(partition.get("table"), str) and partition.get("query") != "query":
            raise ConfigError(
                'expected {"table": "<schema>.<table>"} or {"query": "query"}', key="partition"
            )
        if offset.get("mode") not in (SNAPSHOT, INCREMENTAL):
            raise ConfigError('expected "mode": "snapshot" or "incremental"', key="offset.mode")

    def streams(self) -> list[str]:
        config = self.config
        assert isinstance(config, SqlSourceSpec)
        if config.query is not None:
            return [QUERY_STREAM]
        return [str(name) for name in self._tables() or ()]

    def task_configs(self, max_tasks: int) -> list[ConnectorSpec]:
        """One task per group of tables, round-robin over at most ``max_tasks`` tasks; each
        task config names its tables exactly (glob characters escaped). A query is one
        task, and so are the tables of a database that cannot be reached now."""
        config = self.config
        assert isinstance(config, SqlSourceSpec)
        if config.query is not None:
            return [config]
        names = self._tables()
        if names is None:
            return [config]
        count = max(1, min(max_tasks, len(names)))
        groups = [names[i::count] for i in range(count)]
        return [
            self.config.model_copy(update={"tables": [exact_pattern(n) for n in group]})
            for group in groups
            if group
        ] or [self.config]

    def _tables(self) -> list[TableName] | None:
        """The tables ``tables:`` names; None when the database cannot be reached now. Found
        once per connector (by ``validate``, or when a run first asks for its streams or its
        task configs)."""
        config = self.config
        assert isinstance(config, SqlSourceSpec)
        if self._resolved_tables is not None:
            return self._resolved_tables
        database = _open(config)
        try:
            self._resolved_tables = database.resolve_tables(config.tables)
        except RetriableError:
            return None
        finally:
            database.close()
        return self._resolved_tables


QUERY_STREAM = "query"
"""The stream (and ``<topic>.query`` topic suffix) of a ``query:``."""


def reflect_sources(
    database: Database, config: SqlSourceSpec, tables: list[TableName] | None = None
) -> list[TableInfo]:
    """The reflected tables of ``tables:`` (the ``tables`` it resolved to, when given), or the
    reflected result of ``query:``."""
    if config.query is not None:
        from omconnect.connectors.sql._database import QUERY

        return [database.reflect_query(config.query, QUERY)]
    names = database.resolve_tables(config.tables) if tables is None else tables
    return [database.reflect(name) for name in names]


def check_table(info: TableInfo, config: SqlSourceSpec) -> tuple[str, ...]:
    """The key columns of ``info`` under ``config``, after checking that ``key`` and
    ``cursor`` name columns of the table (or query result) and that a key exists (a query
    read as a snapshot may have none: it is then read in one statement).

    Raises:
        ConfigError: naming the option, the table and the column.
    """
    for index, name in enumerate(config.key):
        info.column(name, f"key[{index}]")
    for index, name in enumerate(config.cursor):
        info.column(name, f"cursor[{index}]")
    key = tuple(config.key) or info.primary_key
    if not key and info.is_query:
        if config.mode == INCREMENTAL:
            raise ConfigError(
                "an incremental query needs `key`: the columns of its result whose values are "
                "unique (rows at the last cursor value are told apart by them)",
                key="key",
            )
        return ()
    if not key:
        raise ConfigError(
            f"table {info.name} has no primary key: set `key` to columns whose values are unique",
            key="key",
        )
    return key


def _open(config: SqlSourceSpec) -> Database:
    from omconnect.connectors.sql._database import Database

    return Database.open(config.url.get_secret_value())


def exact_pattern(name: TableName) -> str:
    """A ``tables`` entry matching exactly ``name``, whatever characters it holds."""
    return f"{_escape(name.schema or '')}.{_escape(name.name)}"


def _escape(part: str) -> str:
    return re.sub(r"([*?\[.])", r"[\1]", part)


register(SqlSource)

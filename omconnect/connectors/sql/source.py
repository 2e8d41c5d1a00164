"""The ``sql`` source: tables of PostgreSQL, MariaDB/MySQL and SQLite as Arrow record batches.

Each table is its own stream (``<schema>.<table>``, published to ``<topic>.<schema>.<table>``)
and its own position partition ``{"table": "<schema>.<table>"}``; tables are split across
tasks. ``mode: snapshot`` reads a table once in key-range chunks (``_snapshot``), resumable
per chunk; ``mode: incremental`` reads what is new on a cursor, correct at the boundary
(``_incremental``). Reads take each dialect's Arrow fast path (``_arrow_reads``); names come
from reflection (``_database``). The reading task lives in ``_source_task``.

This module is imported by every ``omconnect`` command (plugin loading), so it imports only
the spec and the connector classes; SQLAlchemy and the drivers are imported by the methods
that talk to a database.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field, SecretStr, field_validator

from omconnect.connectors.api import ConfigError, ConnectorSpec, SourceConnector, register
from omconnect.connectors.sql._source_schema import INCREMENTAL, SNAPSHOT, Evolution
from omconnect.connectors.sql._source_task import SqlSourceTask

if TYPE_CHECKING:
    from omconnect.connectors.sql._database import Database, TableInfo, TableName


class SqlSourceSpec(ConnectorSpec):
    """Options of the ``sql`` source."""

    url: SecretStr = Field(
        description=(
            "The database as an SQLAlchemy URL: `postgresql://user:password@host:5432/db`, "
            "`mysql://user:password@host:3306/db` (MariaDB too) or `sqlite:///path/to.db`. "
            "Secret: its password is never shown in logs or errors. Reads use each "
            "database's Arrow fast path: ADBC (binary COPY) for PostgreSQL, ADBC for SQLite, "
            "ConnectorX for MariaDB/MySQL."
        )
    )
    tables: list[str] = Field(
        min_length=1,
        description=(
            "The tables to read, as `schema.table` or `table` (in the default schema: "
            "`public`, the URL's database, `main`); either part may be a glob "
            "(`public.*`, `sales.order_*`). Names are checked against the database and quoted "
            "by it. Each table is its own stream, published to `<topic>.<schema>.<table>`; "
            "tables are split across tasks."
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
            "repeated."
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
    """Reads tables of PostgreSQL, MariaDB/MySQL and SQLite: chunked, resumable snapshots and
    boundary-correct incremental reads, as Arrow batches."""

    name = "sql"
    spec: ClassVar[type[ConnectorSpec]] = SqlSourceSpec
    task_class = SqlSourceTask
    description = (
        "Read database tables (PostgreSQL via ADBC binary COPY, SQLite via ADBC, MariaDB/MySQL "
        "via ConnectorX) as resumable key-range snapshots or boundary-correct incremental reads."
    )

    def validate(self) -> None:
        """Connect, find every table, and check ``key`` and ``cursor`` against each."""
        config = self.config
        assert isinstance(config, SqlSourceSpec)
        if config.mode == INCREMENTAL and not config.cursor:
            raise ConfigError("mode incremental needs a `cursor` column", key="cursor")
        database = _open(config)
        try:
            database.check_connection()
            for name in database.resolve_tables(config.tables):
                check_table(database.reflect(name), config)
        finally:
            database.close()

    def validate_offset(self, partition: Mapping[str, Any], offset: Mapping[str, Any]) -> None:
        if not isinstance(partition.get("table"), str):
            raise ConfigError('expected {"table": "<schema>.<table>"}', key="partition")
        if offset.get("mode") not in (SNAPSHOT, INCREMENTAL):
            raise ConfigError('expected "mode": "snapshot" or "incremental"', key="offset.mode")

    def streams(self) -> list[str]:
        return [str(name) for name in self._tables()]

    def task_configs(self, max_tasks: int) -> list[ConnectorSpec]:
        """One task per group of tables, round-robin over at most ``max_tasks`` tasks; each
        task config names its tables exactly (glob characters escaped)."""
        names = self._tables()
        count = max(1, min(max_tasks, len(names)))
        groups = [names[i::count] for i in range(count)]
        return [
            self.config.model_copy(update={"tables": [exact_pattern(n) for n in group]})
            for group in groups
            if group
        ] or [self.config]

    def _tables(self) -> list[TableName]:
        config = self.config
        assert isinstance(config, SqlSourceSpec)
        database = _open(config)
        try:
            return database.resolve_tables(config.tables)
        finally:
            database.close()


def check_table(info: TableInfo, config: SqlSourceSpec) -> tuple[str, ...]:
    """The key columns of ``info`` under ``config``, after checking that ``key`` and
    ``cursor`` name columns of the table and that a key exists.

    Raises:
        ConfigError: naming the option, the table and the column.
    """
    for index, name in enumerate(config.key):
        info.column(name, f"key[{index}]")
    for index, name in enumerate(config.cursor):
        info.column(name, f"cursor[{index}]")
    key = tuple(config.key) or info.primary_key
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

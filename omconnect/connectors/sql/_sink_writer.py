"""The connection that carries the sql sink's transactions, and the statements each dialect
runs in them: stage a batch in bulk, move it into the target table (append, upsert or delete)
with one statement each, store the consumed positions, commit.

A ``BulkWriter`` owns one driver connection (not SQLAlchemy's: the fast paths are driver
features: ADBC's COPY for PostgreSQL, ADBC's bound Arrow ingest for SQLite, ``LOAD DATA LOCAL
INFILE`` for MariaDB). Subclasses say how to connect, how to stage rows and how their dialect
spells an upsert; the statements shared by every dialect live here. Names are always quoted by
the dialect; values travel as bound parameters or staged rows, never as SQL text.

Upserts overwrite a row only when the incoming row comes from another topic partition or from
a later offset of the same one (the position columns, see ``_sink_rows``); deletes remove a
row under the same condition.

DDL (creating a table, adding a column) runs inside ``ddl_lock``: a lock every sink task of
every pipeline and process takes before it reflects a table it may change, so two tasks that
see a new field at once add its column once. Each dialect says how it locks (an advisory lock
on PostgreSQL, a named lock on MariaDB, none on SQLite, which runs one writer at a time) and
which errors mean "it is already there" (``already_exists``).
"""

from __future__ import annotations

import contextlib
import hashlib
import secrets
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine
from sqlalchemy.schema import CreateTable

from omconnect.connectors.sql._database import TableName, quote, quote_table
from omconnect.connectors.sql._sink_rows import (
    DELETE_COLUMN,
    OFFSET_COLUMN,
    PARTITION_COLUMN,
    ROW_COLUMN,
)

POSITION_KEY = ("pipeline", "target_table", "topic", "topic_partition")
_SAVEPOINT = "omconnect_rows"


@dataclass(frozen=True)
class WriteTarget:
    """Where staged rows go: the table, the columns written (the position columns included
    for upserts), the key, and each column's SQL type as the dialect spells it."""

    table: TableName
    columns: tuple[str, ...]
    key: tuple[str, ...]
    types: Mapping[str, str]


class BulkWriter(ABC):
    """One connection of the driver's own, for the sink's transactions."""

    dialect: ClassVar[str]
    stage_kind: ClassVar[str] = "TABLE"
    """How ``DROP`` names the stage table (MariaDB: ``TEMPORARY TABLE``)."""
    current_schema_query: ClassVar[str] = "SELECT current_schema()"
    """The query of the schema (MariaDB: the database) an unqualified table name means."""

    def __init__(self, url: URL, engine: Engine) -> None:
        self.url = url
        self.engine = engine
        self.stage_name = f"omconnect_stage_{secrets.token_hex(4)}"
        self._connection: Any = None
        self._default_schema: str | None = None

    # -- the connection --------------------------------------------------------------------

    @abstractmethod
    def _connect(self) -> Any:
        """A new DB-API connection, not in autocommit mode."""

    @abstractmethod
    def placeholder(self, number: int) -> str:
        """The driver's mark for bound parameter ``number`` (from 1)."""

    @property
    def connection(self) -> Any:
        if self._connection is None:
            self._connection = self._connect()
        return self._connection

    def execute(self, sql: str, parameters: Sequence[Any] = ()) -> None:
        cursor = self.connection.cursor()
        try:
            if parameters:
                cursor.execute(sql, tuple(parameters))
            else:
                cursor.execute(sql)
            self._check_warnings(cursor)
        finally:
            cursor.close()

    def _check_warnings(self, cursor: Any) -> None:  # noqa: B027 (a hook: MariaDB's)
        """Raise what the statement just run on ``cursor`` only warned of, where a driver
        warns of what must fail (MariaDB's cut values); nothing by default."""

    def fetch(self, sql: str, parameters: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        cursor = self.connection.cursor()
        try:
            cursor.execute(sql, tuple(parameters))
            return [tuple(row) for row in cursor.fetchall()]
        finally:
            cursor.close()

    def commit(self) -> None:
        self.connection.commit()

    def rollback(self) -> None:
        """End the open transaction without keeping it; a connection that cannot even do that
        is dropped (the next use opens a new one)."""
        if self._connection is None:
            return
        try:
            self._connection.rollback()
        except Exception:
            self.close()

    # -- a flush that spares refused rows -------------------------------------------------

    def begin_sparing(self) -> None:
        """Start the transaction of a flush that writes its rows in parts under savepoints,
        so that a part the database refuses is undone alone (``sink.SqlSinkTask``): the
        driver's own transaction, unless it cannot go on after a failed statement. The stage
        of the failed try is dropped (MariaDB does not roll back a temporary table)."""
        self.execute(f"DROP {self.stage_kind} IF EXISTS {self.stage_ref()}")

    def index_stage_rows(self) -> None:
        """Index the stage's row numbers (``ROW_COLUMN``), which the moves of a sparing flush
        select parts by: without it each part scanned the whole stage."""
        index = self.quote(f"{self.stage_name}_rows")
        self.execute(f"CREATE INDEX {index} ON {self.stage_ref()} ({self.quote(ROW_COLUMN)})")

    def savepoint(self) -> None:
        self.execute(f"SAVEPOINT {_SAVEPOINT}")

    def release_savepoint(self) -> None:
        self.execute(f"RELEASE SAVEPOINT {_SAVEPOINT}")

    def rollback_to_savepoint(self) -> None:
        """Undo what ran since ``savepoint``, and end it: a savepoint rolled back to stays,
        and the next one would nest in it (PostgreSQL kept a lock per nested level, and ran
        out of them after thousands)."""
        self.execute(f"ROLLBACK TO SAVEPOINT {_SAVEPOINT}")
        self.execute(f"RELEASE SAVEPOINT {_SAVEPOINT}")

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):  # a dead connection has nothing to close
                connection.close()

    # -- names -----------------------------------------------------------------------------

    def quote(self, name: str) -> str:
        return quote(self.engine, name)

    def table(self, table: TableName) -> str:
        return quote_table(self.engine, table)

    def compile_type(self, column_type: sa.types.TypeEngine[Any]) -> str:
        return str(column_type.compile(dialect=self.engine.dialect))

    # -- DDL among several sinks -----------------------------------------------------------

    @contextlib.contextmanager
    def ddl_lock(self, table: TableName) -> Iterator[None]:
        """A transaction that holds the DDL lock of ``table`` (see the module docstring):
        committed when the block ends, rolled back when it raises, and the lock released
        either way. Statements inside must not commit (PostgreSQL's lock ends with the
        transaction)."""
        self._lock_ddl(table)
        try:
            yield
            self.commit()
        except BaseException:
            self.rollback()
            raise
        finally:
            self._unlock_ddl(table)

    @abstractmethod
    def _lock_ddl(self, table: TableName) -> None:
        """Wait for the DDL lock of ``table``, in the open transaction."""

    @abstractmethod
    def _unlock_ddl(self, table: TableName) -> None:
        """Release what ``_lock_ddl`` took, after the transaction ended."""

    def default_schema(self) -> str:
        """The schema (MariaDB: the database) an unqualified table name means."""
        if self._default_schema is None:
            self._default_schema = str(self.fetch(self.current_schema_query)[0][0])
        return self._default_schema

    def lock_name(self, table: TableName) -> str:
        """The name of ``table``'s DDL lock: the same text for every sink that writes the
        table, however its ``table`` option spells it (qualified or not)."""
        return f"omconnect.sink.ddl:{table.schema or self.default_schema()}.{table.name}"

    @abstractmethod
    def already_exists(self, error: BaseException) -> bool:
        """Whether ``error`` (of a CREATE TABLE or ADD COLUMN) says the table or column is
        already there."""

    # -- staging and moving rows -----------------------------------------------------------

    @abstractmethod
    def stage(self, rows: pa.Table, target: WriteTarget) -> None:
        """Load ``rows`` into the temporary table ``stage_name``, in bulk."""

    def stage_ref(self) -> str:
        """The stage table's name in statements."""
        return self.quote(self.stage_name)

    def drop_stage(self) -> None:
        self.execute(f"DROP {self.stage_kind} {self.stage_ref()}")

    def staged(self, column: str, target: WriteTarget) -> str:
        """The expression reading ``column`` from the stage (aliased ``s``) as the target's
        type."""
        return f"s.{self.quote(column)}"

    # The statements moving staged rows take ``part``: when true, only the staged rows
    # numbered (``ROW_COLUMN``) from the first bound parameter up to the second are moved.

    def append(self, target: WriteTarget, part: bool = False) -> str:
        """Insert every staged row that is not a delete."""
        columns = ", ".join(self.quote(c) for c in target.columns)
        values = ", ".join(self.staged(c, target) for c in target.columns)
        return (
            f"INSERT INTO {self.table(target.table)} ({columns}) SELECT {values} "
            f"FROM {self.stage_ref()} AS s WHERE {self._not_deleted(part)}"
        )

    def upsert(self, target: WriteTarget, part: bool = False) -> str:
        """Insert the staged rows that are not deletes; a row whose key exists replaces it
        when it is newer (``newer``). PostgreSQL's and SQLite's ``ON CONFLICT``."""
        updated = [c for c in target.columns if c not in target.key]
        assignments = ", ".join(f"{self.quote(c)} = excluded.{self.quote(c)}" for c in updated)
        columns = ", ".join(self.quote(c) for c in target.columns)
        values = ", ".join(self.staged(c, target) for c in target.columns)
        return (
            f"INSERT INTO {self.table(target.table)} AS t ({columns}) SELECT {values} "
            f"FROM {self.stage_ref()} AS s WHERE {self._not_deleted(part)} "
            f"ON CONFLICT ({', '.join(self.quote(k) for k in target.key)}) "
            f"DO UPDATE SET {assignments} WHERE {self.newer('t', 'excluded')}"
        )

    @abstractmethod
    def delete(self, target: WriteTarget, part: bool = False) -> str:
        """Delete the rows whose key a staged delete names, when the delete is newer."""

    def _deleted(self, part: bool = False) -> str:
        return f"s.{self.quote(DELETE_COLUMN)}" + self._in_part(part)

    def _not_deleted(self, part: bool = False) -> str:
        return f"NOT s.{self.quote(DELETE_COLUMN)}" + self._in_part(part)

    def _in_part(self, part: bool) -> str:
        if not part:
            return ""
        row = f"s.{self.quote(ROW_COLUMN)}"
        return f" AND {row} >= {self.placeholder(1)} AND {row} < {self.placeholder(2)}"

    def newer(self, stored: str, incoming: str) -> str:
        """True when the row ``incoming`` (an alias) may replace the row ``stored``: it comes
        from another topic partition (or the stored row has none), or from a later offset."""
        partition, offset = self.quote(PARTITION_COLUMN), self.quote(OFFSET_COLUMN)
        return (
            f"({stored}.{partition} IS DISTINCT FROM {incoming}.{partition} "
            f"OR {stored}.{offset} < {incoming}.{offset})"
        )

    def key_matches(self, target: WriteTarget, stored: str) -> str:
        return " AND ".join(
            f"{stored}.{self.quote(k)} = {self.staged(k, target)}" for k in target.key
        )

    # -- positions -------------------------------------------------------------------------

    def create_positions_table(self, table: TableName) -> None:
        metadata = sa.MetaData()
        definition = sa.Table(
            table.name,
            metadata,
            sa.Column("pipeline", sa.String(200), primary_key=True),
            sa.Column("target_table", sa.String(200), primary_key=True),
            sa.Column("topic", sa.String(200), primary_key=True),
            sa.Column("topic_partition", sa.Integer, primary_key=True, autoincrement=False),
            sa.Column("next_offset", sa.BigInteger, nullable=False),
            schema=table.schema,
        )
        ddl = CreateTable(definition, if_not_exists=True).compile(dialect=self.engine.dialect)
        self.execute(str(ddl).strip())

    def read_positions(
        self, table: TableName, pipeline: str, target: TableName
    ) -> list[tuple[str, int, int]]:
        rows = self.fetch(
            f"SELECT topic, topic_partition, next_offset FROM {self.table(table)} "
            f"WHERE pipeline = {self.placeholder(1)} AND target_table = {self.placeholder(2)}",
            (pipeline, str(target)),
        )
        return [(str(topic), int(partition), int(offset)) for topic, partition, offset in rows]

    def store_position(
        self, table: TableName, pipeline: str, target: TableName, where: tuple[str, int, int]
    ) -> None:
        columns = (*POSITION_KEY, "next_offset")
        marks = ", ".join(self.placeholder(i + 1) for i in range(len(columns)))
        self.execute(
            f"INSERT INTO {self.table(table)} ({', '.join(columns)}) VALUES ({marks}) "
            + self._position_conflict(),
            (pipeline, str(target), *where),
        )

    def _position_conflict(self) -> str:
        return (
            f"ON CONFLICT ({', '.join(POSITION_KEY)}) "
            "DO UPDATE SET next_offset = EXCLUDED.next_offset"
        )


def lock_key(name: str) -> int:
    """A stable signed 64-bit hash of ``name`` (a lock name; the same in every process and
    release: BLAKE2b, not Python's salted ``hash``)."""
    digest = hashlib.blake2b(name.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)

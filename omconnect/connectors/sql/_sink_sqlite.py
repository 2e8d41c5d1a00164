"""SQLite: rows are staged with ADBC's SQLite driver (Arrow columns bound in C, no Python
object per row) into a temporary table, then moved with one ``INSERT ... SELECT ... ON
CONFLICT (key) DO UPDATE ... WHERE <newer>`` (or one ``DELETE``) per batch, in the same
transaction as the positions. Dates, times, timestamps and decimals are staged as the text
SQLAlchemy's SQLite types read back.

SQLite lets one connection write at a time: a sink that finds the file locked by another
waits for it (``busy_timeout``) rather than failing. DDL takes no lock of its own: holding
SQLite's write lock while the table is reflected would not do, since reflection goes through
Python's copy of the SQLite library, whose closing of the file drops the locks this process
holds through ADBC's copy. So two tasks may both find a column missing; the second ALTER
TABLE then fails with "duplicate column name", which the table treats as done
(``already_exists``)."""

from __future__ import annotations

from typing import Any

import adbc_driver_sqlite.dbapi as adbc_sqlite
import pyarrow as pa

from omconnect.connectors.sql._database import TableName
from omconnect.connectors.sql._sink_rows import (
    OFFSET_COLUMN,
    PARTITION_COLUMN,
    ROW_COLUMN,
    portable_column,
    sql_text_column,
)
from omconnect.connectors.sql._sink_writer import BulkWriter, WriteTarget

BUSY_TIMEOUT_MS = 60_000
_ALREADY_EXISTS = ("duplicate column name", "already exists")


class SqliteWriter(BulkWriter):
    dialect = "sqlite"
    current_schema_query = "SELECT 'main'"

    def _connect(self) -> Any:
        connection = adbc_sqlite.connect(str(self.url.database))
        cursor = connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        finally:
            cursor.close()
        return connection

    def _lock_ddl(self, table: TableName) -> None:
        """Nothing (see the module docstring): SQLite runs one writer's DDL at a time."""

    def _unlock_ddl(self, table: TableName) -> None:
        """Nothing: no lock was taken."""

    def already_exists(self, error: BaseException) -> bool:
        text = str(error).lower()
        return any(phrase in text for phrase in _ALREADY_EXISTS)

    def placeholder(self, number: int) -> str:
        return "?"

    def stage(self, rows: pa.Table, target: WriteTarget) -> None:
        columns = {}
        for name in rows.column_names:
            column = portable_column(rows.column(name))
            kind = column.type
            if pa.types.is_temporal(kind) or pa.types.is_decimal(kind):
                column = sql_text_column(column)
            columns[name] = column
        cursor = self.connection.cursor()
        try:
            cursor.adbc_ingest(self.stage_name, pa.table(columns), mode="create", temporary=True)
        finally:
            cursor.close()

    def stage_ref(self) -> str:
        return f"temp.{self.quote(self.stage_name)}"

    def index_stage_rows(self) -> None:
        """SQLite names the schema on the index, not on its table."""
        index = self.quote(f"{self.stage_name}_rows")
        stage, row = self.quote(self.stage_name), self.quote(ROW_COLUMN)
        self.execute(f"CREATE INDEX temp.{index} ON {stage} ({row})")

    def newer(self, stored: str, incoming: str) -> str:
        partition, offset = self.quote(PARTITION_COLUMN), self.quote(OFFSET_COLUMN)
        return (
            f"({stored}.{partition} IS NOT {incoming}.{partition} "
            f"OR {stored}.{offset} < {incoming}.{offset})"
        )

    def delete(self, target: WriteTarget, part: bool = False) -> str:
        table = self.table(target.table)
        return (
            f"DELETE FROM {table} WHERE rowid IN (SELECT t.rowid FROM "
            f"{self.stage_ref()} AS s JOIN {table} AS t ON "
            f"{self.key_matches(target, 't')} WHERE {self._deleted(part)} "
            f"AND {self.newer('t', 's')})"
        )

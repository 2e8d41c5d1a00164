"""SQLite: rows are staged with ADBC's SQLite driver (Arrow columns bound in C, no Python
object per row) into a temporary table, then moved with one ``INSERT ... SELECT ... ON
CONFLICT (key) DO UPDATE ... WHERE <newer>`` (or one ``DELETE``) per batch, in the same
transaction as the positions. Dates, times, timestamps and decimals are staged as the text
SQLAlchemy's SQLite types read back."""

from __future__ import annotations

from typing import Any

import adbc_driver_sqlite.dbapi as adbc_sqlite
import pyarrow as pa

from omconnect.connectors.sql._sink_rows import (
    OFFSET_COLUMN,
    PARTITION_COLUMN,
    portable_column,
    sql_text_column,
)
from omconnect.connectors.sql._sink_writer import BulkWriter, WriteTarget


class SqliteWriter(BulkWriter):
    dialect = "sqlite"

    def _connect(self) -> Any:
        return adbc_sqlite.connect(str(self.url.database))

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

    def newer(self, stored: str, incoming: str) -> str:
        partition, offset = self.quote(PARTITION_COLUMN), self.quote(OFFSET_COLUMN)
        return (
            f"({stored}.{partition} IS NOT {incoming}.{partition} "
            f"OR {stored}.{offset} < {incoming}.{offset})"
        )

    def delete(self, target: WriteTarget) -> str:
        table = self.table(target.table)
        return (
            f"DELETE FROM {table} WHERE rowid IN (SELECT t.rowid FROM "
            f"{self.stage_ref()} AS s JOIN {table} AS t ON "
            f"{self.key_matches(target, 't')} WHERE {self._deleted()} AND {self.newer('t', 's')})"
        )

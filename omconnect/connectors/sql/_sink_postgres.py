"""PostgreSQL: rows are staged with ADBC's bulk ingest (``COPY ... FROM STDIN`` in binary,
straight from Arrow buffers) into a temporary table, then moved with one
``INSERT ... SELECT ... ON CONFLICT (key) DO UPDATE ... WHERE <newer>`` (or one
``DELETE ... USING``) per batch, in the same transaction as the positions."""

from __future__ import annotations

from typing import Any

import adbc_driver_postgresql.dbapi as adbc_postgresql
import pyarrow as pa

from omconnect.connectors.sql._sink_rows import portable_column
from omconnect.connectors.sql._sink_writer import BulkWriter, WriteTarget


class PostgresWriter(BulkWriter):
    dialect = "postgresql"

    def _connect(self) -> Any:
        uri = self.url.set(drivername="postgresql").render_as_string(hide_password=False)
        return adbc_postgresql.connect(uri)

    def placeholder(self, number: int) -> str:
        return f"${number}"

    def stage(self, rows: pa.Table, target: WriteTarget) -> None:
        portable = pa.table(
            {name: portable_column(rows.column(name)) for name in rows.column_names}
        )
        cursor = self.connection.cursor()
        try:
            cursor.adbc_ingest(self.stage_name, portable, mode="create", temporary=True)
        finally:
            cursor.close()

    def staged(self, column: str, target: WriteTarget) -> str:
        return f"CAST(s.{self.quote(column)} AS {target.types[column]})"

    def delete(self, target: WriteTarget) -> str:
        return (
            f"DELETE FROM {self.table(target.table)} AS t USING {self.stage_ref()} AS s "
            f"WHERE {self._deleted()} AND {self.key_matches(target, 't')} "
            f"AND {self.newer('t', 's')}"
        )

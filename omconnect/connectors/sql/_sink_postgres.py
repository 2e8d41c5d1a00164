"""PostgreSQL: rows are staged with ADBC's bulk ingest (``COPY ... FROM STDIN`` in binary,
straight from Arrow buffers) into a temporary table, then moved with one
``INSERT ... SELECT ... ON CONFLICT (key) DO UPDATE ... WHERE <newer>`` (or one
``DELETE ... USING``) per batch, in the same transaction as the positions.

DDL runs under a transaction-level advisory lock (``pg_advisory_xact_lock``) keyed on a
64-bit hash of ``schema.table``: it ends with the transaction that created the table or added
the columns, so the next task to take it reflects them."""

from __future__ import annotations

import re
from typing import Any

import adbc_driver_postgresql.dbapi as adbc_postgresql
import pyarrow as pa

from omconnect.connectors.sql._database import TableName
from omconnect.connectors.sql._sink_rows import portable_column
from omconnect.connectors.sql._sink_writer import BulkWriter, WriteTarget, lock_key

# duplicate_column, duplicate_table, and unique_violation: what a CREATE TABLE that lost a
# race for the catalog (pg_type's unique index) reports.
_ALREADY_EXISTS = frozenset({"42701", "42P07", "23505"})


# A bounded character or bit string type, of columns or of array elements.
_BOUNDED = re.compile(
    r"(CHARACTER VARYING|VARCHAR|CHARACTER|CHAR|BIT VARYING|VARBIT|BIT)\s*\(\d+\)((?:\[\])*)",
    re.IGNORECASE,
)


def unbounded(sql_type: str) -> str:
    """The type a staged column is cast to for a target column of ``sql_type``: itself, but
    for a bounded string (``VARCHAR(3)``, ``CHAR(3)``, ``BIT(3)``, arrays of them) the
    unbounded kind (``TEXT``, ``VARBIT``). An explicit cast cuts a longer value to fit (SQL's
    rule for CAST), while the INSERT's own assignment to the column refuses it ("value too
    long"): the row is refused, never written cut."""
    bounded = _BOUNDED.fullmatch(sql_type.strip())
    if bounded is None:
        return sql_type
    kind = "VARBIT" if bounded.group(1).upper().startswith(("BIT", "VARBIT")) else "TEXT"
    return kind + bounded.group(2)


class PostgresWriter(BulkWriter):
    dialect = "postgresql"
    _explicit = False  # in a transaction begun by BEGIN on an autocommit connection

    def _connect(self, autocommit: bool = False) -> Any:
        uri = self.url.set(drivername="postgresql").render_as_string(hide_password=False)
        return adbc_postgresql.connect(uri, autocommit=autocommit)

    def placeholder(self, number: int) -> str:
        return f"${number}"

    def _lock_ddl(self, table: TableName) -> None:
        self.fetch("SELECT pg_advisory_xact_lock($1)", (lock_key(self.lock_name(table)),))

    def _unlock_ddl(self, table: TableName) -> None:
        """Nothing: the lock ended with the transaction."""

    def already_exists(self, error: BaseException) -> bool:
        return getattr(error, "sqlstate", None) in _ALREADY_EXISTS

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
        return f"CAST(s.{self.quote(column)} AS {unbounded(target.types[column])})"

    def begin_sparing(self) -> None:
        """A connection in autocommit mode, in a transaction of its own (``BEGIN``): ADBC
        refuses every statement on a connection whose transaction it runs once one failed,
        even the ``ROLLBACK TO SAVEPOINT`` that would mend it."""
        self.close()
        self._connection = self._connect(autocommit=True)
        self.execute("BEGIN")
        self._explicit = True

    def commit(self) -> None:
        if self._explicit:
            self.execute("COMMIT")
            self.close()  # the next flush opens a connection in the driver's transactions
        else:
            super().commit()

    def rollback(self) -> None:
        if self._explicit:
            self.close()  # the server rolls back what the closed session left open
        else:
            super().rollback()

    def close(self) -> None:
        self._explicit = False
        super().close()

    def delete(self, target: WriteTarget, part: bool = False) -> str:
        return (
            f"DELETE FROM {self.table(target.table)} AS t USING {self.stage_ref()} AS s "
            f"WHERE {self._deleted(part)} AND {self.key_matches(target, 't')} "
            f"AND {self.newer('t', 's')}"
        )

"""MariaDB / MySQL: rows are staged with ``LOAD DATA LOCAL INFILE`` from a tab-separated file
built column by column with Arrow compute (no Python object per row), then moved with one
``INSERT ... SELECT ... ON DUPLICATE KEY UPDATE`` (or one ``DELETE ... JOIN``) per batch, in
the same transaction as the positions.

The file is MySQL's default text format: fields escaped with backslashes (``\\\\``, ``\\t``,
``\\n``, ``\\r``), ``\\N`` for NULL, binaries as hex loaded through ``UNHEX``. ``ON DUPLICATE
KEY UPDATE`` has no WHERE, so every assignment is ``IF(<newer>, VALUES(c), c)``; the position
columns are assigned last, since MySQL evaluates assignments left to right on the updated row.
(``executemany`` of multi-row INSERTs was the alternative; it formats every value in Python.)

DDL runs under a named lock (``GET_LOCK``) derived from ``database.table``; MariaDB commits
each DDL statement at once, so the lock is released (``RELEASE_LOCK``) only after them, and
ending the session releases it too.
"""

from __future__ import annotations

import os
import re
import tempfile
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from omconnect.connectors.api import RetriableError
from omconnect.connectors.sql._database import MARIADB_ROW_ERRORS, RowsRefused, TableName
from omconnect.connectors.sql._sink_rows import (
    DELETE_COLUMN,
    OFFSET_COLUMN,
    PARTITION_COLUMN,
    ROW_COLUMN,
    sql_text_column,
)
from omconnect.connectors.sql._sink_writer import BulkWriter, WriteTarget, lock_key

_STAGE_ONLY_TYPES = {
    PARTITION_COLUMN: "VARCHAR(255)",
    OFFSET_COLUMN: "BIGINT",
    DELETE_COLUMN: "BOOL",
    ROW_COLUMN: "BIGINT",
}
_ESCAPES = (("\\", "\\\\"), ("\t", "\\t"), ("\n", "\\n"), ("\r", "\\r"))
_CHUNK_ROWS = 100_000
_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_LOCK_WAIT_SECONDS = 300
# ER_TABLE_EXISTS_ERROR, ER_DUP_FIELDNAME
_ALREADY_EXISTS = frozenset({1050, 1060})


class MariaDbWriter(BulkWriter):
    dialect = "mysql"
    stage_kind = "TEMPORARY TABLE"
    current_schema_query = "SELECT DATABASE()"

    def _connect(self) -> Any:
        return self.engine.raw_connection()

    def placeholder(self, number: int) -> str:
        return "%s"

    def _check_warnings(self, cursor: Any) -> None:
        """A warning about a row's data (``MARIADB_ROW_ERRORS``) is raised as ``RowsRefused``:
        ``LOAD DATA LOCAL`` cuts a value too long or out of range to fit and only warns, as a
        server without a strict ``sql_mode`` does on any insert."""
        if cursor.warning_count:
            cursor.execute("SHOW WARNINGS")
            for _level, code, message in cursor.fetchall():
                if int(code) in MARIADB_ROW_ERRORS:
                    raise RowsRefused(message)

    def server_lock_name(self, table: TableName) -> str:
        """The ``GET_LOCK`` name of ``table``'s DDL lock (a hash: names are at most 64
        characters)."""
        return f"omconnect.ddl.{lock_key(self.lock_name(table)) & (2**64 - 1):016x}"

    def _lock_ddl(self, table: TableName) -> None:
        got = self.fetch(
            "SELECT GET_LOCK(%s, %s)", (self.server_lock_name(table), _LOCK_WAIT_SECONDS)
        )
        if got[0][0] != 1:
            raise RetriableError(
                f"table {table}: waited {_LOCK_WAIT_SECONDS} s for the lock sinks take to "
                f"change the table; SELECT IS_USED_LOCK('{self.server_lock_name(table)}') "
                "gives the connection id of the session holding it"
            )

    def _unlock_ddl(self, table: TableName) -> None:
        if self._connection is None:
            return  # the session ended (a failed rollback closed it), and its locks with it
        try:
            self.fetch("SELECT RELEASE_LOCK(%s)", (self.server_lock_name(table),))
            self.commit()
        except Exception:
            self.close()  # ending the session releases the lock

    def already_exists(self, error: BaseException) -> bool:
        return bool(error.args) and error.args[0] in _ALREADY_EXISTS

    def stage(self, rows: pa.Table, target: WriteTarget) -> None:
        definitions = ", ".join(
            f"{self.quote(name)} {stage_type(target.types.get(name)) or _STAGE_ONLY_TYPES[name]}"
            " NULL"
            for name in rows.column_names
        )
        self.execute(f"CREATE TEMPORARY TABLE {self.stage_ref()} ({definitions})")
        binary = {f.name for f in rows.schema if pa.types.is_binary(f.type)}
        fields = ", ".join(
            f"@{i}" if name in binary else self.quote(name)
            for i, name in enumerate(rows.column_names)
        )
        unhex = ", ".join(
            f"{self.quote(name)} = UNHEX(@{i})"
            for i, name in enumerate(rows.column_names)
            if name in binary
        )
        handle, path = tempfile.mkstemp(prefix="omconnect-", suffix=".tsv")
        try:
            with os.fdopen(handle, "wb") as file:
                for chunk in rows.to_batches(max_chunksize=_CHUNK_ROWS):
                    file.write(tab_separated(chunk))
            self.execute(
                f"LOAD DATA LOCAL INFILE %s INTO TABLE {self.stage_ref()} CHARACTER SET utf8mb4 "
                "FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n' "
                f"({fields})" + (f" SET {unhex}" if unhex else ""),
                (path,),
            )
        finally:
            os.unlink(path)

    def newer(self, stored: str, incoming: str) -> str:
        partition, offset = self.quote(PARTITION_COLUMN), self.quote(OFFSET_COLUMN)
        return (
            f"(NOT ({stored}.{partition} <=> {incoming}.{partition}) "
            f"OR {stored}.{offset} < {incoming}.{offset})"
        )

    def upsert(self, target: WriteTarget, part: bool = False) -> str:
        table = self.quote(target.table.name)
        partition, offset = self.quote(PARTITION_COLUMN), self.quote(OFFSET_COLUMN)
        newer = (
            f"(NOT ({table}.{partition} <=> VALUES({partition})) "
            f"OR {table}.{offset} < VALUES({offset}))"
        )
        updated = [c for c in target.columns if c not in (*target.key, PARTITION_COLUMN)]
        updated = [c for c in updated if c != OFFSET_COLUMN] + [OFFSET_COLUMN, PARTITION_COLUMN]
        assignments = ", ".join(
            f"{self.quote(c)} = IF({newer}, VALUES({self.quote(c)}), {table}.{self.quote(c)})"
            for c in updated
        )
        columns = ", ".join(self.quote(c) for c in target.columns)
        values = ", ".join(self.staged(c, target) for c in target.columns)
        return (
            f"INSERT INTO {self.table(target.table)} ({columns}) SELECT {values} "
            f"FROM {self.stage_ref()} AS s WHERE {self._not_deleted(part)} "
            f"ON DUPLICATE KEY UPDATE {assignments}"
        )

    def delete(self, target: WriteTarget, part: bool = False) -> str:
        return (
            f"DELETE t FROM {self.table(target.table)} AS t JOIN {self.stage_ref()} AS s "
            f"ON {self.key_matches(target, 't')} WHERE {self._deleted(part)} "
            f"AND {self.newer('t', 's')}"
        )

    def _position_conflict(self) -> str:
        return "ON DUPLICATE KEY UPDATE next_offset = VALUES(next_offset)"


def stage_type(sql_type: str | None) -> str | None:
    """The stage's type for a column of ``sql_type``: a string or binary of bounded length (or
    of a set of values, ``ENUM``, ``SET``) is staged unbounded (``LONGTEXT``, ``LONGBLOB``),
    so that a value too long for the column (or not of its set) fails the move into it (an
    error in a strict ``sql_mode``, else a warning, which ``execute`` raises) rather than
    being cut to fit as ``LOAD DATA LOCAL`` cuts it."""
    if sql_type is None:
        return None
    found = _BOUNDED.match(sql_type)
    if found is None:
        return sql_type
    return "LONGBLOB" if found.group(1).upper() in _BINARY_KINDS else "LONGTEXT"


_BOUNDED = re.compile(
    r"\s*(VARCHAR|CHAR|NVARCHAR|NCHAR|TINYTEXT|TEXT|MEDIUMTEXT|VARBINARY|BINARY|TINYBLOB"
    r"|BLOB|MEDIUMBLOB|ENUM|SET)\b",
    re.IGNORECASE,
)
_BINARY_KINDS = frozenset({"VARBINARY", "BINARY", "TINYBLOB", "BLOB", "MEDIUMBLOB"})


def tab_separated(rows: pa.RecordBatch) -> bytes:
    """``rows`` as lines of MySQL's default ``LOAD DATA`` text format (see the module
    docstring)."""
    texts = []
    for column in rows.columns:
        if pa.types.is_binary(column.type) or pa.types.is_large_binary(column.type):
            text = hex_text(column)
        else:
            text = sql_text_column(column)
            for plain, escaped in _ESCAPES:
                text = pc.replace_substring(text, plain, escaped)
        texts.append(pc.fill_null(text, "\\N"))
    lines = pc.binary_join_element_wise(*texts, "\t")
    lines = pc.binary_join_element_wise(lines, "", "\n")
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int32)[: len(lines) + 1]
    data = lines.buffers()[2]
    return data.to_pybytes()[offsets[0] : offsets[-1]] if data is not None else b""


def hex_text(column: pa.Array) -> pa.Array:
    """Each binary value as lower-case hex text (nulls stay null)."""
    column = pa.concat_arrays([column.cast(pa.binary())])  # offset 0, 32-bit offsets
    offsets = np.frombuffer(column.buffers()[1], dtype=np.int32)[: len(column) + 1]
    data = column.buffers()[2]
    raw = (
        np.frombuffer(data, dtype=np.uint8)[offsets[0] : offsets[-1]]
        if data
        else np.empty(0, np.uint8)
    )
    digits = np.empty(raw.size * 2, dtype=np.uint8)
    digits[0::2] = _HEX[raw >> 4]
    digits[1::2] = _HEX[raw & 0x0F]
    hex_offsets = ((offsets - offsets[0]) * 2).astype(np.int32)
    return pa.StringArray.from_buffers(
        len(column),
        pa.py_buffer(hex_offsets),
        pa.py_buffer(digits),
        column.buffers()[0],
        column.null_count,
    )

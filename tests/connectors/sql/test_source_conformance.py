"""The conformance kit on the sql source, against every dialect (PostgreSQL, MariaDB, SQLite).

A unit of input is an INSERT into one table. The table has a surrogate primary key
(``row_id``, assigned in insert order), so units sort after the ones before and the kit's
duplicate rows (the same ``id`` twice) are distinct rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import sqlalchemy as sa

from omconnect.runtime.testing import (
    MemoryOffsetReader,
    SourceConnectorTests,
    SourceDriver,
    ids_of,
    standard_rows,
)
from tests.support.sql_databases import DIALECTS, SqlDatabase, open_database

TABLE = "conformance"


def create_table(database: SqlDatabase, extra_column: bool = False) -> sa.Table:
    """The conformance table (created if missing)."""
    columns = [
        sa.Column("row_id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("id", sa.BigInteger, nullable=False),
        sa.Column("name", sa.String(64)),
        sa.Column("amount", sa.Double),
    ]
    if extra_column:
        columns.append(sa.Column("note", sa.String(64)))
    table = sa.Table(TABLE, database.metadata(), *columns)
    table.create(database.engine, checkfirst=True)
    return table


def insert_rows(database: SqlDatabase, rows: pa.Table) -> None:
    """``rows`` into the conformance table, adding the ``note`` column when they have it."""
    extra = "note" in rows.column_names
    inspector = sa.inspect(database.engine)
    schema = None if database.dialect == "sqlite" else database.schema
    if extra and inspector.has_table(TABLE, schema=schema):
        names = [c["name"] for c in inspector.get_columns(TABLE, schema=schema)]
        if "note" not in names:
            quoted = f'"{database.schema}"."{TABLE}"'
            if database.dialect == "mysql":
                quoted = f"`{database.schema}`.`{TABLE}`"
            database.execute(f"ALTER TABLE {quoted} ADD COLUMN note VARCHAR(64)")
    table = create_table(database, extra_column=extra)
    with database.engine.begin() as connection:
        connection.execute(table.insert(), rows.to_pylist())


class TestSqlSource(SourceConnectorTests):
    connector = "sql"
    rows = 1_000

    @pytest.fixture(autouse=True, params=DIALECTS)
    def _database(self, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[None]:
        for database in open_database(request.param, tmp_path):
            self.database = database
            yield

    def make_config(self, root: Path) -> dict[str, Any]:
        return {
            "url": self.database.url,
            "tables": [self.database.table(TABLE)],
            "chunk_size": 100,
        }

    def write_rows(self, root: Path, rows: pa.Table) -> None:
        insert_rows(self.database, rows)

    def offset_order(self, offset: Any) -> Any:
        after = offset.get("after")
        return (after or [-1], bool(offset.get("done")))

    def test_schema_change_between_units(self, tmp_path: Path) -> None:
        """A table has one shape at a time, so "between units" is between runs: rows read
        after a column was added carry it, under the next schema version; the rows before
        were read (and committed) with the old shape."""
        half = self.rows // 2
        config = {**self.make_config(tmp_path), "mode": "incremental", "cursor": "row_id"}
        offsets = MemoryOffsetReader()
        self.write_rows(tmp_path, standard_rows(0, half))
        first = SourceDriver(self.connector, config, offsets)
        before = first.read_to_end()
        for batch in before:
            first.commit(batch.positions)
        first.stop()
        self.write_rows(tmp_path, standard_rows(half, self.rows - half, extra_column=True))
        second = SourceDriver(self.connector, config, offsets)
        after = second.read_to_end()
        second.stop()
        assert sorted(ids_of(before)) == list(range(half))
        assert sorted(ids_of(after)) == list(range(half, self.rows))
        assert {b.schema.version for b in before} == {1}
        assert {b.schema.version for b in after} == {2}
        assert all("note" in b.values.schema.names for b in after)
        notes = [n for b in after for n in b.values.column("note").to_pylist()]
        assert sorted(notes) == sorted(f"note-{i}" for i in range(half, self.rows))

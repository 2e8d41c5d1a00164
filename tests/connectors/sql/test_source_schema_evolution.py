"""A column added between runs, under each ``schema_evolution`` setting, on every dialect."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from omconnect.connectors.api import ConnectorError
from omconnect.runtime.testing import MemoryOffsetReader, SourceDriver
from tests.support.sql_databases import SqlDatabase


def read(database: SqlDatabase, offsets: MemoryOffsetReader, evolution: str) -> list[Any]:
    config = {
        "url": database.url,
        "tables": [database.table("items")],
        "mode": "incremental",
        "cursor": "id",
        "schema_evolution": evolution,
    }
    source = SourceDriver("sql", config, offsets)
    try:
        batches = source.read_to_end()
        for batch in batches:
            source.commit(batch.positions)
    finally:
        source.stop()
    return batches


def add_column_and_row(database: SqlDatabase) -> None:
    name = f'"{database.schema}".items' if database.dialect == "postgresql" else "items"
    if database.dialect == "mysql":
        name = f"`{database.schema}`.items"
    database.execute(
        f"ALTER TABLE {name} ADD COLUMN note VARCHAR(20)",
        f"INSERT INTO {name} (id, name, note) VALUES (3, 'c', 'new')",
    )


@pytest.mark.parametrize("evolution", ["evolve", "freeze", "discard_column"])
def test_a_column_added_between_runs(sql_database: SqlDatabase, evolution: str) -> None:
    table = sa.Table(
        "items",
        sql_database.metadata(),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("name", sa.String(20)),
    )
    table.create(sql_database.engine)
    with sql_database.engine.begin() as connection:
        connection.execute(table.insert(), [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}])
    offsets = MemoryOffsetReader()
    first = read(sql_database, offsets, evolution)
    assert [b.schema.version for b in first] == [1]
    add_column_and_row(sql_database)
    if evolution == "freeze":
        with pytest.raises(ConnectorError, match=r"added note.*schema_evolution: evolve"):
            read(sql_database, offsets, evolution)
        return
    second = read(sql_database, offsets, evolution)
    rows = [row for b in second for row in b.values.to_pylist()]
    if evolution == "evolve":
        assert rows == [{"id": 3, "name": "c", "note": "new"}]
        assert {b.schema.version for b in second} == {2}
    else:
        assert rows == [{"id": 3, "name": "c"}]
        assert {b.schema.version for b in second} == {1}

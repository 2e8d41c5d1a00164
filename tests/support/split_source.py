"""A source that splits into two tasks: a SQLite database of two tables, one task per table
(a ``sql`` source with ``tables: [main.*]`` and ``tasks: 2``), for the tests of running some
of a source's tasks (``--task``) and of the orchestrators' fan-outs."""

from __future__ import annotations

import sqlite3
from pathlib import Path

SECOND_TABLE_FIRST_ID = 10_001

SPLIT_PIPELINE = """name: {name}
source:
  connector: sql
  url: sqlite:///{database}
  tables: [main.*]
  mode: snapshot
tasks: 2
topic: {name}
sink: {{connector: parquet, path: out/}}
"""


def two_table_database(path: Path, rows: int) -> Path:
    """A SQLite database at ``path`` with tables ``a`` (ids 1..rows) and ``b`` (ids
    ``SECOND_TABLE_FIRST_ID``.. on, ``rows`` of them)."""
    assert rows < SECOND_TABLE_FIRST_ID
    with sqlite3.connect(path) as connection:
        for table, first in (("a", 1), ("b", SECOND_TABLE_FIRST_ID)):
            connection.execute(f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, name TEXT)")
            connection.executemany(
                f"INSERT INTO {table} VALUES (?, ?)",
                [(i, f"n{i}") for i in range(first, first + rows)],
            )
    return path


def split_pipeline(directory: Path, rows: int = 2_000) -> Path:
    """``directory/split.yaml``: the two tables of ``rows`` rows each -> topic ``split`` ->
    Parquet files in ``directory/out``."""
    database = two_table_database(directory / "db.sqlite", rows)
    path = directory / "split.yaml"
    path.write_text(SPLIT_PIPELINE.format(name="split", database=database))
    return path

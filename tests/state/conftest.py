"""Fixtures of the state tests: one test body for every state backend.

``state`` is a pipeline's ``state:`` setting for each backend in turn: a fresh directory
(SQLite files and lock files), and a fresh schema in the machine's PostgreSQL
(``tests.support.sql_databases``), dropped after the test. PostgreSQL not running fails the
test with the command that starts it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.sql_databases import open_database

BACKENDS = ("directory", "postgresql")


@pytest.fixture
def postgres_state(tmp_path: Path) -> Iterator[str]:
    """The ``state:`` URL of a fresh Postgres state: a schema of its own, dropped after."""
    for database in open_database("postgresql", tmp_path):
        yield f"{database.url}?schema={database.schema}"


@pytest.fixture(params=BACKENDS)
def state(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh ``state:`` of each backend in turn."""
    if request.param == "directory":
        return str(tmp_path / "state")
    return str(request.getfixturevalue("postgres_state"))

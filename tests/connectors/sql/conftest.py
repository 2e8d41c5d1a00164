"""The pytest fixtures of the sql connector tests: a fresh, real database per test, dropped
after (``tests.support.sql_databases``).

``sql_database`` is parametrised over every dialect (``DIALECTS``); ``postgres_database`` is a
PostgreSQL schema.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.sql_databases import DIALECTS, SqlDatabase, open_database


@pytest.fixture(params=DIALECTS)
def sql_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlDatabase]:
    """A fresh database of each dialect in turn."""
    yield from open_database(request.param, tmp_path)


@pytest.fixture
def postgres_database(tmp_path: Path) -> Iterator[SqlDatabase]:
    """A fresh PostgreSQL schema."""
    yield from open_database("postgresql", tmp_path)

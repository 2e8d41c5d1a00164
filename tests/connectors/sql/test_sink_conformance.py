"""The conformance kit on the sql sink, on every dialect: upserting with deletes applied, and
appending (deletes skipped). Both store their positions, so the kit also checks exactly-once
delivery from them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from omconnect.runtime.testing import SinkConnectorTests
from tests.support.sql_databases import DIALECTS, SqlDatabase, open_database

from .sink_fixtures import read_table, sink_config


class SqlSinkTests(SinkConnectorTests):
    connector = "sql"
    mode_options: dict[str, Any]
    database: SqlDatabase

    @pytest.fixture(autouse=True, params=DIALECTS)
    def _fresh_database(self, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[None]:
        for database in open_database(request.param, tmp_path):
            self.database = database
            yield

    def make_config(self, root: Path) -> dict[str, Any]:
        return sink_config(self.database, **self.mode_options)

    def read_back(self, config: dict[str, Any]) -> pa.Table:
        return read_table(self.database)


class TestSqlSinkUpsert(SqlSinkTests):
    connector = "sql"
    dedupes_by_key = True
    deletes = "apply"
    mode_options = {"mode": "upsert", "delete": True}


class TestSqlSinkAppend(SqlSinkTests):
    connector = "sql"
    deletes = "skip"
    mode_options = {"mode": "append", "delete": False}

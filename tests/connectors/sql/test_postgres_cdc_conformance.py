"""The conformance kit on the postgres-cdc source: a unit of input is an INSERT into one
table (surrogate key ``row_id``, so the kit's duplicate rows are distinct rows); what the kit
checks of an emitted batch is the ``after`` rows of its change events."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import sqlalchemy as sa

from omconnect.connectors.api import RecordBatch
from omconnect.runtime.testing import (
    MemoryOffsetReader,
    SourceConnectorTests,
    ids_of,
    standard_rows,
)
from omconnect.schemas.arrow import from_arrow_schema
from tests.connectors.sql.test_postgres_cdc import LOGICAL
from tests.connectors.sql.test_source_conformance import TABLE, create_table, insert_rows
from tests.support.sql_databases import drop_replication_slot, open_database


class TestPostgresCdcSource(SourceConnectorTests):
    connector = "postgres-cdc"
    rows = 1_000

    @pytest.fixture(autouse=True)
    def _database(self, tmp_path: Path) -> Iterator[None]:
        for database in open_database("postgresql", tmp_path):
            with database.engine.connect() as connection:
                level = connection.execute(sa.text("SHOW wal_level")).scalar()
            if level != "logical":
                pytest.fail(LOGICAL.format(level=level))
            self.database = database
            self.slot = f"omc_kit_{uuid.uuid4().hex[:12]}"
            yield
            with database.engine.connect() as connection:
                drop_replication_slot(connection, self.slot)

    def make_config(self, root: Path) -> dict[str, Any]:
        create_table(self.database)  # the source needs the table to exist before rows do
        return {
            "url": self.database.url,
            "tables": [self.database.table(TABLE)],
            "slot": self.slot,
        }

    def write_rows(self, root: Path, rows: pa.Table) -> None:
        insert_rows(self.database, rows)

    def emitted_rows(self, batch: RecordBatch) -> RecordBatch:
        after = batch.values.column("after")
        kept = pa.compute.is_valid(after)
        values = pa.RecordBatch.from_struct_array(after.filter(kept))
        schema = from_arrow_schema(values.schema, batch.schema.name, key_fields=("row_id",))
        end = values.num_rows
        marks = tuple(type(m)(min(m.end_row, end), m.position) for m in batch.marks)
        return RecordBatch(values=values, schema=schema, marks=marks, stream=batch.stream)

    def offset_order(self, offset: Mapping[str, Any]) -> Any:
        state = offset.get("snapshot")
        if state == "running":
            return (0, offset.get("table") or "", offset.get("after") or [])
        return (1, int(offset.get("commit_lsn") or 0), int(offset.get("index") or 0))

    def test_schema_change_between_units(self, tmp_path: Path) -> None:
        """A column added between two units: the rows read before it (the snapshot) have the
        old shape, the rows inserted after it are streamed with the column, under the next
        schema version."""
        half = self.rows // 2
        root = self._root(tmp_path)
        offsets = MemoryOffsetReader()
        self.write_rows(root, standard_rows(0, half))
        first = self._driver(self._config(root), offsets)
        before = first.read_to_end()
        for batch in before:
            first.commit(batch.positions)
        first.stop()
        self.write_rows(root, standard_rows(half, self.rows - half, extra_column=True))
        second = self._driver(self._config(root), offsets)
        after = second.read_to_end()
        second.stop()
        assert sorted(ids_of(before)) == list(range(half))
        assert sorted(ids_of(after)) == list(range(half, self.rows))
        assert all("note" not in b.values.schema.names for b in before)
        assert all("note" in b.values.schema.names for b in after if b.num_rows)
        notes = [n for b in after for n in b.values.column("note").to_pylist()]
        assert sorted(notes) == sorted(f"note-{i}" for i in range(half, self.rows))

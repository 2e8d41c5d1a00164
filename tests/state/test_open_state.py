"""Opening what a pipeline needs from its ``state:`` setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from omconnect.runtime.file_lock import FileLock
from omconnect.runtime.state import (
    DirectoryState,
    OffsetStoreError,
    StateUnavailableError,
    open_offset_store,
    open_schema_registry,
    open_state,
)
from omconnect.runtime.state.offsets import SqliteOffsetStore
from omconnect.runtime.state.postgres import PostgresState
from omconnect.runtime.state.schema_registry import SqliteSchemaRegistry
from omconnect.schemas.record import Position


def test_a_directory_gives_the_sqlite_stores(tmp_path: Path) -> None:
    state = tmp_path / "nested" / ".omconnect"
    store = open_offset_store(str(state))
    assert isinstance(store, SqliteOffsetStore)
    store.put("p", [Position({"f": "a"}, {"n": 1})])
    store.close()
    assert (state / "offsets.sqlite").is_file()
    again = open_offset_store(state)
    assert again.get("p", {"f": "a"}) == {"n": 1}
    again.close()
    registry = open_schema_registry(state)
    assert isinstance(registry, SqliteSchemaRegistry)
    assert (state / "registry.sqlite").is_file()
    lock = open_state(state).pipeline_lock("orders")
    assert isinstance(lock, FileLock) and lock.path == state / "locks" / "orders.lock"


def test_opening_existing_stores_creates_nothing(tmp_path: Path) -> None:
    state = open_state(tmp_path / "state")
    assert isinstance(state, DirectoryState)
    assert state.open_existing_offset_store() is None
    assert state.open_existing_schema_registry() is None
    assert not (tmp_path / "state").exists()


def test_a_file_where_the_directory_should_be_is_named(tmp_path: Path) -> None:
    (tmp_path / "state").write_text("")
    with pytest.raises(OffsetStoreError, match="a file is in the way"):
        open_offset_store(tmp_path / "state")
    with pytest.raises(OffsetStoreError, match="is a file, not a directory"):
        open_state(tmp_path / "state").open_existing_offset_store()


@pytest.mark.parametrize(
    "state",
    [
        "postgresql://omconnect:pw@db:5432/state",
        "postgres://db/state?schema=pipelines",
        "postgresql+psycopg://db/state?sslmode=require",
    ],
)
def test_postgres_urls_open_the_postgres_backend_without_connecting(state: str) -> None:
    backend = open_state(state)
    assert isinstance(backend, PostgresState)
    assert backend.location.host == "db" and backend.location.database == "state"
    assert "pw" not in repr(backend.location)


def test_other_urls_are_refused() -> None:
    with pytest.raises(StateUnavailableError, match="s3:// is not a state backend"):
        open_offset_store("s3://bucket/state")

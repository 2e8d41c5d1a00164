"""Opening the offset store of a pipeline's ``state:``, and exporting / importing offsets."""

from __future__ import annotations

from pathlib import Path

import pytest

from omconnect.runtime.offsets import (
    OffsetStoreUnavailableError,
    SqliteOffsetStore,
    export_offsets,
    open_offset_store,
)
from omconnect.schemas.record import Position


def test_a_directory_gives_the_sqlite_store(tmp_path: Path) -> None:
    state = tmp_path / "nested" / ".omconnect"
    store = open_offset_store(str(state))
    assert isinstance(store, SqliteOffsetStore)
    store.put("p", [Position({"f": "a"}, {"n": 1})])
    store.close()
    assert (state / "offsets.sqlite").is_file()
    again = open_offset_store(state)
    assert again.get("p", {"f": "a"}) == {"n": 1}
    again.close()


@pytest.mark.parametrize(
    "state", ["postgresql://omconnect:pw@db:5432/state", "postgres://db/state"]
)
def test_postgres_state_is_not_available_yet(state: str) -> None:
    with pytest.raises(NotImplementedError, match="Postgres offset store is not available yet"):
        open_offset_store(state)


def test_other_urls_are_refused() -> None:
    with pytest.raises(OffsetStoreUnavailableError, match="s3://"):
        open_offset_store("s3://bucket/state")


def test_export_then_import_into_another_namespace(tmp_path: Path) -> None:
    store = SqliteOffsetStore(tmp_path / "offsets.sqlite")
    store.put(
        "source",
        [Position({"table": "a"}, {"lsn": "0/1", "i": 3}), Position({"table": "b"}, {"id": 7})],
    )
    rows = store.export("source")
    assert rows == [
        {"partition": {"table": "a"}, "offset": {"i": 3, "lsn": "0/1"}},
        {"partition": {"table": "b"}, "offset": {"id": 7}},
    ]
    assert store.import_("copy", rows) == 2
    assert export_offsets(store, "copy") == rows
    store.close()


@pytest.mark.parametrize(
    "bad_row",
    [
        {"partition": {"t": "x"}},
        {"partition": "t", "offset": {}},
        {"partition": {}, "offset": {}, "x": 1},
    ],
)
def test_import_refuses_bad_rows_and_stores_nothing(
    tmp_path: Path, bad_row: dict[str, object]
) -> None:
    store = SqliteOffsetStore(tmp_path / "offsets.sqlite")
    good = {"partition": {"t": "ok"}, "offset": {"n": 1}}
    with pytest.raises(ValueError, match="offset row 1"):
        store.import_("p", [good, bad_row])
    assert store.all("p") == []
    store.close()

"""Exporting and importing a namespace's offsets."""

from __future__ import annotations

from pathlib import Path

import pytest

from omconnect.runtime.state.offsets import SqliteOffsetStore, export_offsets
from omconnect.schemas.record import Position


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

"""What only the SQLite offset store has: its ``synchronous`` setting and rows written as plain
JSON before positions were tagged. The contract every store keeps is in
``test_offset_store_contract``."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from omconnect.runtime.state.offsets import SqliteOffsetStore
from omconnect.schemas.record import Position


def test_positions_survive_reopening_with_full_sync(tmp_path: Path) -> None:
    path = tmp_path / "offsets.sqlite"
    first = SqliteOffsetStore(path)
    first.put("p", [Position({"f": "a"}, {"n": 1})])
    first.close()
    second = SqliteOffsetStore(path, synchronous="full")
    assert second.all("p") == [Position({"f": "a"}, {"n": 1})]
    second.close()
    with pytest.raises(ValueError, match="synchronous must be"):
        SqliteOffsetStore(path, synchronous="off")


def test_rows_stored_as_plain_json_before_tags_still_match(tmp_path: Path) -> None:
    path = tmp_path / "offsets.sqlite"
    SqliteOffsetStore(path).close()
    legacy = {"schema": "public", "table": "orders"}
    with sqlite3.connect(path) as connection:
        connection.execute(
            "INSERT INTO source_offsets VALUES (?, ?, ?, ?, 0)",
            (
                "p",
                json.dumps(legacy, sort_keys=True, separators=(",", ":"), default=str),
                json.dumps(legacy, sort_keys=True),
                json.dumps({"lsn": "0/1", "n": 3}, sort_keys=True),
            ),
        )
    store = SqliteOffsetStore(path)
    assert store.get("p", legacy) == {"lsn": "0/1", "n": 3}
    store.put("p", [Position(legacy, {"lsn": "0/2", "n": 4})])
    assert store.all("p") == [Position(legacy, {"lsn": "0/2", "n": 4})]
    store.close()

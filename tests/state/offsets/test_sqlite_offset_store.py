"""The SQLite offset store: round trips, atomic puts, namespaces, several threads and
processes, and a put interrupted by SIGKILL."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from omconnect.runtime.state.offsets import SqliteOffsetStore
from omconnect.schemas.record import Position


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteOffsetStore]:
    opened = SqliteOffsetStore(tmp_path / "state" / "offsets.sqlite")
    yield opened
    opened.close()


def test_round_trip_and_overwrite(store: SqliteOffsetStore) -> None:
    file_a = {"path": "orders.csv"}
    table = {"schema": "public", "table": "orders", "slot": 1}
    store.put("p", [Position(file_a, {"line": 10}), Position(table, {"lsn": "0/16B3748", "i": 0})])
    assert store.get("p", file_a) == {"line": 10}
    # Dict order does not matter: partitions are keyed canonically.
    assert store.get("p", {"table": "orders", "slot": 1, "schema": "public"}) == {
        "lsn": "0/16B3748",
        "i": 0,
    }
    store.put("p", [Position(file_a, {"line": 11, "done": True})])
    assert store.get("p", file_a) == {"line": 11, "done": True}
    assert store.get("p", {"path": "missing.csv"}) is None
    assert sorted(p.offset.get("line", -1) for p in store.all("p")) == [-1, 11]


def test_positions_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "offsets.sqlite"
    first = SqliteOffsetStore(path)
    first.put("p", [Position({"f": "a"}, {"n": 1})])
    first.close()
    second = SqliteOffsetStore(path, synchronous="full")
    assert second.all("p") == [Position({"f": "a"}, {"n": 1})]
    second.close()


def test_a_failing_put_stores_nothing(store: SqliteOffsetStore) -> None:
    store.put("p", [Position({"f": "a"}, {"n": 1})])
    with pytest.raises(TypeError):
        store.put("p", [Position({"f": "a"}, {"n": 2}), Position({"f": "b"}, {"n": object()})])
    assert store.all("p") == [Position({"f": "a"}, {"n": 1})]


def test_delete_and_namespaces_are_independent(store: SqliteOffsetStore) -> None:
    store.put("one", [Position({"f": "a"}, {"n": 1}), Position({"f": "b"}, {"n": 2})])
    store.put("two", [Position({"f": "a"}, {"n": 9})])
    assert store.namespaces() == ["one", "two"]
    assert store.get("two", {"f": "a"}) == {"n": 9}
    assert store.delete("one", {"f": "a"}) == 1
    assert store.delete("one", {"f": "a"}) == 0
    assert store.all("one") == [Position({"f": "b"}, {"n": 2})]
    assert store.delete("one") == 1
    assert store.namespaces() == ["two"]
    assert store.get("two", {"f": "a"}) == {"n": 9}


def test_threads_share_one_store(store: SqliteOffsetStore) -> None:
    def worker(number: int) -> None:
        for n in range(50):
            store.put("p", [Position({"worker": number}, {"n": n})])
            assert store.get("p", {"worker": number}) == {"n": n}

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted((p.partition["worker"], p.offset["n"]) for p in store.all("p")) == [
        (i, 49) for i in range(4)
    ]


_PUT_IN_A_LOOP = """
import sys
from omconnect.runtime.state.offsets import SqliteOffsetStore
from omconnect.schemas.record import Position

store = SqliteOffsetStore(sys.argv[1])
namespace, rounds = sys.argv[2], int(sys.argv[3])
for n in range(rounds if rounds else 10**9):
    store.put(namespace, [Position({"p": p}, {"n": n}) for p in range(50)])
    store.put("shared", [Position({"writer": namespace}, {"n": n})])
    if n == 20:
        print("running", flush=True)
store.close()
"""


def test_processes_share_one_store(tmp_path: Path) -> None:
    path = tmp_path / "offsets.sqlite"
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", _PUT_IN_A_LOOP, str(path), name, "150"],
            stdout=subprocess.DEVNULL,
        )
        for name in ("left", "right")
    ]
    assert [p.wait(timeout=60) for p in processes] == [0, 0]
    store = SqliteOffsetStore(path)
    for name in ("left", "right"):
        assert {p.offset["n"] for p in store.all(name)} == {149}
        assert len(store.all(name)) == 50
    assert store.get("shared", {"writer": "left"}) == {"n": 149}
    assert store.get("shared", {"writer": "right"}) == {"n": 149}
    store.close()


def test_a_put_killed_midway_is_all_or_nothing(tmp_path: Path) -> None:
    path = tmp_path / "offsets.sqlite"
    process = subprocess.Popen(
        [sys.executable, "-c", _PUT_IN_A_LOOP, str(path), "killed", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "running"
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)
    process.stdout.close()
    store = SqliteOffsetStore(path)
    positions = store.all("killed")
    assert len(positions) == 50
    # Every put wrote all 50 partitions with one n: a torn put would mix two values.
    assert len({p.offset["n"] for p in positions}) == 1
    assert positions[0].offset["n"] >= 20
    store.close()


def test_datetimes_decimals_and_bytes_come_back_as_they_went_in(tmp_path: Path) -> None:
    import datetime as dt
    import uuid
    from decimal import Decimal
    from zoneinfo import ZoneInfo

    partition = {"table": "orders", "since": dt.date(2024, 1, 1), "slot": b"\x01\x02"}
    offset = {
        "commit_time": dt.datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=dt.UTC),
        "local": dt.datetime(2024, 5, 1, 14, 0, tzinfo=ZoneInfo("Europe/Paris")),
        "naive": dt.datetime(2024, 5, 1, 12, 0, 0, 1),
        "last_id": Decimal("123456789012345678901234567890.10"),
        "gtid": b"\x00\xffraw",
        "tx": uuid.UUID(int=42),
        "seen": [Decimal("1.0"), {"at": dt.time(1, 2, 3, 4)}],
    }
    path = tmp_path / "offsets.sqlite"
    first = SqliteOffsetStore(path)
    first.put("p", [Position(partition, offset)])
    first.close()
    store = SqliteOffsetStore(path)
    assert store.get("p", dict(reversed(list(partition.items())))) == offset
    [position] = store.all("p")
    assert position == Position(partition, offset)
    assert str(position.offset["last_id"]) == "123456789012345678901234567890.10"
    assert position.offset["local"].tzinfo == ZoneInfo("Europe/Paris")

    rows = store.export("p")
    json.dumps(rows)  # export rows are plain JSON
    assert rows[0]["offset"]["commit_time"] == {"$datetime": "2024-05-01T12:00:00.123456+00:00"}
    assert store.import_("copy", json.loads(json.dumps(rows))) == 1
    assert store.all("copy") == [Position(partition, offset)]
    store.close()


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


def test_a_malformed_tag_in_an_import_row_is_refused(tmp_path: Path) -> None:
    store = SqliteOffsetStore(tmp_path / "offsets.sqlite")
    row = {"partition": {"t": "x"}, "offset": {"at": {"$datetime": "soon"}}}
    with pytest.raises(ValueError, match="offset row 0: malformed position value"):
        store.import_("p", [row])
    assert store.all("p") == []
    store.close()

"""The offset store contract, on every store (the SQLite and Postgres states, a Kafka topic and
a NATS bucket): round trips, puts that store nothing when they fail, namespaces, several
threads and processes, and a put interrupted by SIGKILL (all or nothing where the store is
atomic, else every position a whole one)."""

from __future__ import annotations

import datetime as dt
import json
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from omconnect.runtime.state import OffsetStore
from omconnect.runtime.state.offsets import export_offsets, import_offsets
from omconnect.schemas.record import Position
from tests.state.offset_stores import OPEN_IN_A_SUBPROCESS, OffsetsAt


@pytest.fixture
def store(offsets_at: OffsetsAt) -> Iterator[OffsetStore]:
    opened = offsets_at.open()
    yield opened
    opened.close()


def test_round_trip_and_overwrite(store: OffsetStore) -> None:
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


def test_the_last_position_of_a_partition_in_one_put_wins(store: OffsetStore) -> None:
    store.put("p", [Position({"f": "a"}, {"n": n}) for n in range(5)])
    assert store.all("p") == [Position({"f": "a"}, {"n": 4})]


def test_positions_survive_reopening(offsets_at: OffsetsAt) -> None:
    assert offsets_at.open_existing() is None, "nothing was made yet"
    first = offsets_at.open()
    first.put("p", [Position({"f": "a"}, {"n": 1})])
    first.close()
    second = offsets_at.open_existing()
    assert second is not None
    assert second.all("p") == [Position({"f": "a"}, {"n": 1})]
    second.close()


def test_a_failing_put_stores_nothing(store: OffsetStore) -> None:
    store.put("p", [Position({"f": "a"}, {"n": 1})])
    with pytest.raises(TypeError):
        store.put("p", [Position({"f": "a"}, {"n": 2}), Position({"f": "b"}, {"n": object()})])
    assert store.all("p") == [Position({"f": "a"}, {"n": 1})]


def test_delete_and_namespaces_are_independent(store: OffsetStore) -> None:
    store.put("one", [Position({"f": "a"}, {"n": 1}), Position({"f": "b"}, {"n": 2})])
    store.put("two", [Position({"f": "a"}, {"n": 9})])
    store.put("Two", [Position({"f": "a"}, {"n": 8})])
    assert store.namespaces() == ["Two", "one", "two"]  # sorted by code point, as sorted()
    assert store.get("two", {"f": "a"}) == {"n": 9}
    assert store.delete("one", {"f": "a"}) == 1
    assert store.delete("one", {"f": "a"}) == 0
    assert store.all("one") == [Position({"f": "b"}, {"n": 2})]
    assert store.delete("one") == 1
    assert store.namespaces() == ["Two", "two"]
    assert store.get("two", {"f": "a"}) == {"n": 9}


def test_threads_share_one_store(store: OffsetStore) -> None:
    failures: list[BaseException] = []

    def worker(number: int) -> None:
        try:
            for n in range(50):
                store.put("p", [Position({"worker": number}, {"n": n})])
                assert store.get("p", {"worker": number}) == {"n": n}
        except BaseException as error:
            failures.append(error)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert sorted((p.partition["worker"], p.offset["n"]) for p in store.all("p")) == [
        (i, 49) for i in range(4)
    ]


_PUT_IN_A_LOOP = (
    OPEN_IN_A_SUBPROCESS
    + """
from omconnect.schemas.record import Position

namespace, rounds = sys.argv[3], int(sys.argv[4])
for n in range(rounds if rounds else 10**9):
    store.put(namespace, [Position({"p": p}, {"n": n}) for p in range(50)])
    store.put("shared", [Position({"writer": namespace}, {"n": n})])
    store.put("everyone", [Position({"p": p}, {"n": n, "by": namespace}) for p in range(20)])
    if n == 20:
        print("running", flush=True)
store.close()
"""
)


def test_processes_write_their_own_and_the_same_namespaces(offsets_at: OffsetsAt) -> None:
    offsets_at.open().close()
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", _PUT_IN_A_LOOP, *offsets_at.argv, name, "100"],
            stdout=subprocess.DEVNULL,
        )
        for name in ("left", "right")
    ]
    assert [p.wait(timeout=60) for p in processes] == [0, 0]
    store = offsets_at.open()
    for name in ("left", "right"):
        assert {p.offset["n"] for p in store.all(name)} == {99}
        assert len(store.all(name)) == 50
    assert store.get("shared", {"writer": "left"}) == {"n": 99}
    assert store.get("shared", {"writer": "right"}) == {"n": 99}
    # Both wrote every partition of one namespace: each put is whole, the last one wins.
    everyone = store.all("everyone")
    assert len(everyone) == 20
    assert {p.offset["n"] for p in everyone} == {99}
    store.close()


def test_a_put_killed_midway_is_all_or_nothing(offsets_at: OffsetsAt) -> None:
    offsets_at.open().close()
    process = subprocess.Popen(
        [sys.executable, "-c", _PUT_IN_A_LOOP, *offsets_at.argv, "killed", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "running"
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)
    process.stdout.close()
    store = offsets_at.open()
    positions = store.all("killed")
    assert len(positions) == 50
    found = {p.offset["n"] for p in positions}
    if offsets_at.atomic:
        # Every put wrote all 50 partitions with one n: a torn put would mix two values.
        assert len(found) == 1
    else:
        # A put may be cut short: its partitions that were stored hold its n, the others the
        # previous put's, which had finished. Every position is a whole one.
        assert len(found) <= 2 and max(found) - min(found) <= 1, found
    assert min(found) >= 20
    assert all(set(p.offset) == {"n"} for p in positions)
    store.close()


def test_datetimes_decimals_and_bytes_come_back_as_they_went_in(offsets_at: OffsetsAt) -> None:
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
    first = offsets_at.open()
    first.put("p", [Position(partition, offset)])
    first.close()
    store = offsets_at.open()
    assert store.get("p", dict(reversed(list(partition.items())))) == offset
    [position] = store.all("p")
    assert position == Position(partition, offset)
    assert str(position.offset["last_id"]) == "123456789012345678901234567890.10"
    assert position.offset["local"].tzinfo == ZoneInfo("Europe/Paris")

    rows = export_offsets(store, "p")
    json.dumps(rows)  # export rows are plain JSON
    assert rows[0]["offset"]["commit_time"] == {"$datetime": "2024-05-01T12:00:00.123456+00:00"}
    assert import_offsets(store, "copy", json.loads(json.dumps(rows))) == 1
    assert store.all("copy") == [Position(partition, offset)]
    store.close()


def test_a_malformed_tag_in_an_import_row_is_refused(store: OffsetStore) -> None:
    row = {"partition": {"t": "x"}, "offset": {"at": {"$datetime": "soon"}}}
    with pytest.raises(ValueError, match="offset row 0: malformed position value"):
        import_offsets(store, "p", [row])
    assert store.all("p") == []

"""Deletes (tombstones) travel end to end; every message carries a stable ``oms.message_id``
and the source's per-row headers."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from omconnect.runtime.brokers import open_broker
from omconnect.runtime.testing.fault_broker import FaultInjectingBroker
from tests.support.toy_connectors import COLLECTED

from .conftest import run_pipeline


def _pipeline(tmp_path: Path, source: str, fmt: str, extra: str = "") -> str:
    return (
        f"name: toy\nbroker: embedded://{tmp_path}/b\nstate: {tmp_path}/s\n"
        f"source: {source}\nsink: {{connector: toy-collect}}\nformat: {fmt}\n{extra}"
    )


@pytest.mark.parametrize("fmt", ["avro", "json"])
def test_a_tombstone_reaches_the_sink_as_a_delete_of_its_key(tmp_path: Path, fmt: str) -> None:
    source = "{connector: toy-streams, rows: 6, deletes: [2, 5]}"
    # tolerance none: a tombstone is not a bad record and must not stop the sink.
    metrics = run_pipeline(tmp_path / "p.yaml", _pipeline(tmp_path, source, fmt))
    rows = sorted(COLLECTED["default"].rows, key=lambda r: r["id"] if r["id"] is not None else 99)
    deleted = [r for r in COLLECTED["default"].rows if r["deleted"]]
    assert sorted(r["key"] for r in deleted) == ["k2", "k5"]
    assert all(r["version"] is None for r in deleted), "a delete has no value"
    kept = sorted(r["id"] for r in rows if not r["deleted"])
    assert kept == [0, 1, 3, 4]
    assert metrics.rows_dead_lettered == 0
    key_schemas = {r["key_schema"] for r in COLLECTED["default"].rows}
    assert len(key_schemas) == 1 and None not in key_schemas, "sink batches carry a key schema"
    (key_schema,) = key_schemas
    assert [f.name for f in key_schema.fields] == ["key"]


def _messages(tmp_path: Path, topic: str) -> list[tuple[bytes | None, dict[str, bytes]]]:
    async def body() -> list[tuple[bytes | None, dict[str, bytes]]]:
        broker = open_broker(f"embedded://{tmp_path}/b")
        consumer = await broker.consumer("inspect", [topic])
        found = []
        while batches := await consumer.poll(10_000, 0.3):
            for batch in batches:
                for i in range(len(batch.messages)):
                    found.append((batch.messages.values[i].as_py(), batch.messages.header_dict(i)))
        await broker.close()
        return found

    return asyncio.run(body())


def test_tombstones_are_null_message_bodies_on_the_topic(tmp_path: Path) -> None:
    source = "{connector: toy-streams, rows: 3, deletes: [1]}"
    run_pipeline(tmp_path / "p.yaml", _pipeline(tmp_path, source, "avro"))
    bodies = [value for value, _ in _messages(tmp_path, "toy")]
    assert [b is None for b in bodies] == [False, True, False]


def test_every_message_has_an_id_and_a_redelivered_row_keeps_it(tmp_path: Path) -> None:
    source = "{connector: toy-streams, rows: 60, keys: 5, batch_rows: 4}"
    text = _pipeline(
        tmp_path,
        source,
        "json",
        # Each acknowledged batch is committed at once (commit_interval 0); at most 6 sends
        # are refused, since every 4th send can line up with the 4 batches left after a rewind.
        "batching: {max_rows: 4, linger: 0s}\nerrors: {retry_timeout: 30s}\ncommit_interval: 0s\n",
    )
    faulty = FaultInjectingBroker(
        open_broker(f"embedded://{tmp_path}/b"),
        fail_every=4,
        max_ack_delay=0.02,
        max_failures=6,
        topics=["toy"],
    )
    run_pipeline(tmp_path / "p.yaml", text, broker=faulty)
    assert faulty.failures > 0
    messages = _messages(tmp_path, "toy")
    ids_by_row: dict[int, set[bytes]] = {}
    for value, headers in messages:
        assert value is not None
        row = int(value.split(b'"id":')[1].split(b",")[0])
        ids_by_row.setdefault(row, set()).add(headers["oms.message_id"])
    assert sorted(ids_by_row) == list(range(60))
    assert len(messages) > 60, "the injected failures caused redeliveries"
    assert all(len(ids) == 1 for ids in ids_by_row.values()), "a redelivery keeps its id"
    all_ids = [next(iter(ids)) for ids in ids_by_row.values()]
    assert len(set(all_ids)) == 60, "different rows have different ids"
    # The sink reads the ids the topic holds, as strings.
    seen = {(r["id"], r["message_id"].encode()) for r in COLLECTED["default"].rows}
    assert seen == {(row, next(iter(ids))) for row, ids in ids_by_row.items()}

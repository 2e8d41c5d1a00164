"""Sends that fail never let a later batch overtake an earlier one: per key, the newest version
is always the last one on the topic, and what the broker acknowledged is committed."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from omconnect.runtime.brokers import open_broker
from omconnect.runtime.state import open_offset_store
from omconnect.runtime.testing.fault_broker import FaultInjectingBroker, InjectedSendError
from tests.support.toy_connectors import COLLECTED

from .conftest import run_pipeline

ROWS = 400
KEYS = 7


def _versions_on_topic(tmp_path: Path, topic: str) -> dict[str, list[int]]:
    async def body() -> dict[str, list[int]]:
        broker = open_broker(f"embedded://{tmp_path}/b")
        consumer = await broker.consumer("inspect", [topic])
        per_key: dict[str, list[int]] = {}
        while batches := await consumer.poll(10_000, 0.3):
            for batch in batches:
                for value in batch.messages.values.to_pylist():
                    row = json.loads(value)
                    per_key.setdefault(row["key"], []).append(row["version"])
        await broker.close()
        return per_key

    return asyncio.run(body())


def _committed_rows(tmp_path: Path) -> dict[str, int]:
    """The committed source row of each stream of the ``toy`` pipeline."""
    store = open_offset_store(f"{tmp_path}/s")
    try:
        return {p.partition["stream"]: p.offset["row"] for p in store.all("toy")}
    finally:
        store.close()


def _last_occurrences_in_version_order(versions: list[int]) -> bool:
    """True when the last time each version appears, the versions are in increasing order:
    a redelivery may repeat a run of versions, but an old version never ends up after a newer
    one (2, 3, 1 fails; 1, 2, 3, 2, 3 passes)."""
    last = {v: i for i, v in enumerate(versions)}
    ordered = sorted(last, key=lambda v: last[v])
    return ordered == sorted(ordered)


def _pipeline(tmp_path: Path, extra: str = "") -> str:
    return (
        f"name: toy\nbroker: embedded://{tmp_path}/b\nstate: {tmp_path}/s\n"
        f"source: {{connector: toy-streams, rows: {ROWS}, keys: {KEYS}, batch_rows: 10}}\n"
        "sink: {connector: toy-collect}\nformat: json\n"
        "batching: {max_rows: 10, linger: 0s}\n"
        "errors: {retry_timeout: 30s, retry_max_delay: 0.2s}\n" + extra
    )


@pytest.mark.parametrize("fail_every", [3, 7])
def test_failed_sends_never_leave_an_older_version_last(tmp_path: Path, fail_every: int) -> None:
    faulty = FaultInjectingBroker(
        open_broker(f"embedded://{tmp_path}/b"),
        fail_every=fail_every,
        max_ack_delay=0.01,
        max_failures=12,  # a fixed period can line up with the batches left after a rewind
        topics=["toy"],
    )
    metrics = run_pipeline(tmp_path / "p.yaml", _pipeline(tmp_path), broker=faulty)
    assert faulty.failures >= 3
    # Failures of sends in flight together are one rewind: at least one happened.
    assert metrics.source_rewinds >= 1
    per_key = _versions_on_topic(tmp_path, "toy")
    newest = (ROWS - 1) // KEYS
    for key, versions in per_key.items():
        assert _last_occurrences_in_version_order(versions), (key, versions)
        assert versions[-1] >= newest - 1, "the newest version is last"
    # Nothing lost on the way to the sink either.
    assert set(COLLECTED["default"].ids()) == set(range(ROWS))


def test_the_order_check_catches_a_retried_batch_landing_late() -> None:
    assert not _last_occurrences_in_version_order([2, 3, 1])
    assert _last_occurrences_in_version_order([1, 2, 3, 2, 3])


def test_a_run_that_fails_commits_what_the_broker_acknowledged(tmp_path: Path) -> None:
    # Every 5th send fails and the retry budget is zero: the run fails at the first failure,
    # but the 4 batches acknowledged before it are committed and not published again (only
    # sends already in flight behind the failed one can be: the in-flight budget of 2 KiB
    # holds at most 10 batches of 10 rows of about 220 bytes).
    faulty = FaultInjectingBroker(
        open_broker(f"embedded://{tmp_path}/b"), fail_every=5, topics=["toy"]
    )
    text = _pipeline(tmp_path).replace("retry_timeout: 30s", "retry_timeout: 0s")
    text += "max_in_flight_bytes: 2KiB\n"
    with pytest.raises(InjectedSendError):
        run_pipeline(tmp_path / "p.yaml", text, broker=faulty)
    committed = _committed_rows(tmp_path)
    assert committed == {"": 40}
    run_pipeline(tmp_path / "p.yaml", _pipeline(tmp_path))
    per_key = _versions_on_topic(tmp_path, "toy")
    total = sum(len(v) for v in per_key.values())
    assert ROWS <= total <= ROWS + 10 * 10, "duplicates stay within the sends in flight"


def test_a_source_that_breaks_still_commits_what_was_acknowledged(tmp_path: Path) -> None:
    text = _pipeline(tmp_path).replace("batch_rows: 10}", "batch_rows: 10, fail_at_row: 120}")
    with pytest.raises(RuntimeError, match="broke at row 120"):
        run_pipeline(tmp_path / "p.yaml", text)
    committed = _committed_rows(tmp_path)
    assert committed == {"": 120}, "every batch the broker acknowledged is committed"


def test_exactly_once_leaves_no_duplicate_and_no_reordering_under_failed_sends(
    tmp_path: Path,
) -> None:
    rows = 150
    faulty = FaultInjectingBroker(
        open_broker(f"embedded://{tmp_path}/b"),
        fail_every=6,
        max_ack_delay=0.01,
        max_failures=12,
        topics=["toy"],
    )
    # Transactions commit as soon as their sends are acknowledged (commit_interval 0), and at
    # most 12 sends are refused: a fixed period can line up with the batches left after a
    # rewind.
    text = _pipeline(tmp_path, "exactly_once: true\ncommit_interval: 0s\n").replace(
        f"rows: {ROWS}", f"rows: {rows}"
    )
    metrics = run_pipeline(tmp_path / "p.yaml", text, broker=faulty)
    assert faulty.failures >= 2 and metrics.source_rewinds >= 2
    per_key = _versions_on_topic(tmp_path, "toy")
    assert sum(len(v) for v in per_key.values()) == rows, "aborted sends are never visible"
    for key, versions in per_key.items():
        assert versions == sorted(versions), (key, versions)
    assert sorted(COLLECTED["default"].ids()) == list(range(rows))


def test_a_run_whose_sink_fails_commits_what_the_source_had_acknowledged(
    tmp_path: Path,
) -> None:
    # The sink fails while the source streams: the runner cancels the source loop, which
    # still stores what the broker acknowledged (commits are otherwise rare here: acks lag
    # and commit_interval is an hour), so the topic holds beyond the committed position at
    # most the sends in flight (a 2 KiB budget: about 10 batches of 10 rows).
    rows = 20_000
    faulty = FaultInjectingBroker(
        open_broker(f"embedded://{tmp_path}/b"), fail_every=0, max_ack_delay=0.02, topics=["toy"]
    )
    text = (
        _pipeline(tmp_path)
        .replace(f"rows: {ROWS}", f"rows: {rows}")
        .replace("{connector: toy-collect}", "{connector: toy-collect, fail_after_rows: 3000}")
        + "max_in_flight_bytes: 2KiB\ncommit_interval: 1h\n"
    )
    with pytest.raises(Exception, match="the target refused"):
        run_pipeline(tmp_path / "p.yaml", text, broker=faulty)
    committed = _committed_rows(tmp_path)
    on_topic = sum(len(v) for v in _versions_on_topic(tmp_path, "toy").values())
    assert on_topic < rows, "the source was stopped before it finished"
    assert on_topic - committed.get("", 0) <= 10 * 10, (on_topic, committed)

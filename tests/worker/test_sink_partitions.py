"""Partition-aware sinks in Kafka Connect's shape: open/close on assignment, flush says what is
durable, a task can ask for a commit, and a failed flush of a position-storing sink rewinds."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from omconnect.connectors.api import TopicPartition
from omconnect.runtime.brokers import open_broker
from omconnect.runtime.config.loader import load_pipeline
from omconnect.runtime.pipeline_positions import sink_offsets
from omconnect.runtime.worker.runner import PipelineRunner
from omconnect.schemas.message_batch import MessageBatch
from tests.support.toy_connectors import COLLECTED

from .conftest import run_pipeline


def _pipeline(tmp_path: Path, sink: str, rows: int = 10, extra: str = "") -> str:
    return (
        f"name: toy\nbroker: embedded://{tmp_path}/b\nstate: {tmp_path}/s\n"
        f"source: {{connector: toy-streams, rows: {rows}, keys: 5, batch_rows: 3}}\n"
        f"sink: {sink}\nformat: json\n{extra}"
    )


def test_the_task_opens_its_partitions_and_closes_them_at_the_end(tmp_path: Path) -> None:
    run_pipeline(
        tmp_path / "p.yaml",
        _pipeline(tmp_path, "{connector: toy-collect}", extra="partitions: 2\n"),
    )
    collected = COLLECTED["default"]
    opened = {tp for call in collected.opened for tp in call}
    closed = {tp for call in collected.closed for tp in call}
    assert opened == {TopicPartition("toy", 0), TopicPartition("toy", 1)}
    assert closed == opened
    assert sorted(collected.ids()) == list(range(10))


def test_only_positions_the_sink_calls_durable_are_committed(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    run_pipeline(path, _pipeline(tmp_path, "{connector: toy-collect, durable_every: 4}"))
    committed = asyncio.run(sink_offsets(load_pipeline(path)))
    assert committed == {("toy", 0): 8}, "10 rows put, the sink called 8 durable"
    # The next run redelivers what was not durable (at least once).
    COLLECTED.clear()
    run_pipeline(path, _pipeline(tmp_path, "{connector: toy-collect, durable_every: 4}", rows=12))
    assert sorted(COLLECTED["default"].ids()) == [8, 9, 10, 11]


def test_a_task_can_ask_for_a_commit(tmp_path: Path) -> None:
    sink = "{connector: toy-collect, request_commit_every: 3}"
    text = _pipeline(
        tmp_path, sink, rows=30, extra="commit_interval: 1h\nbatching: {max_rows: 3}\n"
    )
    run_pipeline(tmp_path / "p.yaml", text)
    assert len(COLLECTED["default"].flushes) >= 5, "commits came when the task asked"


def test_a_failed_flush_of_a_position_storing_sink_redelivers_the_rolled_back_rows(
    tmp_path: Path,
) -> None:
    sink = "{connector: toy-txn-sink, fail_flushes: 2}"
    text = _pipeline(tmp_path, sink, rows=20, extra="errors: {retry_timeout: 20s}\n")
    run_pipeline(tmp_path / "p.yaml", text)
    collected = COLLECTED["default"]
    assert sorted(collected.ids()) == list(range(20)), "rolled-back rows were delivered again"
    assert [(p.partition["topic"], p.offset["offset"]) for p in collected.stored] == [("toy", 20)]


def test_a_slow_sink_keeps_its_partitions(tmp_path: Path) -> None:
    # Each put takes longer than the session timeout: the consumer is paused, not abandoned.
    sink = "{connector: toy-collect, put_delay: 0.4}"
    text = _pipeline(tmp_path, sink, rows=16, extra="partitions: 2\nbatching: {max_rows: 2}\n")
    text = text.replace(f"embedded://{tmp_path}/b", f"embedded://{tmp_path}/b?session_timeout=0.3")
    run_pipeline(tmp_path / "p.yaml", text)
    collected = COLLECTED["default"]
    assert sorted(collected.ids()) == list(range(16))
    assert len(collected.opened) == 1, "no rebalance: the member never lost its partitions"


def _sink_only(tmp_path: Path, collect: str) -> Path:
    path = tmp_path / f"{collect}.yaml"
    path.write_text(
        f"name: shared\nbroker: embedded://{tmp_path}/b?session_timeout=2\n"
        f"state: {tmp_path}/s\ntopics: [events]\n"
        f"sink: {{connector: toy-collect, name: {collect}}}\nformat: raw\ncommit_interval: 0.2s\n"
    )
    return path


def test_two_members_of_one_pipeline_split_the_partitions_and_rebalance(tmp_path: Path) -> None:
    async def body() -> None:
        broker = open_broker(f"embedded://{tmp_path}/b")
        from omconnect.runtime.brokers.base import TopicSettings

        await broker.create_topic("events", TopicSettings(partitions=4))
        producer = await broker.producer()

        async def produce(start: int, count: int) -> None:
            keys = [f"k{n}".encode() for n in range(start, start + count)]
            values = [str(n).encode() for n in range(start, start + count)]
            await producer.send("events", MessageBatch.build(values, keys=keys))

        stop_a, stop_b = asyncio.Event(), asyncio.Event()
        a = PipelineRunner(load_pipeline(_sink_only(tmp_path, "a")))
        b = PipelineRunner(load_pipeline(_sink_only(tmp_path, "b")))
        running_a = asyncio.create_task(a.run(stop_a))
        await _until(lambda: _owned("a") == 4)
        await produce(0, 200)
        running_b = asyncio.create_task(b.run(stop_b))
        await _until(lambda: _owned("a") == 2 and _owned("b") == 2)
        await produce(200, 200)
        await _until(lambda: len(set(COLLECTED["a"].ids()) | set(COLLECTED["b"].ids())) == 400)
        assert not _current("a") & _current("b"), "no partition has two owners"
        stop_b.set()
        await running_b
        await _until(lambda: _owned("a") == 4)
        await produce(400, 100)
        await _until(lambda: len(set(COLLECTED["a"].ids()) | set(COLLECTED["b"].ids())) == 500)
        stop_a.set()
        await running_a
        await broker.close()

    asyncio.run(asyncio.wait_for(body(), 60))
    a_closed = [tp for call in COLLECTED["a"].closed for tp in call]
    assert len(a_closed) >= 2, "a gave two partitions to b"
    both = COLLECTED["a"].ids() + COLLECTED["b"].ids()
    assert sorted(set(both)) == list(range(500))
    assert len(both) - 500 <= 200, "duplicates only around the rebalance"


def _current(name: str) -> set[TopicPartition]:
    collected = COLLECTED.get(name)
    return collected.owned() if collected is not None else set()


def _owned(name: str) -> int:
    return len(_current(name))


async def _until(condition, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


def test_on_a_queue_broker_the_sink_acknowledges_what_it_flushed(tmp_path: Path) -> None:
    from tests.support.queue_broker import QueueBroker, QueueState

    state = QueueState()
    text = _pipeline(tmp_path, "{connector: toy-collect}", rows=25, extra="partitions: 1\n")
    run_pipeline(tmp_path / "p.yaml", text, broker=QueueBroker(state))
    assert sorted(COLLECTED["default"].ids()) == list(range(25))
    assert state.acked == 25, "every message was acknowledged after the flush"
    assert not any(state.queues.values()), "nothing is left to redeliver"


def test_a_position_storing_sink_is_refused_on_a_broker_that_cannot_seek(tmp_path: Path) -> None:
    from tests.support.queue_broker import QueueBroker, QueueState

    text = _pipeline(tmp_path, "{connector: toy-txn-sink}")
    with pytest.raises(ValueError, match="stores its own positions"):
        run_pipeline(tmp_path / "p.yaml", text, broker=QueueBroker(QueueState()))

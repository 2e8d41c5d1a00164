"""The runner in-process with plugin connectors: async sources, single records, retries,
commit hooks, and sinks that store their own positions."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import pytest

from omconnect.connectors.api import (
    AsyncSourceTask,
    ConnectorSpec,
    Position,
    Record,
    RetriableError,
    SinkConnector,
    SinkTask,
    SourceConnector,
    TaskContext,
    TopicPartition,
    register,
)
from omconnect.runtime.config.loader import load_pipeline
from omconnect.runtime.worker.runner import PipelineRunner
from omconnect.schemas import types as t
from omconnect.schemas.record import RecordBatch
from omconnect.schemas.schema import Schema

SCHEMA = Schema("tick", (t.Field("n", t.int64(), nullable=False), t.Field("label", t.string())))
EVENTS: dict[str, list] = {"commits": [], "puts": [], "flushes": []}


class CounterSpec(ConnectorSpec):
    count: int = 10
    """How many records to emit."""
    fail_first_poll: bool = False
    """Raise a RetriableError on the first poll."""
    fail_first_commit: bool = False
    """Raise a RetriableError on the first commit (a replication slot's server restarting)."""


class AsyncCounterTask(AsyncSourceTask):
    async def start(self, config: ConnectorSpec, context: TaskContext) -> None:
        assert isinstance(config, CounterSpec)
        self.config = config
        last = context.offsets.get({"counter": "c"})
        self.next = int(last["n"]) if last else 0
        self.failed = False
        self.commit_failed = False

    async def poll(self) -> list[Record] | None:
        if self.config.fail_first_poll and not self.failed:
            self.failed = True
            raise RetriableError("not yet")
        if self.next >= self.config.count:
            return None
        await asyncio.sleep(0)
        records = []
        for n in range(self.next, min(self.next + 3, self.config.count)):
            position = Position({"counter": "c"}, {"n": n + 1})
            records.append(Record({"n": n, "label": f"#{n}"}, SCHEMA, position=position))
        self.next += len(records)
        return records

    async def commit(self, positions: Sequence[Position]) -> None:
        if self.config.fail_first_commit and not self.commit_failed:
            self.commit_failed = True
            raise RetriableError("slot busy")
        EVENTS["commits"].append([dict(p.offset) for p in positions])

    async def stop(self) -> None:
        pass


class AsyncCounter(SourceConnector):
    """Counts (a test source)."""

    name = "test-async-counter"
    spec = CounterSpec
    task_class = AsyncCounterTask


class RecordingSpec(ConnectorSpec):
    flaky_flush: bool = False
    """Fail the first flush with a RetriableError."""


class RecordingSinkTask(SinkTask):
    stores_positions: ClassVar[bool] = True
    stored: ClassVar[list[Position]] = []

    def start(self, config: ConnectorSpec, context: TaskContext) -> None:
        assert isinstance(config, RecordingSpec)
        self.config = config
        self.buffer: list[int] = []
        self.flushed_once = False

    def put(self, batch: RecordBatch) -> None:
        self.buffer.extend(batch.values.column("n").to_pylist())

    def close(self, partitions: Sequence[TopicPartition]) -> None:
        self.buffer = []  # unflushed rows of partitions taken away (or rewound) are dropped

    def flush(self, positions: Sequence[Position]) -> None:
        if self.config.flaky_flush and not self.flushed_once:
            self.flushed_once = True
            raise RetriableError("disk busy")
        EVENTS["puts"].extend(self.buffer)
        EVENTS["flushes"].append([dict(p.offset) for p in positions])
        self.buffer = []
        RecordingSinkTask.stored = list(positions)

    def stored_positions(self) -> list[Position]:
        return list(RecordingSinkTask.stored)

    def stop(self) -> None:
        pass


class RecordingSink(SinkConnector):
    """Records what it gets (a test sink)."""

    name = "test-recording"
    spec = RecordingSpec
    task_class = RecordingSinkTask


register(AsyncCounter)
register(RecordingSink)


@pytest.fixture(autouse=True)
def clean_events() -> None:
    for value in EVENTS.values():
        value.clear()
    RecordingSinkTask.stored = []


def run(path: Path, text: str) -> None:
    path.write_text(text)
    asyncio.run(PipelineRunner(load_pipeline(path), once=True).run())


def pipeline(tmp_path: Path, source: str, sink: str) -> str:
    return (
        f"name: counter\nbroker: embedded://{tmp_path}/b\nstate: {tmp_path}/s\n"
        f"source: {source}\nsink: {sink}\nformat: json\n"
        "errors: {retry_timeout: 10s}\n"
    )


def test_async_source_records_reach_the_sink_and_commits_follow_acks(tmp_path: Path) -> None:
    text = pipeline(
        tmp_path, "{connector: test-async-counter, count: 10}", "{connector: test-recording}"
    )
    run(tmp_path / "p.yaml", text)
    assert EVENTS["puts"] == list(range(10))
    assert EVENTS["commits"][-1] == [{"n": 10}]
    assert EVENTS["flushes"][-1] == [{"offset": 10}]

    run(tmp_path / "p.yaml", text.replace("count: 10", "count: 13"))
    assert EVENTS["puts"] == list(range(13)), "the second run resumes at n=10"


def test_retriable_errors_are_retried(tmp_path: Path) -> None:
    text = pipeline(
        tmp_path,
        "{connector: test-async-counter, count: 4, fail_first_poll: true, fail_first_commit: true}",
        "{connector: test-recording, flaky_flush: true}",
    )
    run(tmp_path / "p.yaml", text)
    assert EVENTS["puts"] == [0, 1, 2, 3]
    assert EVENTS["commits"][-1] == [{"n": 4}], "the commit hook is called again"


def test_a_sink_that_stores_positions_is_sought_to_them(tmp_path: Path) -> None:
    text = pipeline(
        tmp_path, "{connector: test-async-counter, count: 6}", "{connector: test-recording}"
    )
    run(tmp_path / "p.yaml", text)
    assert EVENTS["puts"] == list(range(6))
    # The sink claims it stored offset 2 only: the runner must seek there, not to the group's 6.
    RecordingSinkTask.stored = [Position({"topic": "counter", "partition": 0}, {"offset": 2})]
    EVENTS["puts"].clear()
    run(tmp_path / "p.yaml", text.replace("count: 6", "count: 7"))
    assert EVENTS["puts"] == [2, 3, 4, 5, 6]

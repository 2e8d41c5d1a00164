"""The conformance kit's tests of sources without resumable positions (``resumable = False``):
a source that ticks like a polled device passes them, and the resume tests are skipped for
it; one that repeats its positions, has none, trips on its own stored positions, blocks in
``poll`` or never ends under ``once`` fails them; a resumable source skips them."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa
import pytest
from pydantic import Field

from omconnect.connectors.api import (
    AsyncSourceTask,
    ConnectorError,
    ConnectorSpec,
    PollResult,
    Position,
    PositionMark,
    RecordBatch,
    SourceConnector,
    TaskContext,
    register,
)
from omconnect.runtime.testing import SourceConnectorTests, source_test_class
from omconnect.schemas.arrow import from_arrow_schema
from tests.support.file_formats import write_csv

PARTITION = {"ticker": "kit"}


class _TickerSpec(ConnectorSpec):
    interval: float = Field(default=0.01, gt=0, description="Seconds between two ticks.")


class _TickerTask(AsyncSourceTask):
    """One record per tick, marked with the time of the tick, like a polled device."""

    async def start(self, config: ConnectorSpec, context: TaskContext) -> None:
        assert isinstance(config, _TickerSpec)
        self.interval = config.interval
        self.context = context
        self.ticks = 0
        self.done = False

    async def poll(self) -> PollResult:
        if self.done:
            return None
        await asyncio.sleep(self.interval)
        self.ticks += 1
        self.done = self.context.once
        values = pa.record_batch({"tick": pa.array([self.ticks], pa.int64())})
        return RecordBatch(
            values=values,
            schema=from_arrow_schema(values.schema, "ticks"),
            marks=self.marks(),
        )

    def marks(self) -> tuple[PositionMark, ...]:
        return (PositionMark(1, Position(PARTITION, {"at": time.time_ns()})),)

    async def stop(self) -> None:
        pass


class _Ticker(SourceConnector):
    name = "kit-test-ticker"
    spec: ClassVar[type[ConnectorSpec]] = _TickerSpec
    task_class = _TickerTask
    resumable = False


class _CountingTickerTask(_TickerTask):
    """Marks ticks 1, 2, 3 ... on every run: a restart gives new records the old ids."""

    def marks(self) -> tuple[PositionMark, ...]:
        return (PositionMark(1, Position(PARTITION, {"tick": self.ticks})),)


class _UnmarkedTickerTask(_TickerTask):
    def marks(self) -> tuple[PositionMark, ...]:
        return ()


class _ResumingTickerTask(_TickerTask):
    """Refuses to start on a stored position."""

    async def start(self, config: ConnectorSpec, context: TaskContext) -> None:
        if context.offsets.get(PARTITION) is not None:
            raise ConnectorError("cannot resume a ticker")
        await super().start(config, context)


class _EndlessTickerTask(_TickerTask):
    """Ticks on under ``once``."""

    async def poll(self) -> PollResult:
        self.done = False
        return await super().poll()


def _ticker(name: str, task: type[_TickerTask]) -> type[SourceConnector]:
    return type(name, (_Ticker,), {"name": name, "task_class": task})


for plugin in (
    _Ticker,
    _ticker("kit-test-counting-ticker", _CountingTickerTask),
    _ticker("kit-test-unmarked-ticker", _UnmarkedTickerTask),
    _ticker("kit-test-resuming-ticker", _ResumingTickerTask),
    _ticker("kit-test-endless-ticker", _EndlessTickerTask),
):
    register(plugin)


def _no_options(root: Path) -> dict[str, Any]:
    return {}


TestTickerThroughTheKit = source_test_class("kit-test-ticker", make_config=_no_options)


def _suite(name: str, options: dict[str, Any] | None = None, **limits: Any) -> SourceConnectorTests:
    """The kit's suite on the source ``name`` with ``options``, its limits overridden."""
    built = source_test_class(name, make_config=lambda root: dict(options or {}))
    return type(f"Suite_{name}", (built,), limits)()


@pytest.mark.parametrize("name", ["kit-test-counting-ticker", "kit-test-unmarked-ticker"])
def test_positions_that_repeat_across_restarts_fail_the_restart_test(
    name: str, tmp_path: Path
) -> None:
    suite = _suite(name)
    with pytest.raises(AssertionError, match=r"repeat .* message ids of the first run"):
        suite.test_restart_delivers_new_records_despite_its_stored_positions(tmp_path)


def test_a_source_that_trips_on_its_stored_positions_fails_the_restart_test(
    tmp_path: Path,
) -> None:
    suite = _suite("kit-test-resuming-ticker")
    with pytest.raises(ConnectorError, match="cannot resume"):
        suite.test_restart_delivers_new_records_despite_its_stored_positions(tmp_path)


def test_a_poll_that_blocks_too_long_fails_the_arrival_test(tmp_path: Path) -> None:
    suite = _suite("kit-test-ticker", {"interval": 0.2}, poll_limit=0.05)
    with pytest.raises(AssertionError, match="one poll blocked"):
        suite.test_records_arrive_in_time_and_follow_their_schema(tmp_path)


def test_too_few_records_in_time_fail_the_arrival_test(tmp_path: Path) -> None:
    suite = _suite("kit-test-ticker", {"interval": 0.2}, arrival_limit=0.3)
    with pytest.raises(AssertionError, match=r"[12] records arrived in 0\.3s, expected 3"):
        suite.test_records_arrive_in_time_and_follow_their_schema(tmp_path)


def test_a_source_that_never_ends_under_once_fails_the_once_test(tmp_path: Path) -> None:
    suite = _suite("kit-test-endless-ticker", arrival_limit=0.3)
    with pytest.raises(AssertionError, match="under once"):
        suite.test_once_ends_in_time(tmp_path)


def test_the_resume_tests_are_skipped_for_a_source_without_positions(tmp_path: Path) -> None:
    suite = _suite("kit-test-ticker")
    with pytest.raises(pytest.skip.Exception, match="no resumable positions"):
        suite.test_stop_then_resume_reads_every_row_exactly_once(tmp_path)


def test_the_live_tests_are_skipped_for_a_resumable_source(tmp_path: Path) -> None:
    suite = source_test_class(
        "csv", make_config=lambda root: {"path": f"{root}/*.csv"}, write_rows=write_csv
    )()
    with pytest.raises(pytest.skip.Exception, match="is resumable"):
        suite.test_restart_delivers_new_records_despite_its_stored_positions(tmp_path)

"""Freshness (issue 12): a source with nothing to read is idle, one stuck in ``poll`` is
stalled, a sink falling behind is lagging; event-time lags and consumer lag are measured;
the status JSON and ``/metrics`` show them.

Runs are real (threads, the embedded broker); the thresholds are short ones of the test's.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import ClassVar

import numpy as np
import pyarrow as pa
import pytest

from omconnect.connectors.api import (
    ConnectorSpec,
    Position,
    PositionMark,
    RecordBatch,
    SourceConnector,
    SourceTask,
    TaskContext,
    register,
)
from omconnect.runtime.config.loader import load_pipeline
from omconnect.runtime.serve.freshness import Freshness, FreshnessPolicy, freshness_report
from omconnect.runtime.worker import metrics
from omconnect.runtime.worker.metrics import RunTimes
from omconnect.runtime.worker.runner import PipelineRunner
from omconnect.schemas import types as t
from omconnect.schemas.schema import Schema
from tests.support import toy_connectors  # noqa: F401  (registers toy-streams, toy-collect)
from tests.support.served_worker import (
    ServedWorker,
    sink_ids,
    wait_until,
    write_orders,
    write_pipeline,
)

# Above the second an idle sink's poll waits and an idle source's loop sleeps: below it their
# heartbeats would be late, and an idle run would show stalled.
QUICK = FreshnessPolicy(stalled_after=2.5, idle_after=0.4)
EVENT_AGE_MS = 5000
SCHEMA = Schema("probe.row", (t.Field("id", t.int64(), nullable=False),))
RELEASE = threading.Event()
"""Set at the end of a test: a blocked probe's ``poll`` returns, so its run can stop."""


class ProbeSpec(ConnectorSpec):
    rows: int = 3
    """Rows of the first poll (event times ``EVENT_AGE_MS`` in the past); later polls are
    empty."""
    block: bool = False
    """After the first poll, block in ``poll`` until the test releases it."""


class ProbeTask(SourceTask):
    def start(self, config: ConnectorSpec, context: TaskContext) -> None:
        assert isinstance(config, ProbeSpec)
        self.config = config
        self.sent = context.offsets.get({"probe": 0}) is not None

    def poll(self) -> RecordBatch | None:
        if self.sent:
            if self.config.block:
                RELEASE.wait(30)
            return None
        self.sent = True
        rows = self.config.rows
        values = pa.RecordBatch.from_arrays([pa.array(np.arange(rows))], names=["id"])
        event_ms = int(time.time() * 1000) - EVENT_AGE_MS
        return RecordBatch(
            values,
            SCHEMA,
            (PositionMark(rows, Position({"probe": 0}, {"row": rows})),),
            timestamps=pa.array([event_ms] * rows, pa.int64()),
        )

    def stop(self) -> None:
        pass


class Probe(SourceConnector):
    """A source that sends a few rows with old event times, then nothing (or blocks)."""

    name: ClassVar[str] = "freshness-probe"
    spec = ProbeSpec
    task_class = ProbeTask


register(Probe)


class Running:
    """A pipeline run on its own event loop in a thread; ``report`` reads its freshness on
    that loop (where the run writes its times)."""

    def __init__(self, path: Path) -> None:
        self.runner = PipelineRunner(load_pipeline(path), once=False)
        self.loop = asyncio.new_event_loop()
        self.stop = asyncio.Event()
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=self._main, daemon=True)

    def _main(self) -> None:
        try:
            self.loop.run_until_complete(self.runner.run(self.stop))
        except BaseException as error:
            self.errors.append(error)

    def report(self, policy: FreshnessPolicy = QUICK) -> object:
        async def read() -> object:
            times, done = self.runner.metrics.times, self.runner.metrics.source_done
            return freshness_report(times, True, done, policy)

        return asyncio.run_coroutine_threadsafe(read(), self.loop).result(5)


@contextmanager
def running(path: Path) -> Iterator[Running]:
    run = Running(path)
    run.thread.start()
    try:
        yield run
    finally:
        RELEASE.set()
        run.loop.call_soon_threadsafe(run.stop.set)
        run.thread.join(15)
        RELEASE.clear()
    assert not run.thread.is_alive(), "the run did not stop"
    assert not run.errors, run.errors


def pipeline(
    tmp_path: Path, name: str, source: str, sink: str = "", batching: str = "{linger: 0.01}"
) -> Path:
    path = tmp_path / f"{name}.yaml"
    text = (
        f"name: {name}\nbroker: embedded://{tmp_path / 'state'}\nstate: {tmp_path / 'state'}\n"
        f"source: {source}\ntopic: {name}\ncommit_interval: 0.1\nbatching: {batching}\n"
    )
    path.write_text(text + (f"sink: {sink}\n" if sink else ""))
    return path


def test_a_source_with_nothing_to_read_is_idle_and_one_stuck_in_poll_is_stalled(
    tmp_path: Path,
) -> None:
    quiet = pipeline(tmp_path, "quiet", "{connector: freshness-probe}", "{connector: toy-collect}")
    stuck = pipeline(tmp_path, "stuck", "{connector: freshness-probe, block: true}")
    with running(quiet) as idle, running(stuck) as stalled:
        report = wait_until(
            lambda: (r := idle.report()).state is Freshness.IDLE and r.event_to_flush and r,
            what="idle, with a flush",
        )
        assert report.since_heartbeat < QUICK.stalled_after, "heartbeats go on"
        assert report.since_record > QUICK.idle_after
        # Event times are EVENT_AGE_MS old: the lags are at least that, and far from more.
        assert EVENT_AGE_MS / 1000 <= report.event_to_ack < EVENT_AGE_MS / 1000 + 10
        assert EVENT_AGE_MS / 1000 <= report.event_to_flush < EVENT_AGE_MS / 1000 + 10
        assert {task.name for task in report.tasks} == {"source-0", "sink-0"}

        report = wait_until(
            lambda: (r := stalled.report()).state is Freshness.STALLED and r, what="stalled"
        )
        assert report.since_heartbeat > QUICK.stalled_after
        assert [(task.name, task.state) for task in report.tasks] == [
            ("source-0", Freshness.STALLED)
        ]
        # Under the default thresholds the same run is neither: it is young.
        assert stalled.report(FreshnessPolicy()).state is Freshness.ACTIVE
        assert idle.report().state is Freshness.IDLE, "the other run is still idle"


def test_a_sink_falling_behind_has_consumer_lag_and_is_lagging(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(metrics, "LAG_SAMPLE_SECONDS", 0.05)
    path = pipeline(
        tmp_path,
        "behind",
        "{connector: toy-streams, rows: 200000, batch_rows: 500}",
        "{connector: toy-collect, name: behind, put_delay: 0.05}",
        "{max_rows: 500, linger: 0}",
    )
    with running(path) as run:
        lags: list[int] = []

        def lagging() -> bool:
            report = run.report()
            if report.consumer_lag is not None:
                lags.append(report.consumer_lag)
            return report.state is Freshness.LAGGING

        wait_until(lagging, timeout=10, what="lagging")
        assert max(lags) > 0


def test_lag_grows_only_when_every_sample_rises() -> None:
    times = RunTimes()
    owned = [("t", 0)]
    for end in (10, 20, 20, 40, 50):  # lags 5, 15, 15, 35, 45: the last four do not all rise
        times.consumer_lag_sampled({("t", 0): end}, owned, {("t", 0): 5})
    assert times.consumer_lag == 45 and not times.lag_growing
    times.consumer_lag_sampled({("t", 0): 60}, owned, {("t", 0): 5})
    assert times.lag_growing  # 15, 35, 45, 55
    times.consumer_lag_sampled({("t", 0): 60}, owned, {("t", 0): 60})
    assert times.consumer_lag == 0 and not times.lag_growing
    times.consumer_lag_sampled({("t", 0): 90}, [], {})
    assert times.consumer_lag == 0, "a member that owns nothing measures nothing"


def test_status_json_and_metrics_show_freshness(tmp_path: Path) -> None:
    write_orders(tmp_path / "in" / "a.csv", range(1, 4))
    write_pipeline(tmp_path / "pipelines", "orders", tmp_path, tmp_path / "in")
    with ServedWorker(tmp_path / "pipelines") as worker:
        wait_until(lambda: sink_ids(tmp_path / "out" / "orders") == [1, 2, 3], what="delivery")
        freshness = wait_until(
            lambda: (f := worker.status("orders")["freshness"])["consumer_lag"] == 0 and f,
            what="the consumer lag measured and caught up",
        )
        assert freshness["state"] in ("active", "idle")
        assert freshness["seconds_since_record"] >= 0
        assert freshness["seconds_since_heartbeat"] < 5
        # A CSV file has no event times: no end-to-end lag to speak of.
        assert freshness["event_to_ack_seconds"] is None
        assert freshness["event_to_flush_seconds"] is None
        assert set(freshness["tasks"]) == {"source-0", "sink-0"}

        text = worker.text("/metrics")
        for line in (
            'omconnect_pipeline_consumer_lag_messages{pipeline="orders"} 0.0',
            'omconnect_task_seconds_since_last_heartbeat{pipeline="orders",task="source-0"}',
            'omconnect_pipeline_seconds_since_last_record{pipeline="orders"}',
            f'omconnect_pipeline_freshness{{pipeline="orders",state="{freshness["state"]}"}} 1.0',
            'omconnect_pipeline_freshness{pipeline="orders",state="stalled"} 0.0',
        ):
            assert line in text, line

        worker.json("PUT", "/pipelines/orders/pause", expect=202)
        wait_until(lambda: worker.status("orders")["state"] == "PAUSED", what="PAUSED")
        paused = worker.status("orders")["freshness"]
        assert paused["state"] is None, "a paused pipeline is neither idle nor stalled"
        assert paused["seconds_since_record"] is not None, "the last run's times remain"
        assert "omconnect_pipeline_freshness{" not in worker.text("/metrics")

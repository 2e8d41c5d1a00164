"""The schedule loop's decisions: time zones and daylight saving, catchup after downtime,
jitter and runs that never overlap.

The loop is the production one; the clock is virtual (a wait jumps to the moment waited for)
and a run only notes when it started, so a day of ticks takes milliseconds.
"""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from omconnect.runtime.config.cron import parse_cron
from omconnect.runtime.config.loader import LoadedPipeline, load_pipeline
from omconnect.runtime.config.problems import PipelineConfigError
from omconnect.runtime.serve.managed_pipeline import ManagedPipeline
from omconnect.runtime.serve.pipeline_state import RunRecord, RunResult
from omconnect.runtime.serve.schedule_loop import MAX_CATCHUP_RUNS, run_on_schedule
from omconnect.runtime.serve.schedule_state import ScheduleProgress
from omconnect.runtime.state import DirectoryScheduleProgress
from tests.support.served_worker import write_pipeline

BERLIN_SPRING_FORWARD = datetime(2024, 3, 31, tzinfo=UTC)  # 02:00 CET -> 03:00 CEST


class VirtualClock:
    """Schedule time that jumps to whatever moment is waited for."""

    def __init__(self, start: datetime) -> None:
        self.moment = start

    def now(self) -> datetime:
        return self.moment

    async def sleep_until(self, moment: datetime, wake: asyncio.Event) -> bool:
        await asyncio.sleep(0)
        if wake.is_set():
            return False
        self.moment = max(self.moment, moment)
        return True


class NotedRuns(ManagedPipeline):
    """Runs that note their start (and the tick recorded for them) instead of running;
    each lasts ``lasts`` of schedule time; the pipeline shuts down after ``runs`` runs."""

    def __init__(
        self,
        loaded: LoadedPipeline,
        clock: VirtualClock,
        progress: ScheduleProgress,
        runs: int,
        lasts: timedelta = timedelta(0),
    ) -> None:
        super().__init__(loaded)
        self.clock, self.progress, self.wanted, self.lasts = clock, progress, runs, lasts
        self.started: list[datetime] = []
        self.ended: list[datetime] = []
        self.ticks: list[datetime | None] = []

    async def run(self, once: bool) -> RunRecord:
        self.started.append(self.clock.now())
        self.ticks.append(self.progress.caught_up_to())
        self.clock.moment += self.lasts
        self.ended.append(self.clock.now())
        if len(self.started) == self.wanted:
            self.shut_down()
        return RunRecord(started=self.started[-1], ended=self.ended[-1], result=RunResult.SUCCEEDED)


def scheduled(tmp_path: Path, schedule: str) -> LoadedPipeline:
    path = write_pipeline(
        tmp_path / "pipelines", "batch", tmp_path, tmp_path / "in", extra=f"schedule: {schedule}\n"
    )
    return load_pipeline(path)


def kept_progress(tmp_path: Path) -> ScheduleProgress:
    """The progress of the pipeline ``batch`` as a directory state keeps it (what a restarted
    serve reads)."""
    return ScheduleProgress(DirectoryScheduleProgress(tmp_path / "schedules"), "batch")


def serve_schedule(
    loaded: LoadedPipeline,
    start: datetime,
    runs: int,
    progress: ScheduleProgress | None = None,
    lasts: timedelta = timedelta(0),
    seed: int = 1,
) -> NotedRuns:
    clock = VirtualClock(start)
    progress = progress if progress is not None else ScheduleProgress(None)
    pipeline = NotedRuns(loaded, clock, progress, runs, lasts)
    work = run_on_schedule(pipeline, clock, progress, random.Random(seed))
    asyncio.run(asyncio.wait_for(work, timeout=20))
    return pipeline


def test_a_time_zone_and_its_spring_forward_day(tmp_path: Path) -> None:
    loaded = scheduled(tmp_path, '{cron: "30 2 * * *", timezone: Europe/Berlin}')
    assert loaded.config.schedule is not None
    assert loaded.config.schedule.describe() == "30 2 * * * (Europe/Berlin)"

    ran = serve_schedule(loaded, BERLIN_SPRING_FORWARD - timedelta(days=2), runs=4)

    assert ran.started == [
        datetime(2024, 3, 29, 1, 30, tzinfo=UTC),  # 02:30 CET
        datetime(2024, 3, 30, 1, 30, tzinfo=UTC),
        datetime(2024, 3, 31, 1, 0, tzinfo=UTC),  # 02:30 does not exist: 03:00 CEST, as croniter
        datetime(2024, 4, 1, 0, 30, tzinfo=UTC),  # 02:30 CEST
    ]


def test_ticks_across_the_gap_of_a_spring_forward_night() -> None:
    ticks = parse_cron("*/30 * * * *").latest_ticks(
        datetime(2024, 3, 31, 0, 0, tzinfo=UTC),
        datetime(2024, 3, 31, 2, 0, tzinfo=UTC),
        limit=10,
        zone=ZoneInfo("Europe/Berlin"),
    )
    # 01:30 CET, then 03:00, 03:30, 04:00 CEST: 02:00 and 02:30 do not exist; they fire
    # once, at 03:00, as croniter decides.
    assert ticks == [
        datetime(2024, 3, 31, 0, 30, tzinfo=UTC),
        datetime(2024, 3, 31, 1, 0, tzinfo=UTC),
        datetime(2024, 3, 31, 1, 30, tzinfo=UTC),
        datetime(2024, 3, 31, 2, 0, tzinfo=UTC),
    ]


def test_catchup_false_runs_once_for_the_ticks_missed_while_down(tmp_path: Path) -> None:
    progress = kept_progress(tmp_path)
    progress.advance(datetime(2024, 5, 1, 10, 0, tzinfo=UTC))  # the last tick before downtime
    restarted = kept_progress(tmp_path)  # what a restarted serve reads

    ran = serve_schedule(
        scheduled(tmp_path, '"*/15 * * * *"'),
        datetime(2024, 5, 1, 12, 7, tzinfo=UTC),
        runs=2,
        progress=restarted,
    )

    assert ran.started == [
        datetime(2024, 5, 1, 12, 7, tzinfo=UTC),  # at once, for the 8 ticks 10:15 .. 12:00
        datetime(2024, 5, 1, 12, 15, tzinfo=UTC),  # then on schedule
    ]
    assert ran.ticks[0] == datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    assert ran.skipped_ticks == 7
    last = kept_progress(tmp_path).caught_up_to()
    assert last == datetime(2024, 5, 1, 12, 15, tzinfo=UTC)


def test_catchup_true_runs_every_missed_tick_oldest_first(tmp_path: Path) -> None:
    progress = kept_progress(tmp_path)
    progress.advance(datetime(2024, 5, 1, 10, 0, tzinfo=UTC))

    ran = serve_schedule(
        scheduled(tmp_path, '{cron: "*/15 * * * *", catchup: true}'),
        datetime(2024, 5, 1, 12, 7, tzinfo=UTC),
        runs=9,
        progress=kept_progress(tmp_path),
    )

    missed = [
        datetime(2024, 5, 1, 10, 15, tzinfo=UTC) + timedelta(minutes=15 * i) for i in range(8)
    ]
    assert ran.ticks == [*missed, datetime(2024, 5, 1, 12, 15, tzinfo=UTC)]
    assert ran.started[:8] == [datetime(2024, 5, 1, 12, 7, tzinfo=UTC)] * 8
    assert ran.skipped_ticks == 0


def test_catchup_is_bounded_to_the_latest_ticks(tmp_path: Path) -> None:
    progress = ScheduleProgress(None)
    progress.advance(datetime(2024, 5, 1, tzinfo=UTC))

    ran = serve_schedule(
        scheduled(tmp_path, '{cron: "* * * * *", catchup: true}'),
        datetime(2024, 5, 2, 0, 0, 30, tzinfo=UTC),  # a day of minutely ticks missed
        runs=MAX_CATCHUP_RUNS,
        progress=progress,
    )

    assert ran.skipped_ticks == 24 * 60 - MAX_CATCHUP_RUNS
    assert ran.ticks[0] == datetime(2024, 5, 2, tzinfo=UTC) - timedelta(
        minutes=MAX_CATCHUP_RUNS - 1
    )
    assert ran.ticks[-1] == datetime(2024, 5, 2, tzinfo=UTC)


def test_a_first_start_waits_for_the_next_tick(tmp_path: Path) -> None:
    ran = serve_schedule(
        scheduled(tmp_path, '"0 * * * *"'), datetime(2024, 5, 1, 10, 59, tzinfo=UTC), runs=1
    )
    assert ran.started == [datetime(2024, 5, 1, 11, 0, tzinfo=UTC)]


def test_jitter_delays_each_run_by_up_to_its_bound(tmp_path: Path) -> None:
    ran = serve_schedule(
        scheduled(tmp_path, '{cron: "* * * * *", jitter: 30s}'),
        datetime(2024, 5, 1, 10, 0, 1, tzinfo=UTC),
        runs=40,
    )

    delays = [
        (start - tick).total_seconds()
        for start, tick in zip(ran.started, ran.ticks, strict=True)
        if tick is not None
    ]
    assert len(delays) == 40
    assert all(0 <= delay <= 30 for delay in delays), delays
    assert len({round(delay, 3) for delay in delays}) > 30  # drawn per run, not once
    assert max(delays) > 15  # spread over the bound, not bunched at the tick


def test_a_tick_during_a_run_waits_for_it_and_runs_once_after(tmp_path: Path) -> None:
    # Every run lasts 40 minutes of a 15-minute schedule: two or three ticks pass during it.
    ran = serve_schedule(
        scheduled(tmp_path, '"*/15 * * * *"'),
        datetime(2024, 5, 1, 9, 59, tzinfo=UTC),
        runs=4,
        lasts=timedelta(minutes=40),
    )

    for ended, next_started in zip(ran.ended, ran.started[1:], strict=False):
        assert next_started >= ended, "two runs of one pipeline overlapped"
    # Queued once (Airflow's max_active_runs=1 with catchup=False): the next run starts as
    # the previous one ends, for the latest tick it outlasted.
    assert ran.started[1:] == ran.ended[:-1]
    assert ran.ticks[1] == datetime(2024, 5, 1, 10, 30, tzinfo=UTC)
    assert ran.ticks[2] == datetime(2024, 5, 1, 11, 15, tzinfo=UTC)
    assert ran.skipped_ticks == 1 + 2 + 2  # 10:15; 10:45, 11:00; 11:30, 11:45


@pytest.mark.parametrize(
    ("schedule", "problem"),
    [
        ('"61 * * * *"', 'schedule: invalid cron expression "61 * * * *"'),
        ('{cron: "@daily", timezone: Mars/Olympus}', 'schedule.timezone: unknown time zone "Mars'),
        ('{cron: "@daily", jitter: soon}', 'schedule.jitter: invalid duration "soon"'),
        ('{cron: "@daily", catchup: sometimes}', "schedule.catchup: "),
        ("{timezone: UTC}", "schedule.cron: "),
    ],
)
def test_invalid_schedules_are_located(tmp_path: Path, schedule: str, problem: str) -> None:
    with pytest.raises(PipelineConfigError) as refused:
        scheduled(tmp_path, schedule)
    assert f"batch.yaml:16: {problem}" in str(refused.value)

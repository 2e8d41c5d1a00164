"""The restart backoff and the schedule clocks."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import pytest

from omconnect.runtime.config.cron import parse_cron
from omconnect.runtime.serve import RestartBackoff, ScaledClock, SystemClock


def test_backoff_doubles_from_one_second_to_a_minute() -> None:
    backoff = RestartBackoff()
    delays = [backoff.after_failure(run_seconds=0.1) for _ in range(9)]
    assert delays == [1, 2, 4, 8, 16, 32, 60, 60, 60]


def test_backoff_starts_over_after_a_healthy_run_or_a_reset() -> None:
    backoff = RestartBackoff()
    for _ in range(4):
        backoff.after_failure(run_seconds=1)
    assert backoff.after_failure(run_seconds=60) == 1  # it ran for a minute before failing
    assert backoff.after_failure(run_seconds=1) == 2
    backoff.reset()
    assert backoff.after_failure(run_seconds=1) == 1
    with pytest.raises(ValueError):
        RestartBackoff(initial=0)


def test_system_clock_is_utc_now() -> None:
    now = SystemClock().now()
    assert now.tzinfo is not None and now.utcoffset() == timedelta(0)
    assert abs((now - datetime.now(UTC)).total_seconds()) < 1


def test_scaled_clock_runs_the_calendar_faster_and_wakes_on_time() -> None:
    start = datetime(2030, 1, 1, 12, 0, 30, tzinfo=UTC)
    clock = ScaledClock(speed=120, start=start)
    tick = parse_cron("* * * * *").next_after(clock.now())
    assert tick == datetime(2030, 1, 1, 12, 1, tzinfo=UTC)

    async def wait() -> tuple[bool, float]:
        began = time.monotonic()
        assert tick is not None
        reached = await clock.sleep_until(tick, asyncio.Event())
        return reached, time.monotonic() - began

    reached, seconds = asyncio.run(wait())
    assert reached and clock.now() >= tick
    assert 0.2 < seconds < 1.0  # 30 schedule seconds at 120x are a quarter of a real second


def test_a_set_wake_event_ends_the_sleep_early() -> None:
    clock = ScaledClock(speed=1)

    async def wait() -> bool:
        wake = asyncio.Event()
        asyncio.get_running_loop().call_later(0.05, wake.set)
        return await clock.sleep_until(clock.now() + timedelta(hours=1), wake)

    assert asyncio.run(asyncio.wait_for(wait(), 2)) is False

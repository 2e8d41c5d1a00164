"""A schedule's catch-up progress lives in the pipeline's state, for every backend: serve's
schedule loop stopped in the middle of catching up and started again (a fresh read of the
state, as a restarted serve does) runs each missed tick once, none twice and none skipped.

The loop is the production one over a virtual clock (``tests.serve.test_schedules``); the
state is a real directory or a real PostgreSQL schema.
"""

from __future__ import annotations

import logging
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from omconnect.runtime.config.loader import LoadedPipeline, load_pipeline
from omconnect.runtime.serve.schedule_state import ScheduleProgress
from omconnect.runtime.state import open_state
from omconnect.runtime.state.postgres import PostgresState
from tests.serve.test_schedules import serve_schedule
from tests.support.sql_databases import POSTGRES_URL

QUARTER = timedelta(minutes=15)


def catching_up(tmp_path: Path, state: str) -> LoadedPipeline:
    """The pipeline ``batch``, every quarter hour with ``catchup: true``, kept in ``state``."""
    folder = tmp_path / "pipelines"
    folder.mkdir(exist_ok=True)
    path = folder / "batch.yaml"
    path.write_text(
        f"""\
name: batch
state: "{state}"
source: {{connector: csv, path: "{tmp_path / "in"}/"}}
topic: batch
schedule: {{cron: "*/15 * * * *", catchup: true}}
"""
    )
    return load_pipeline(path)


def test_a_restart_in_the_middle_of_catching_up_neither_reruns_nor_skips_a_tick(
    tmp_path: Path, state: str
) -> None:
    loaded = catching_up(tmp_path, state)
    start = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)

    # First served at 10:00: the ticks of 10:15 and 10:30 run, then serve stops.
    first = serve_schedule(loaded, start, runs=2, progress=ScheduleProgress.of(loaded))
    # Down until 12:07 (ticks 10:45 .. 12:00 missed); stopped again after three catch-up runs.
    second = serve_schedule(
        loaded, datetime(2024, 5, 1, 12, 7, tzinfo=UTC), 3, ScheduleProgress.of(loaded)
    )
    # Started again at 12:10: the rest of the missed ticks, then the next one on time.
    third = serve_schedule(
        loaded, datetime(2024, 5, 1, 12, 10, tzinfo=UTC), 4, ScheduleProgress.of(loaded)
    )

    every_tick = [start + QUARTER * i for i in range(1, 10)]  # 10:15 .. 12:15
    assert [*first.ticks, *second.ticks, *third.ticks] == every_tick
    assert second.started == [datetime(2024, 5, 1, 12, 7, tzinfo=UTC)] * 3
    assert third.started[-1] == datetime(2024, 5, 1, 12, 15, tzinfo=UTC)
    assert first.skipped_ticks == second.skipped_ticks == third.skipped_ticks == 0

    store = open_state(state).open_schedule_progress()
    try:
        assert store.get("batch") == every_tick[-1]
        assert store.get("other") is None
    finally:
        store.close()


def test_postgres_progress_never_moves_back_and_is_per_pipeline(postgres_state: str) -> None:
    store = open_state(postgres_state).open_schedule_progress()
    later = datetime(2024, 5, 1, 11, 0, tzinfo=UTC)
    try:
        store.put("batch", later)
        store.put("batch", later - QUARTER)  # a slower worker recording an older tick
        store.put("nightly", datetime(2024, 5, 1, 3, 0, 0, 123456, tzinfo=UTC))
        with pytest.raises(ValueError, match="timezone-aware"):
            store.put("batch", datetime(2024, 5, 1, 12, 0))
    finally:
        store.close()

    reopened = open_state(postgres_state).open_schedule_progress()
    try:
        assert reopened.get("batch") == later
        assert reopened.get("nightly") == datetime(2024, 5, 1, 3, 0, 0, 123456, tzinfo=UTC)
    finally:
        reopened.close()


def test_a_state_of_layout_1_gets_the_progress_table(postgres_state: str) -> None:
    backend = open_state(postgres_state)
    assert isinstance(backend, PostgresState)
    backend.open_offset_store().close()
    schema = backend.location.schema
    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        admin.execute(f'DROP TABLE "{schema}".schedule_progress')
        admin.execute(f'UPDATE "{schema}".state_version SET version = 1')

    store = backend.open_schedule_progress()
    try:
        store.put("batch", datetime(2024, 5, 1, 10, 0, tzinfo=UTC))
        assert store.get("batch") == datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
    finally:
        store.close()
    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        version = admin.execute(f'SELECT version FROM "{schema}".state_version').fetchall()
    assert version == [(2,)]


def test_an_unreachable_postgres_costs_the_record_not_the_schedule(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    loaded = catching_up(tmp_path, f"postgresql://nobody@127.0.0.1:{port}/state")
    caplog.set_level(logging.WARNING, "omconnect.serve")

    ran = serve_schedule(
        loaded, datetime(2024, 5, 1, 10, 7, tzinfo=UTC), 2, ScheduleProgress.of(loaded)
    )

    assert ran.ticks == [
        datetime(2024, 5, 1, 10, 15, tzinfo=UTC),
        datetime(2024, 5, 1, 10, 30, tzinfo=UTC),
    ]
    assert "cannot read the schedule's progress" in caplog.text
    assert f"127.0.0.1:{port}" in caplog.text

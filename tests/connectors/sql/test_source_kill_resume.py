"""A real ``omconnect run`` SIGKILLed in the middle of a PostgreSQL snapshot resumes at the
chunk where it stopped: every row reaches the topic, and the rows published twice are at
most the chunks in flight when it was killed (not the table from zero)."""

from __future__ import annotations

import signal
import textwrap
import time
from pathlib import Path

import pyarrow.compute as pc
import pytest

from tests.support.failing_pipeline import sink_ids, topic_messages
from tests.support.omconnect_process import omconnect, spawn_omconnect
from tests.support.sql_databases import SqlDatabase

ROWS = 600_000
CHUNK = 1_000
# One batch of one chunk in flight, committed at every acknowledgement: what a kill can repeat
# is the chunk in flight and the one acknowledged but not committed yet. (Batches are held to a
# chunk: by default a batch gathers chunks for up to its linger, 10 or more of them here, and a
# kill in the window between an ack and its commit repeated 10,000 rows in CI.)
DUPLICATES_ALLOWED = 2 * CHUNK


def pipeline_text(database: SqlDatabase, out: Path) -> str:
    return textwrap.dedent(
        f"""\
        name: big-snapshot
        source:
          connector: sql
          url: {database.url}
          tables: ["{database.table("big")}"]
          chunk_size: {CHUNK}
        topic: big
        batching: {{max_rows: {CHUNK}}}
        max_in_flight_bytes: 1
        commit_interval: 0.05
        sink:
          connector: parquet
          path: {out}
        """
    )


@pytest.mark.slow
def test_snapshot_killed_mid_way_resumes_at_its_chunk(
    postgres_database: SqlDatabase, tmp_path: Path
) -> None:
    schema = postgres_database.schema
    postgres_database.execute(
        f'CREATE TABLE "{schema}".big (id bigint PRIMARY KEY, name text, amount numeric(12,2), '
        "at timestamptz)",
        f"INSERT INTO \"{schema}\".big SELECT i, 'name-' || i, i / 100.0, "
        f"timestamptz '2024-01-01' + i * interval '1 second' FROM generate_series(0, {ROWS - 1}) i",
    )
    out = tmp_path / "out"
    (tmp_path / "p.yaml").write_text(pipeline_text(postgres_database, out))
    topic = f"big.{schema}.big"

    run = spawn_omconnect("run", "p.yaml", "--once", cwd=tmp_path)
    broker = tmp_path / ".omconnect" / "broker.sqlite"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and run.poll() is None:
        if broker.exists() and topic_messages(tmp_path, topic) > 0:
            break  # the snapshot is under way
        time.sleep(0.05)
    assert run.poll() is None, "the run ended before it could be killed: " + run.stderr.read()
    run.send_signal(signal.SIGKILL)
    run.wait(timeout=30)
    killed_at = topic_messages(tmp_path, topic)
    assert 0 < killed_at < ROWS, killed_at

    again = omconnect("run", "p.yaml", "--once", cwd=tmp_path, timeout=300)
    assert again.returncode == 0, again.stderr

    total = topic_messages(tmp_path, topic)
    assert total - ROWS <= DUPLICATES_ALLOWED, (
        f"{total - ROWS} rows published twice after a kill at {killed_at}: the snapshot did not "
        "resume at its chunk"
    )
    ids = sink_ids(out)
    distinct = pc.unique(ids)
    assert len(distinct) == ROWS, f"{ROWS - len(distinct)} rows missing"
    assert pc.min(distinct).as_py() == 0 and pc.max(distinct).as_py() == ROWS - 1

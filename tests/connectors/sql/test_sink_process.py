"""The sql sink in real ``omconnect run`` processes: SIGKILLed again and again while it
writes a topic of the embedded broker into PostgreSQL, it ends with every row exactly once
(appending) and the latest row of every key (upserting); and ``pipelines/topic-to-postgres.yaml``
runs against the machine's PostgreSQL after setting its one variable."""

from __future__ import annotations

import random
import shutil
import signal
import time
import urllib.parse
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.dataset as ds
import pytest
import sqlalchemy as sa

from tests.support.omconnect_process import REPO, omconnect, spawn_omconnect
from tests.support.sql_databases import SqlDatabase

ROWS = 200_000
KEYS = 20_000

PUBLISH = """
name: publish-events
source: {connector: csv, path: data/*.csv, key: [k], batch_size: 5000}
topic: events
format: avro
"""

# Flushes of 10,000 rows: a run spans about twenty of them, so a kill a moment after the first
# lands mid-write however fast the machine is.
SINK = """
name: events-to-sql
topic: events
format: avro
sink: {{connector: sql, url: "{url}", table: "{table}", mode: {mode}, create: true,
       batch_size: 10000}}
batching: {{max_rows: 5000}}
commit_interval: 0.05
"""


POSITIONS_TABLE = "omconnect_sink_positions"


def stored_progress(database: SqlDatabase, table: str) -> int:
    """The sum of the next offsets the sink stored for ``table`` in its positions table (which
    is in the target table's schema): how many records its committed flushes consumed. Unlike
    the row count it grows with every flush in upsert mode too, where the table holds every
    key after the first one."""
    with database.engine.connect() as connection:
        if not sa.inspect(connection).has_table(POSITIONS_TABLE, schema=database.schema):
            return 0
        stored = connection.execute(
            sa.text(
                f'SELECT coalesce(sum(next_offset), 0) FROM "{database.schema}".{POSITIONS_TABLE}'
                " WHERE target_table = :target"
            ),
            {"target": f"{database.schema}.{table}"},
        ).scalar()
        return int(stored or 0)


def kill_while_writing(
    pipeline: str, cwd: Path, database: SqlDatabase, table: str, seed: int, attempts: int = 4
) -> list[int]:
    """Run ``pipeline --once`` up to ``attempts`` times, each SIGKILLed once its committed
    flushes passed a random share (10-50 %) of what was left, plus a random moment (so the
    kill lands in a flush as well as between two, however fast the machine writes); returns
    the stored progress (``stored_progress``) seen after each kill."""
    rng = random.Random(seed)
    progress = []
    for _ in range(attempts):
        before = stored_progress(database, table)
        target = before + rng.uniform(0.1, 0.5) * (ROWS - before)
        process = spawn_omconnect("run", pipeline, "--once", cwd=cwd)
        deadline = time.monotonic() + 60
        while process.poll() is None and time.monotonic() < deadline:
            if stored_progress(database, table) >= target:
                break
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.05))
        if process.poll() is not None:
            break
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        progress.append(stored_progress(database, table))
    return progress


def write_events(data: Path) -> tuple[np.ndarray, np.ndarray]:
    """``data/events.csv``: ROWS rows of (k, seq, payload), keys repeating; returns seq, k."""
    seq = np.arange(ROWS, dtype=np.int64)
    keys = (seq * 7919) % KEYS
    data.mkdir()
    pacsv.write_csv(
        pa.table({"k": keys, "seq": seq, "payload": pa.array(np.char.add("p-", seq.astype(str)))}),
        data / "events.csv",
    )
    return seq, keys


def table_rows(database: SqlDatabase, table: str) -> tuple[np.ndarray, np.ndarray]:
    """k and seq of every row of ``table`` (whose payload must match its seq)."""
    with database.engine.connect() as connection:
        got = connection.execute(
            sa.text(f'SELECT k, seq, payload FROM "{database.schema}"."{table}"')
        ).all()
    got_k = np.array([r[0] for r in got], dtype=np.int64)
    got_seq = np.array([r[1] for r in got], dtype=np.int64)
    assert all(r[2] == f"p-{r[1]}" for r in got)
    return got_k, got_seq


def assert_latest_row_per_key(got_k: np.ndarray, got_seq: np.ndarray, keys: np.ndarray) -> None:
    latest = np.zeros(KEYS, dtype=np.int64)
    latest[keys] = np.arange(ROWS, dtype=np.int64)  # in order, so the last write of a key stays
    assert got_k.size == KEYS, f"{got_k.size} rows, expected {KEYS}"
    assert np.unique(got_k).size == KEYS
    assert int(got_k.sum()) == int(np.arange(KEYS).sum()), "the key checksum differs"
    assert np.array_equal(got_seq, latest[got_k]), "a key does not hold its latest row"


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["append", "upsert"])
def test_sigkilled_runs_leave_every_row_exactly_once(
    mode: str, postgres_database: SqlDatabase, tmp_path: Path
) -> None:
    database = postgres_database
    seq, keys = write_events(tmp_path / "data")
    (tmp_path / "publish.yaml").write_text(PUBLISH)
    published = omconnect("run", "publish.yaml", "--once", cwd=tmp_path, timeout=300)
    assert published.returncode == 0, published.stderr
    table = f"events_{mode}"
    (tmp_path / "sink.yaml").write_text(
        SINK.format(url=database.url, table=f"{database.schema}.{table}", mode=mode)
    )

    progress = kill_while_writing("sink.yaml", tmp_path, database, table, seed=8)
    finished = omconnect("run", "sink.yaml", "--once", cwd=tmp_path, timeout=300)
    assert finished.returncode == 0, finished.stderr
    expected_rows = ROWS if mode == "append" else KEYS
    assert len(progress) >= 2, f"the sink finished before it could be killed twice: {progress}"
    assert any(0 < p < ROWS for p in progress), f"no kill hit mid-write: {progress}"
    assert stored_progress(database, table) == ROWS, "the positions do not cover every record"

    got_k, got_seq = table_rows(database, table)
    assert got_seq.size == expected_rows, f"{got_seq.size} rows, expected {expected_rows}"
    if mode == "append":
        assert np.unique(got_seq).size == ROWS, "rows were duplicated"
        assert int(got_seq.sum()) == int(seq.sum()), "the seq checksum differs"
        assert np.array_equal(np.sort(got_seq), seq)
    else:
        assert_latest_row_per_key(got_k, got_seq, keys)


# The same rows from the file into the table with no topic between (broker: none).
LAND = """
name: events-to-sql
broker: none
source: {{connector: csv, path: data/*.csv, key: [k], batch_size: 5000}}
sink: {{connector: sql, url: "{url}", table: "{table}", mode: {mode}, create: true,
       batch_size: 10000}}
batching: {{max_rows: 5000}}
max_in_flight_bytes: {in_flight}
commit_interval: 0.05
"""
LAND_IN_FLIGHT = 1 << 20


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["append", "upsert"])
def test_sigkilled_runs_without_a_broker_lose_no_row(
    mode: str, postgres_database: SqlDatabase, tmp_path: Path
) -> None:
    """Without a topic the sink's positions number rows the source reads again after a crash
    afresh: nothing is lost, an upserted key holds its latest row, and appended rows come
    twice only for what the sink wrote before the source stored its position."""
    database = postgres_database
    seq, keys = write_events(tmp_path / "data")
    table = f"landed_{mode}"
    (tmp_path / "land.yaml").write_text(
        LAND.format(
            url=database.url,
            table=f"{database.schema}.{table}",
            mode=mode,
            in_flight=LAND_IN_FLIGHT,
        )
    )

    progress = kill_while_writing("land.yaml", tmp_path, database, table, seed=9)
    finished = omconnect("run", "land.yaml", "--once", cwd=tmp_path, timeout=300)
    assert finished.returncode == 0, finished.stderr
    assert len(progress) >= 2, f"the pipeline finished before it could be killed twice: {progress}"
    assert any(0 < p < ROWS for p in progress), f"no kill hit mid-write: {progress}"

    got_k, got_seq = table_rows(database, table)
    if mode == "append":
        missing = np.setdiff1d(seq, got_seq)
        assert missing.size == 0, f"{missing.size} rows lost, e.g. {missing[:5]}"
        # Per kill, at most what the sink had committed and the source not yet stored: the
        # sends in flight (the budget counts their Arrow bytes) and the batch being gathered.
        row_bytes = pacsv.read_csv(tmp_path / "data" / "events.csv").nbytes / ROWS
        per_kill = int(LAND_IN_FLIGHT / row_bytes) + 5000
        assert got_seq.size - ROWS <= len(progress) * per_kill, (got_seq.size - ROWS, progress)
    else:
        assert_latest_row_per_key(got_k, got_seq, keys)


def test_the_topic_to_postgres_pipeline_upserts_the_quickstart_orders(
    postgres_database: SqlDatabase, tmp_path: Path
) -> None:
    shutil.copytree(REPO / "pipelines", tmp_path / "pipelines")
    published = omconnect("run", "pipelines/quickstart.yaml", "--once", cwd=tmp_path)
    assert published.returncode == 0, published.stderr
    options = urllib.parse.quote(f"-csearch_path={postgres_database.schema}")
    env = {"POSTGRES_URL": f"{postgres_database.url}?options={options}"}
    for _ in range(2):  # a second run finds nothing new and changes nothing
        ran = omconnect("run", "pipelines/topic-to-postgres.yaml", "--once", cwd=tmp_path, env=env)
        assert ran.returncode == 0, ran.stderr
    parquet = ds.dataset(tmp_path / "out/orders", format="parquet").to_table()
    with postgres_database.engine.connect() as connection:
        schema = postgres_database.schema
        query = f'SELECT order_id, amount FROM "{schema}".orders ORDER BY order_id'
        rows = connection.execute(sa.text(query)).all()
    expected = parquet.sort_by("order_id")
    assert [r[0] for r in rows] == expected.column("order_id").to_pylist()
    assert [r[1] for r in rows] == expected.column("amount").to_pylist()

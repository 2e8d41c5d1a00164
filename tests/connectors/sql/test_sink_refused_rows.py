"""Rows the database refuses (a CHECK constraint here), upserted by the sql sink in real
``omconnect run`` processes on every dialect, from a topic and without a broker: with
``errors.tolerance: all`` each goes to the dead letter topic with the database's words, every
other row is written and the positions cover them all (a second run has nothing to do); with
``none`` the run stops with one line naming the table and the database's words, and nothing
of the refused row's flush is stored."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.omconnect_process import omconnect
from tests.support.sql_databases import SqlDatabase

from .sink_fixtures import TABLE, quoted_table
from .test_sink_null_keys import (
    PUBLISH,
    ROWS,
    SINK,
    TOPIC,
    dead_letters,
    direct_pipeline,
    sink_pipeline,
    stopped_run,
    stored_positions,
    table_rows,
)

BAD = (10, 250, 599)  # rows named "bad", which the table's CHECK refuses


def make_table(database: SqlDatabase) -> None:
    database.execute(
        f"CREATE TABLE {quoted_table(database)} (shop VARCHAR(10) NOT NULL, id BIGINT NOT NULL, "
        "name VARCHAR(20) NOT NULL CHECK (name <> 'bad'), PRIMARY KEY (shop, id))"
    )


def write_orders(directory: Path) -> None:
    lines = ["shop,id,name"] + [
        f"s{i % 3},{i},{'bad' if i in BAD else f'n{i}'}" for i in range(ROWS)
    ]
    (directory / "in").mkdir(exist_ok=True)
    (directory / "in" / "orders.csv").write_text("\n".join(lines) + "\n")


def prepare(directory: Path, database: SqlDatabase, broker: str, tolerance: str) -> None:
    """The table, the orders, and ``sink.yaml``: through the topic (published first) or
    without a broker."""
    make_table(database)
    write_orders(directory)
    if broker == "none":
        (directory / "sink.yaml").write_text(direct_pipeline(database, tolerance))
        return
    (directory / "publish.yaml").write_text(PUBLISH)
    published = omconnect("run", "publish.yaml", "--once", cwd=directory)
    assert published.returncode == 0, published.stderr
    (directory / "sink.yaml").write_text(sink_pipeline(database, tolerance))


GOOD = {(f"s{i % 3}", i): f"n{i}" for i in range(ROWS) if i not in BAD}


@pytest.mark.parametrize("broker", ["topic", "none"])
def test_tolerance_all_dead_letters_refused_rows_and_writes_the_rest_once(
    sql_database: SqlDatabase, tmp_path: Path, broker: str
) -> None:
    prepare(tmp_path, sql_database, broker, "all")
    for run in range(2):  # the second finds nothing to do
        ran = omconnect("run", "sink.yaml", "--once", cwd=tmp_path)
        assert ran.returncode == 0, ran.stderr
        assert "Traceback" not in ran.stderr
        written, dead = (ROWS - len(BAD), len(BAD)) if run == 0 else (0, 0)
        assert f"written={written} dead_lettered={dead} " in ran.stderr, ran.stderr
        assert table_rows(sql_database) == GOOD
        dead = dead_letters(tmp_path)
        assert sorted(item["value"]["id"] for item in dead) == list(BAD), "each once"
        for item in dead:
            headers = item["headers"]
            reason = headers["omconnect.error.reason"]
            assert reason.startswith(f"table {sql_database.table(TABLE)}: the database refused")
            assert "constraint" in reason.lower() and "\n" not in reason
            assert headers["omconnect.error.stage"] == "sink"
            assert headers["omconnect.error.pipeline"] == SINK
            where = json.loads(headers["omconnect.error.position"])["position"]
            assert where["partition"] == {"topic": TOPIC, "partition": 0}
        assert stored_positions(sql_database) == [(SINK, TOPIC, 0, ROWS)]


@pytest.mark.parametrize("broker", ["topic", "none"])
def test_tolerance_none_stops_at_a_refused_row_in_one_line(
    sql_database: SqlDatabase, tmp_path: Path, broker: str
) -> None:
    prepare(tmp_path, sql_database, broker, "none")
    error = stopped_run(tmp_path)
    assert f"table {sql_database.table(TABLE)}: the database refused the row" in error
    assert "constraint" in error.lower()
    # Flushes of 100 rows: those before the refused row's flush are stored, nothing after.
    written = table_rows(sql_database)
    assert written == {(f"s{i % 3}", i): f"n{i}" for i in range(len(written))}
    assert len(written) <= BAD[0]
    stored = stored_positions(sql_database)
    assert all(offset <= BAD[0] for *_where, offset in stored), stored

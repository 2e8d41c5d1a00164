"""Values at the edges of what a database keeps, read by the sql source from the real servers.

- MariaDB's zero date (``0000-00-00``, which it keeps when the session's ``sql_mode`` lacks
  ``NO_ZERO_DATE``) is read as null in ``DATE``, ``DATETIME`` and ``TIMESTAMP`` columns, in
  ``NOT NULL`` ones too, by snapshots, queries (chunked or streamed) and incremental reads; a
  value that is no calendar date (a zero month, the 31st of February) is a bad row.
- An SQLite column holding values of several storage classes: every float keeps all its
  digits, integers and decimals stay exact, and a value of the wrong class (text in a ``REAL``
  column, a blob in a ``NUMERIC`` one, a fraction in an ``INTEGER`` one) is a bad row,
  wherever it comes in the result.

With ``errors.tolerance: all`` a bad row goes to the dead letter topic naming its table, key
and column, and every other row flows; with ``none`` the run stops with one line naming the
pipeline, the table and the column. The pipeline tests run the real ``omconnect`` command on
the embedded broker; the others drive the task with ``SourceDriver``."""

from __future__ import annotations

import json
import math
import sqlite3
import struct
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from omconnect.runtime.testing import MemoryOffsetReader, SourceDriver
from tests.connectors.sql import test_source_bad_values as bad_values
from tests.connectors.sql.test_source_bad_values import dead_letters, pipeline, run, topic_ids
from tests.support.omconnect_process import tail_topic
from tests.support.sql_databases import SqlDatabase

mariadb_database = bad_values.mariadb_database
sqlite_database = bad_values.sqlite_database


def read_rows(
    database: SqlDatabase, offsets: MemoryOffsetReader | None = None, **options: Any
) -> tuple[list[dict[str, Any]], list[tuple[Any, ...]]]:
    """One run of the source with ``options``, positions committed: every row emitted, and
    each report as (place, payload, reason)."""
    source = SourceDriver("sql", {"url": database.url, **options}, offsets)
    rows: list[dict[str, Any]] = []
    for batch in source.read_to_end():
        rows.extend(batch.values.to_pylist())
        source.commit(batch.positions)
    source.stop()
    reports = [(r.where, json.loads(r.payload), str(r.error)) for r in source.errors.raw_reports]
    return rows, reports


# ---------------------------------------------------------------------------------------
# MariaDB zero dates
# ---------------------------------------------------------------------------------------

ZERO_EVERY = 3  # ids divisible by it hold the zero date
NOT_A_DATE = {"d": "2024-00-10", "dt": "2024-02-31 10:00:00"}  # kept by ALLOW_INVALID_DATES


def day_of(i: int) -> date:
    return date(2024, 1, 1) + timedelta(days=i)


def legacy_table(database: SqlDatabase, name: str, columns: str, rows: list[list[str]]) -> None:
    """Table ``name`` (``id int PRIMARY KEY, <columns>``, created if missing) with ``rows``
    (id first, then each column's text) inserted by a session whose ``sql_mode`` keeps zero
    dates and days no month has, as a legacy application's would."""
    table = f"`{database.schema}`.{name}"
    values = ", ".join("(" + ", ".join(f"'{v}'" for v in row) + ")" for row in rows)
    database.execute(
        "SET SESSION sql_mode = 'ALLOW_INVALID_DATES', time_zone = '+00:00'",
        f"CREATE TABLE IF NOT EXISTS {table} (id int PRIMARY KEY, {columns})",
        f"INSERT INTO {table} VALUES {values}",
    )


def events_table(database: SqlDatabase, ids: range, bad: dict[int, str] | None = None) -> None:
    """``events (id, d DATE, dt DATETIME(6), ts TIMESTAMP(6))``: for an id divisible by
    ``ZERO_EVERY`` the zero date everywhere (``dt``'s with a time of day), for the others the
    day ``id`` of 2024 and its noon plus ``id`` µs; ``bad[id]`` names the column (``d`` or
    ``dt``) that holds ``NOT_A_DATE`` there instead."""
    rows = []
    for i in ids:
        if i % ZERO_EVERY == 0:
            row = [str(i), "0000-00-00", "0000-00-00 10:11:12", "0000-00-00 00:00:00"]
        else:
            moment = f"{day_of(i)} 12:00:00.{i:06d}"
            row = [str(i), str(day_of(i)), moment, moment]
        column = (bad or {}).get(i)
        if column is not None:
            row[["d", "dt"].index(column) + 1] = NOT_A_DATE[column]
        rows.append(row)
    columns = "d date NULL, dt datetime(6) NULL, ts timestamp(6) NULL"
    legacy_table(database, "events", columns, rows)


def expected_event(i: int) -> dict[str, Any]:
    """Row ``i`` of ``events_table`` as the source emits it."""
    if i % ZERO_EVERY == 0:
        return {"id": i, "d": None, "dt": None, "ts": None}
    day = day_of(i)
    moment = datetime(day.year, day.month, day.day, 12, 0, 0, i)
    return {"id": i, "d": day, "dt": moment, "ts": moment.replace(tzinfo=UTC)}


def dues_table(database: SqlDatabase, ids: range) -> None:
    """``dues (id, due DATE NOT NULL)``: the zero date for ids divisible by ``ZERO_EVERY``,
    else the day ``id`` of 2024."""
    rows = [[str(i), "0000-00-00" if i % ZERO_EVERY == 0 else str(day_of(i))] for i in ids]
    legacy_table(database, "dues", "due date NOT NULL", rows)


@pytest.mark.parametrize("source", ["table", "query-chunked", "query-streamed"])
def test_zero_dates_are_read_as_null(mariadb_database: SqlDatabase, source: str) -> None:
    events_table(mariadb_database, range(1, 41))
    query = f"SELECT * FROM {mariadb_database.schema}.events"
    options: dict[str, Any] = {
        "table": {"tables": [mariadb_database.table("events")]},
        "query-chunked": {"query": query, "key": ["id"]},
        "query-streamed": {"query": query},  # no key: read in one statement, streamed
    }[source]
    rows, reports = read_rows(mariadb_database, chunk_size=7, **options)
    assert sorted(rows, key=lambda row: row["id"]) == [expected_event(i) for i in range(1, 41)]
    assert reports == []


def test_the_zero_date_of_a_not_null_column_is_read_as_null(
    mariadb_database: SqlDatabase,
) -> None:
    dues_table(mariadb_database, range(1, 10))
    rows, reports = read_rows(mariadb_database, tables=[mariadb_database.table("dues")])
    assert rows == [
        {"id": i, "due": None if i % ZERO_EVERY == 0 else day_of(i)} for i in range(1, 10)
    ]
    assert reports == []


def test_zero_dates_are_read_as_null_by_incremental_reads(mariadb_database: SqlDatabase) -> None:
    events_table(mariadb_database, range(1, 21))
    offsets = MemoryOffsetReader()
    options = {
        "tables": [mariadb_database.table("events")],
        "mode": "incremental",
        "cursor": ["id"],
        "chunk_size": 7,
    }
    rows, reports = read_rows(mariadb_database, offsets, **options)
    assert rows == [expected_event(i) for i in range(1, 21)]
    assert reports == []

    events_table(mariadb_database, range(21, 31))
    more, more_reports = read_rows(mariadb_database, offsets, **options)
    assert more == [expected_event(i) for i in range(21, 31)]
    assert more_reports == []


def test_a_value_that_is_no_calendar_date_is_a_bad_row(mariadb_database: SqlDatabase) -> None:
    bad = {4: "d", 11: "dt", 12: "d"}  # 12 holds zero dates in its other columns
    events_table(mariadb_database, range(1, 21), bad)
    table = mariadb_database.table("events")
    rows, reports = read_rows(mariadb_database, tables=[table], chunk_size=7)
    assert rows == [expected_event(i) for i in range(1, 21) if i not in bad]
    assert [(where["key"]["id"], where["column"]) for where, _, _ in reports] == list(bad.items())
    for (_, payload, reason), (i, column) in zip(reports, bad.items(), strict=True):
        assert payload[column].startswith(NOT_A_DATE[column])
        assert reason.startswith(f'table {table}, key {{"id": {i}}}, column {column}: ')
        assert "a value does not fit" in reason


def test_pipeline_publishes_zero_dates_as_null_and_dead_letters_a_bad_date(
    mariadb_database: SqlDatabase, tmp_path: Path
) -> None:
    events_table(mariadb_database, range(1, 61), {40: "d"})
    table = mariadb_database.table("events")
    ran = run(tmp_path, pipeline(mariadb_database, "events", "all"))
    assert ran.returncode == 0, ran.stderr
    messages = [m["value"] for m in tail_topic(f"bad.{table}", tmp_path)]
    assert [m["id"] for m in messages] == [i for i in range(1, 61) if i != 40]
    for message in messages:
        zero = message["id"] % ZERO_EVERY == 0
        assert [message[c] is None for c in ("d", "dt", "ts")] == [zero] * 3, message
    (dead,) = dead_letters(tmp_path)
    assert dead["value"]["d"] == NOT_A_DATE["d"]
    assert json.loads(dead["headers"]["omconnect.error.position"]) == {
        "table": table,
        "key": {"id": 40},
        "column": "d",
    }


def test_pipeline_with_tolerance_none_stops_at_a_bad_date_with_one_line(
    mariadb_database: SqlDatabase, tmp_path: Path
) -> None:
    events_table(mariadb_database, range(1, 61), {40: "dt"})
    table = mariadb_database.table("events")
    ran = run(tmp_path, pipeline(mariadb_database, "events", "none"))
    assert ran.returncode == 1
    assert "Traceback" not in ran.stderr and "panicked" not in ran.stderr
    (line,) = [line for line in ran.stderr.splitlines() if "errors.tolerance is none" in line]
    assert "pipeline bad-values failed" in line
    assert f'table {table}, key {{"id": 40}}, column dt: a value does not fit timestamp' in line
    assert topic_ids(tmp_path, f"bad.{table}") == list(range(1, 40))


def test_pipeline_publishes_the_zero_date_of_a_not_null_column_as_null(
    mariadb_database: SqlDatabase, tmp_path: Path
) -> None:
    dues_table(mariadb_database, range(1, 10))
    ran = run(tmp_path, pipeline(mariadb_database, "dues", "all"))
    assert ran.returncode == 0, ran.stderr
    messages = tail_topic(f"bad.{mariadb_database.table('dues')}", tmp_path)
    assert [m["value"]["due"] is None for m in messages] == [
        i % ZERO_EVERY == 0 for i in range(1, 10)
    ]
    assert dead_letters(tmp_path) == []


# ---------------------------------------------------------------------------------------
# SQLite columns of several storage classes
# ---------------------------------------------------------------------------------------

ROWS = 3000  # more than the rows ADBC types a result column by (1024)
NAMED_FLOATS = [
    0.1 + 0.2,
    1e308,
    1.7976931348623157e308,
    5e-324,
    2.2250738585072014e-308,
    -1e-300,
    123456789.12345679,
    1 / 3,
    math.inf,
    -math.inf,
]
# id -> (column, value of another storage class); 10 comes in ADBC's first rows, 2500 after.
WRONG_CLASS = {10: ("r", "abc"), 500: ("n", b"\x00\xff"), 1500: ("i", 1.5), 2500: ("r", "1,5")}
# NUMERIC values: integers exact (2**53 + 1 is no float), floats rounded to the scale (9).
NUMERICS = {
    2**53 + 1: Decimal(2**53 + 1),
    -(2**62): Decimal(-(2**62)),
    0.1 + 0.2: Decimal("0.3"),
    1 / 3: Decimal("0.333333333"),
    -7.125: Decimal("-7.125"),
}


def random_floats(count: int, seed: int) -> list[float]:
    """``count`` finite floats of random bit patterns (every exponent, subnormals too), none
    of them zero (SQLite keeps -0.0 as 0)."""
    bits = np.random.default_rng(seed).integers(0, 2**64, size=count * 2, dtype=np.uint64)
    floats = bits.view(np.float64)
    return [float(f) for f in floats[np.isfinite(floats) & (floats != 0)][:count]]


def measures_table(path: Path) -> list[dict[str, Any]]:
    """``measures (id INTEGER PRIMARY KEY, r REAL, n NUMERIC, i INTEGER)`` of ``ROWS`` rows
    (``r`` random and named floats, ``n`` ``NUMERICS``' keys in turn, ``i`` big integers),
    with ``WRONG_CLASS`` values in place; returns the rows the source should emit."""
    floats = NAMED_FLOATS + random_floats(ROWS - len(NAMED_FLOATS), seed=7)
    numerics = list(NUMERICS)
    rows: list[list[Any]] = [
        [i, floats[i], numerics[i % len(numerics)], 2**62 + i] for i in range(ROWS)
    ]
    expected = [
        {"id": i, "r": r, "n": NUMERICS[n], "i": big}
        for i, r, n, big in rows
        if i not in WRONG_CLASS
    ]
    for i, (column, value) in WRONG_CLASS.items():
        rows[i][["id", "r", "n", "i"].index(column)] = value
    with sqlite3.connect(path) as connection:
        connection.execute(
            "CREATE TABLE measures (id INTEGER PRIMARY KEY, r REAL, n NUMERIC, i INTEGER)"
        )
        connection.executemany("INSERT INTO measures VALUES (?, ?, ?, ?)", rows)
    return expected


def float_bits(value: float) -> bytes:
    return struct.pack("<d", value)


def test_sqlite_floats_keep_every_digit_and_wrong_storage_classes_are_bad_rows(
    sqlite_database: SqlDatabase,
) -> None:
    expected = measures_table(Path(sqlite_database.url.removeprefix("sqlite:///")))
    rows, reports = read_rows(sqlite_database, tables=["measures"], chunk_size=ROWS)
    assert [row["id"] for row in rows] == [row["id"] for row in expected]
    assert [float_bits(row["r"]) for row in rows] == [float_bits(row["r"]) for row in expected]
    assert [(row["n"], row["i"]) for row in rows] == [(row["n"], row["i"]) for row in expected]

    assert [(where["key"]["id"], where["column"]) for where, _, _ in reports] == [
        (i, column) for i, (column, _) in sorted(WRONG_CLASS.items())
    ]
    by_id = {where["key"]["id"]: (payload, reason) for where, payload, reason in reports}
    assert by_id[10][0]["r"] == "'abc'"  # as SQL quotes it: text, not a number
    assert by_id[500][0]["n"] == "X'00FF'"
    assert by_id[1500][0]["i"] == "1.5"
    for i in (10, 500, 2500):
        assert "SQLite holds text or a blob here, not a number" in by_id[i][1]
    assert by_id[1500][1].startswith('table main.measures, key {"id": 1500}, column i: ')


def test_pipeline_dead_letters_text_in_a_real_column_and_stops_on_it_under_none(
    sqlite_database: SqlDatabase, tmp_path: Path
) -> None:
    expected = measures_table(Path(sqlite_database.url.removeprefix("sqlite:///")))
    tolerant, strict = tmp_path / "all", tmp_path / "none"
    tolerant.mkdir()
    ran = run(tolerant, pipeline(sqlite_database, "measures", "all"))
    assert ran.returncode == 0, ran.stderr
    published = [m["value"] for m in tail_topic("bad.main.measures", tolerant)]
    assert [m["id"] for m in published] == [row["id"] for row in expected]
    # Every digit, in the chunks holding a value of another class too (JSON text of Avro
    # values: the infinities as "Infinity", decimals as their text).
    assert [float_bits(float(m["r"])) for m in published] == [
        float_bits(row["r"]) for row in expected
    ]
    assert [Decimal(m["n"]) for m in published] == [row["n"] for row in expected]
    assert [d["value"]["id"] for d in dead_letters(tolerant)] == sorted(WRONG_CLASS)

    strict.mkdir()
    stopped = run(strict, pipeline(sqlite_database, "measures", "none"))
    assert stopped.returncode == 1
    (line,) = [line for line in stopped.stderr.splitlines() if "errors.tolerance is none" in line]
    assert "pipeline bad-values failed" in line
    assert 'table main.measures, key {"id": 10}, column r: a value does not fit float64' in line
    assert topic_ids(strict, "bad.main.measures") == list(range(10))

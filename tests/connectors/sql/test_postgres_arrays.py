"""PostgreSQL arrays through the ``sql`` source's snapshot and the ``postgres-cdc`` source's
snapshot and stream, against the machine's PostgreSQL.

PostgreSQL does not keep an array's number of dimensions in its column's type (``int4[][]``
is ``int4[]``; any row may hold any number of them, and other bounds than 1), so it is a
property of each value. Every path reads the same text (the snapshots select arrays as text)
and parses it the same way (``_pg_text``): a one-dimensional array from index 1 is a list of
its element type (NULL elements, empty arrays, quoted and escaped text, numerics, timestamps,
``bytea``, enums); any other value (multi-dimensional, another first index, an element that
does not fit its type, such as an infinite timestamp) is a bad value of its row. Under
``errors.tolerance: all`` that row is dead-lettered, with the table, the column and why, and
every other row flows; under ``none`` the run stops with that one line.

The ``all`` tests drive the tasks directly (``SourceDriver``, which collects the reports);
the ``none`` tests run the real ``omconnect`` command.
"""

from __future__ import annotations

import json
import textwrap
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from omconnect.runtime.testing import MemoryOffsetReader, SourceDriver
from tests.connectors.sql import test_postgres_cdc
from tests.connectors.sql.test_postgres_cdc import Cdc
from tests.support.omconnect_process import omconnect, tail_topic
from tests.support.sql_databases import SqlDatabase

cdc = test_postgres_cdc.cdc  # the fixture: a schema, a slot name, a pipeline folder

# Each column's type (``ints`` declared two-dimensional: PostgreSQL does not hold it to that).
COLUMNS = {
    "ints": "int4[][]",
    "names": "text[]",
    "amounts": "numeric(10,2)[]",
    "moments": "timestamptz[]",
    "stamps": "timestamp[]",
    "days": "date[]",
    "raws": "bytea[]",
    "moods": "{mood}[]",
}

# Rows whose every array is a list: each column's SQL, and its value as read.
GOOD: dict[int, dict[str, tuple[str, Any]]] = {
    1: {
        "ints": ("'{1,NULL,3}'", [1, None, 3]),
        "names": (
            r"""ARRAY['a b', '', 'x"y', 'back\slash', NULL, 'NULL', '{1,2}', 'zoë']""",
            ["a b", "", 'x"y', "back\\slash", None, "NULL", "{1,2}", "zoë"],
        ),
        "amounts": ("'{1.5,NULL,-2}'", [Decimal("1.50"), None, Decimal("-2.00")]),
        "moments": (
            "ARRAY['2024-01-31 12:30:00.5+02'::timestamptz]",
            [datetime(2024, 1, 31, 10, 30, 0, 500000, tzinfo=UTC)],
        ),
        "stamps": ("'{\"2024-01-31 10:30:00\",NULL}'", [datetime(2024, 1, 31, 10, 30), None]),
        "days": ("'{2024-01-31}'", [date(2024, 1, 31)]),
        "raws": ("ARRAY['\\x00ff'::bytea, '']", [b"\x00\xff", b""]),
        "moods": ("'{sad,ok}'", ["sad", "ok"]),
    },
    3: {name: ("'{}'", []) for name in COLUMNS},
    5: {name: ("NULL", None) for name in COLUMNS},
    6: {name: ("'{NULL}'", [None]) for name in COLUMNS},
}

# Rows holding one array that is no list: the column, its SQL, the text PostgreSQL writes for
# it, and why it is no list.
DIMENSIONS = "it is a multi-dimensional array of {} dimensions, where a list has one"
BAD: dict[int, tuple[str, str, str, str]] = {
    2: ("ints", "'{{1,2},{3,4}}'", "{{1,2},{3,4}}", DIMENSIONS.format(2)),
    4: ("names", "'[0:1]={a,b}'", "[0:1]={a,b}", "its first index is 0, where a list's is 1"),
    7: (
        "moments",
        "ARRAY[ARRAY['2024-01-01 00:00:00+00'::timestamptz]]",
        '{{"2024-01-01 00:00:00+00"}}',
        DIMENSIONS.format(2),
    ),
    8: ("ints", "'{{{1}}}'", "{{{1}}}", DIMENSIONS.format(3)),
    9: (
        "stamps",
        "'{infinity}'",
        "{infinity}",
        'its element "infinity" does not fit timestamp',
    ),
    10: (
        "amounts",
        "'{{1.5},{NaN}}'",
        "{{1.50},{NaN}}",
        DIMENSIONS.format(2),
    ),
}


# The types of the columns of ``BAD``, as a reason names them.
TYPES = {
    "ints": "array<int32>",
    "names": "array<string>",
    "moments": "array<timestamp(UTC)>",
    "stamps": "array<timestamp>",
    "amounts": "array<decimal(10,2)>",
}


def create_table(database: SqlDatabase) -> str:
    """The table ``shapes``: an ``id`` and ``COLUMNS`` (``mood`` an enum of the schema)."""
    schema = database.schema
    mood = f'"{schema}".mood'
    columns = ", ".join(f"{name} {kind.format(mood=mood)}" for name, kind in COLUMNS.items())
    database.execute(
        f"CREATE TYPE {mood} AS ENUM ('sad', 'ok', 'happy')",
        f'CREATE TABLE "{schema}".shapes (id int PRIMARY KEY, {columns})',
    )
    return f"{schema}.shapes"


def insert_rows(database: SqlDatabase, offset: int = 0) -> None:
    """The rows of ``GOOD`` and ``BAD``, their ids moved by ``offset``."""
    table = f'"{database.schema}".shapes'
    statements = []
    for row_id, values in GOOD.items():
        sql = ", ".join(values[name][0] for name in COLUMNS)
        statements.append(f"INSERT INTO {table} VALUES ({row_id + offset}, {sql})")
    for row_id, (column, sql, _, _) in BAD.items():
        statements.append(f"INSERT INTO {table} (id, {column}) VALUES ({row_id + offset}, {sql})")
    database.execute(*statements)


def expected_rows(moods_as_text: bool, offset: int = 0) -> list[dict[str, Any]]:
    """The rows of ``GOOD`` as read; ``postgres-cdc`` carries an enum's array as its text."""
    rows = []
    for row_id, values in GOOD.items():
        row = {"id": row_id + offset, **{name: value for name, (_, value) in values.items()}}
        if moods_as_text:
            row["moods"] = {"'{sad,ok}'": "{sad,ok}", "'{}'": "{}", "'{NULL}'": "{NULL}"}.get(
                values["moods"][0]
            )
        rows.append(row)
    return rows


def snapshot_reason(table: str, row_id: int) -> str:
    """The reason of a bad row of a snapshot (``_arrow_reads.conform_rows``)."""
    column, _, _, why = BAD[row_id]
    return (
        f'table {table}, key {{"id": {row_id}}}, column {column}: a value does not fit '
        f"{TYPES[column]} ({why}); change the column's type or leave it out"
    )


def stream_reason(table: str, row_id: int) -> str:
    """The reason of a bad row of the stream (``_cdc_events``)."""
    column, _, text, why = BAD[row_id]
    return f"table {table}, column {column}: {json.dumps(text)} does not fit {TYPES[column]}: {why}"


# -- the sql source ------------------------------------------------------------------------


def test_sql_snapshot_reads_lists_and_dead_letters_the_arrays_no_list_holds(
    postgres_database: SqlDatabase,
) -> None:
    table = create_table(postgres_database)
    insert_rows(postgres_database)
    config = {"url": postgres_database.url, "tables": [table], "chunk_size": 4}
    source = SourceDriver("sql", config)
    try:
        batches = source.read_to_end()
    finally:
        source.stop()
    rows = [row for batch in batches for row in batch.values.to_pylist()]
    assert rows == expected_rows(moods_as_text=False)
    reports = source.errors.raw_reports
    assert [r.where for r in reports] == [
        {"table": table, "key": {"id": row_id}, "column": BAD[row_id][0]} for row_id in BAD
    ]
    assert [str(r.error) for r in reports] == [snapshot_reason(table, row_id) for row_id in BAD]
    # Each bad row as JSON, the array that is no list as PostgreSQL wrote it.
    for report, (row_id, (column, _, text, _)) in zip(reports, BAD.items(), strict=True):
        payload = json.loads(report.payload)
        assert (payload["id"], payload[column]) == (row_id, text)


def test_sql_snapshot_in_a_session_zone_reads_instants(
    postgres_database: SqlDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The source's session keeps its own time zone (libpq takes ``PGTZ``): the offsets of
    its ``timestamptz`` texts, in seconds before a zone kept standard time, read as UTC."""
    table = create_table(postgres_database)
    postgres_database.execute(
        f'INSERT INTO "{postgres_database.schema}".shapes (id, moments) VALUES (1, ARRAY['
        "'1850-01-01 00:00:00+00'::timestamptz, '2024-06-30 12:00:00+00', '0500-01-01 00:00+00'])"
    )
    monkeypatch.setenv("PGTZ", "Europe/Paris")
    source = SourceDriver("sql", {"url": postgres_database.url, "tables": [table]})
    try:
        (batch,) = source.read_to_end()
    finally:
        source.stop()
    assert batch.values.column("moments").to_pylist() == [
        [
            datetime(1850, 1, 1, tzinfo=UTC),
            datetime(2024, 6, 30, 12, tzinfo=UTC),
            datetime(500, 1, 1, tzinfo=UTC),
        ]
    ]
    assert source.errors.raw_reports == []


def test_sql_snapshot_under_tolerance_none_stops_with_one_line(
    postgres_database: SqlDatabase, tmp_path: Path
) -> None:
    table = create_table(postgres_database)
    insert_rows(postgres_database)
    (tmp_path / "p.yaml").write_text(
        textwrap.dedent(
            f"""\
            name: arrays
            source:
              connector: sql
              url: {postgres_database.url}
              tables: ["{table}"]
            topic: arrays
            errors: {{tolerance: none}}
            """
        )
    )
    ran = omconnect("run", "p.yaml", "--once", cwd=tmp_path)
    assert ran.returncode == 1
    assert "Traceback" not in ran.stderr
    (line,) = [line for line in ran.stderr.splitlines() if "errors.tolerance is none" in line]
    assert snapshot_reason(table, 2) in line
    # The row before it was delivered.
    assert [m["value"]["id"] for m in tail_topic(f"arrays.{table}", tmp_path)] == [1]


# -- the postgres-cdc source ---------------------------------------------------------------


def cdc_config(cdc: Cdc, snapshot: str) -> dict[str, Any]:
    return {
        "url": cdc.database.url,
        "tables": [f"{cdc.schema}.shapes"],
        "slot": cdc.slot,
        "snapshot": snapshot,
    }


def cdc_read(config: dict[str, Any], offsets: MemoryOffsetReader) -> tuple[list[Any], list[Any]]:
    """One run of the task, positions committed: its events (op, after) and its reports."""
    driver = SourceDriver("postgres-cdc", config, offsets)
    try:
        batches = driver.read_to_end()
        for batch in batches:
            driver.commit(batch.positions)
    finally:
        driver.stop()
    events = [
        (event["op"], event["after"])
        for batch in batches
        for event in batch.values.to_pylist()
        if event is not None and event["op"] != "t"
    ]
    return events, driver.errors.raw_reports


def test_cdc_snapshot_and_stream_read_lists_and_dead_letter_the_arrays_no_list_holds(
    cdc: Cdc,
) -> None:
    table = create_table(cdc.database)
    insert_rows(cdc.database)
    offsets = MemoryOffsetReader()
    config = cdc_config(cdc, "initial")

    events, reports = cdc_read(config, offsets)
    assert [op for op, _ in events] == ["r"] * len(GOOD)
    assert [after for _, after in events] == expected_rows(moods_as_text=True)
    assert [str(r.error) for r in reports] == [snapshot_reason(table, row_id) for row_id in BAD]
    assert [json.loads(r.payload)[BAD[i][0]] for r, i in zip(reports, BAD, strict=True)] == [
        text for _, _, text, _ in BAD.values()
    ]

    insert_rows(cdc.database, offset=100)  # the same values, streamed
    events, reports = cdc_read(config, offsets)
    assert [op for op, _ in events] == ["c"] * len(GOOD)
    assert [after for _, after in events] == expected_rows(moods_as_text=True, offset=100)
    assert [str(r.error) for r in reports] == [stream_reason(table, row_id) for row_id in BAD]
    assert [json.loads(r.payload)["after"]["id"] for r in reports] == [str(i + 100) for i in BAD]
    assert {r.where["table"] for r in reports} == {table}


def test_cdc_snapshot_under_tolerance_none_stops_with_one_line(cdc: Cdc) -> None:
    table = create_table(cdc.database)
    insert_rows(cdc.database)
    cdc.pipeline(["shapes"])
    with (cdc.folder / "cdc.yaml").open("a") as pipeline:
        pipeline.write("errors: {tolerance: none}\n")
    ran = omconnect("run", "cdc.yaml", "--once", cwd=cdc.folder, timeout=180)
    assert ran.returncode == 1
    assert "Traceback" not in ran.stderr
    (line,) = [line for line in ran.stderr.splitlines() if "errors.tolerance is none" in line]
    assert snapshot_reason(table, 2) in line


def test_cdc_stream_under_tolerance_none_stops_with_one_line(cdc: Cdc) -> None:
    table = create_table(cdc.database)
    SourceDriver("postgres-cdc", cdc_config(cdc, "never")).stop()  # creates the slot
    insert_rows(cdc.database)
    cdc.pipeline(["shapes"], snapshot="never")
    with (cdc.folder / "cdc.yaml").open("a") as pipeline:
        pipeline.write("errors: {tolerance: none}\n")
    ran = omconnect("run", "cdc.yaml", "--once", cwd=cdc.folder, timeout=180)
    assert ran.returncode == 1
    assert "Traceback" not in ran.stderr
    (line,) = [line for line in ran.stderr.splitlines() if "errors.tolerance is none" in line]
    assert stream_reason(table, 2) in line

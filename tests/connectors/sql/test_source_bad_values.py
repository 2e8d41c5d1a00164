"""Values the sql source cannot represent in their column's type (a PostgreSQL ``numeric`` of
45 digits in an unconstrained ``numeric``, a MariaDB ``TINYINT(1)`` holding 2, an SQLite
``boolean`` holding 3): under ``errors.tolerance: all`` the row goes to the dead letter topic
(the row as JSON text, the reason, and where: table, key, column) and every other row flows,
the rest of its chunk too; under ``none`` the run stops at it with one line, after the rows
before it; a later run neither repeats nor loses a row or a dead letter.

The pipeline tests run the real ``omconnect`` command on the embedded broker; the others drive
the task with ``SourceDriver`` against each real database."""

from __future__ import annotations

import json
import textwrap
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from omconnect.connectors.api import ConnectorError
from omconnect.connectors.sql._arrow_reads import _PostgresReader, conform_rows
from omconnect.runtime.testing import MemoryOffsetReader, SourceDriver
from omconnect.schemas import types as t
from omconnect.schemas.types import Field
from tests.support.failing_pipeline import topic_messages
from tests.support.omconnect_process import omconnect, tail_topic
from tests.support.sql_databases import SqlDatabase, open_database

ROWS = 200
CHUNK = 30
BAD_ID = 50  # in the second chunk (31..60), with good rows before and after it there
HUGE = "123456789012345678901234567890123456789012345"  # 45 digits: not decimal(38,9)


@pytest.fixture
def mariadb_database(tmp_path: Path) -> Iterator[SqlDatabase]:
    """A fresh MariaDB database."""
    yield from open_database("mysql", tmp_path)


@pytest.fixture
def sqlite_database(tmp_path: Path) -> Iterator[SqlDatabase]:
    """A fresh SQLite database."""
    yield from open_database("sqlite", tmp_path)


def amounts_table(database: SqlDatabase, bad: dict[int, str], rows: range) -> None:
    """``amounts (id, n numeric)`` with ``n = id * 1.25``, but ``bad[id]`` where given."""
    schema = database.schema
    database.execute(
        f'CREATE TABLE IF NOT EXISTS "{schema}".amounts (id int PRIMARY KEY, n numeric)',
        f'INSERT INTO "{schema}".amounts SELECT i, i * 1.25 '
        f"FROM generate_series({rows.start}, {rows.stop - 1}) i",
        *(f'UPDATE "{schema}".amounts SET n = {value} WHERE id = {i}' for i, value in bad.items()),
    )


def pipeline(database: SqlDatabase, table: str, tolerance: str, mode: str = "snapshot") -> str:
    """A pipeline reading ``table`` in chunks of ``CHUNK`` rows to the topic ``bad``."""
    cursor = "cursor: [id]" if mode == "incremental" else "cursor: []"
    return textwrap.dedent(
        f"""\
        name: bad-values
        source:
          connector: sql
          url: {database.url}
          tables: ["{database.table(table)}"]
          chunk_size: {CHUNK}
          mode: {mode}
          {cursor}
        topic: bad
        errors: {{tolerance: {tolerance}}}
        """
    )


def run(cwd: Path, text: str) -> Any:
    (cwd / "p.yaml").write_text(text)
    return omconnect("run", "p.yaml", "--once", cwd=cwd)


def topic_ids(cwd: Path, topic: str) -> list[int]:
    return [m["value"]["id"] for m in tail_topic(topic, cwd)]


def dead_letters(cwd: Path) -> list[dict[str, Any]]:
    if topic_messages(cwd, "bad.dlq") == 0:
        return []
    return tail_topic("bad.dlq", cwd)


def source_offset(cwd: Path) -> dict[str, Any]:
    listed = omconnect("offsets", "list", "p.yaml", cwd=cwd)
    assert listed.returncode == 0, listed.stderr
    (source,) = [o for o in map(json.loads, listed.stdout.splitlines()) if o["kind"] == "source"]
    return source["offset"]


def test_a_numeric_too_long_goes_to_the_dead_letter_topic_and_every_other_row_flows(
    postgres_database: SqlDatabase, tmp_path: Path
) -> None:
    amounts_table(postgres_database, {BAD_ID: HUGE}, range(1, ROWS + 1))
    table = postgres_database.table("amounts")

    ran = run(tmp_path, pipeline(postgres_database, "amounts", "all"))
    assert ran.returncode == 0, ran.stderr
    assert "dead_lettered=1" in ran.stderr

    # Every good row, the rest of the bad row's chunk (51..60) too, once each.
    assert topic_ids(tmp_path, f"bad.{table}") == [i for i in range(1, ROWS + 1) if i != BAD_ID]
    (dead,) = dead_letters(tmp_path)
    assert dead["value"] == {"id": BAD_ID, "n": HUGE}
    headers = dead["headers"]
    assert headers["omconnect.error.stage"] == "read"
    assert json.loads(headers["omconnect.error.position"]) == {
        "table": table,
        "key": {"id": BAD_ID},
        "column": "n",
    }
    reason = headers["omconnect.error.reason"]
    assert reason.startswith(f'table {table}, key {{"id": {BAD_ID}}}, column n: ')
    assert "does not fit decimal(38,9) (more than 29 digits before the decimal point)" in reason
    offset = source_offset(tmp_path)
    assert (offset["after"], offset["done"]) == ([ROWS], True)


def test_tolerance_none_stops_at_the_bad_row_with_one_line_after_the_rows_before_it(
    postgres_database: SqlDatabase, tmp_path: Path
) -> None:
    amounts_table(postgres_database, {BAD_ID: HUGE}, range(1, ROWS + 1))
    table = postgres_database.table("amounts")

    ran = run(tmp_path, pipeline(postgres_database, "amounts", "none"))
    assert ran.returncode == 1
    assert "Traceback" not in ran.stderr
    (line,) = [line for line in ran.stderr.splitlines() if "errors.tolerance is none" in line]
    assert f'table {table}, key {{"id": {BAD_ID}}}, column n: a value does not fit ' in line
    assert "decimal(38,9)" in line
    # The rows before the bad one were delivered and committed; nothing after it.
    assert topic_ids(tmp_path, f"bad.{table}") == list(range(1, BAD_ID))
    assert dead_letters(tmp_path) == []
    offset = source_offset(tmp_path)
    assert (offset["after"], offset["done"]) == ([BAD_ID - 1], False)


def test_a_tinyint_boolean_holding_2_goes_to_the_dead_letter_topic(
    mariadb_database: SqlDatabase, tmp_path: Path
) -> None:
    schema = mariadb_database.schema
    values = ", ".join(f"({i}, {i % 2}, 'n{i}')" for i in range(1, 81))
    mariadb_database.execute(
        f"CREATE TABLE `{schema}`.flags (id int PRIMARY KEY, active tinyint(1), note varchar(8))",
        f"INSERT INTO `{schema}`.flags VALUES {values}",
        f"UPDATE `{schema}`.flags SET active = 2 WHERE id = 45",
    )
    table = mariadb_database.table("flags")

    ran = run(tmp_path, pipeline(mariadb_database, "flags", "all"))
    assert ran.returncode == 0, ran.stderr
    messages = tail_topic(f"bad.{table}", tmp_path)
    assert [m["value"]["id"] for m in messages] == [i for i in range(1, 81) if i != 45]
    assert {m["value"]["active"] for m in messages} == {True, False}
    (dead,) = dead_letters(tmp_path)
    assert dead["value"] == {"id": 45, "active": "2", "note": "n45"}
    assert json.loads(dead["headers"]["omconnect.error.position"]) == {
        "table": table,
        "key": {"id": 45},
        "column": "active",
    }
    reason = dead["headers"]["omconnect.error.reason"]
    assert f'table {table}, key {{"id": 45}}, column active: a value does not fit boolean' in reason


def test_resume_after_a_stop_at_the_bad_row_repeats_and_loses_nothing(
    postgres_database: SqlDatabase, tmp_path: Path
) -> None:
    amounts_table(postgres_database, {BAD_ID: HUGE, 150: "'NaN'"}, range(1, ROWS + 1))
    topic = f"bad.{postgres_database.table('amounts')}"
    stopped = run(tmp_path, pipeline(postgres_database, "amounts", "none"))
    assert stopped.returncode == 1

    resumed = run(tmp_path, pipeline(postgres_database, "amounts", "all"))
    assert resumed.returncode == 0, resumed.stderr
    good = [i for i in range(1, ROWS + 1) if i not in (BAD_ID, 150)]
    assert sorted(topic_ids(tmp_path, topic)) == good
    assert max(Counter(topic_ids(tmp_path, topic)).values()) == 1
    assert [d["value"]["id"] for d in dead_letters(tmp_path)] == [BAD_ID, 150]

    again = run(tmp_path, pipeline(postgres_database, "amounts", "all"))
    assert again.returncode == 0, again.stderr
    assert sorted(topic_ids(tmp_path, topic)) == good
    assert len(dead_letters(tmp_path)) == 2


def test_an_incremental_read_moves_past_a_bad_last_row_and_reads_on_later(
    postgres_database: SqlDatabase, tmp_path: Path
) -> None:
    # The bad row is the newest: the position must cover it, or every run reports it again.
    amounts_table(postgres_database, {100: HUGE}, range(1, 101))
    topic = f"bad.{postgres_database.table('amounts')}"
    first = run(tmp_path, pipeline(postgres_database, "amounts", "all", mode="incremental"))
    assert first.returncode == 0, first.stderr
    assert topic_ids(tmp_path, topic) == list(range(1, 100))
    assert source_offset(tmp_path)["cursor"] == [100]

    amounts_table(postgres_database, {120: "'-Infinity'"}, range(101, 131))
    second = run(tmp_path, pipeline(postgres_database, "amounts", "all", mode="incremental"))
    assert second.returncode == 0, second.stderr
    assert topic_ids(tmp_path, topic) == [i for i in range(1, 131) if i not in (100, 120)]
    dead = dead_letters(tmp_path)
    assert [d["value"]["id"] for d in dead] == [100, 120]
    assert "(not a finite number)" in dead[1]["headers"]["omconnect.error.reason"]


# ---------------------------------------------------------------------------------------
# The task on each database, driven directly
# ---------------------------------------------------------------------------------------

# dialect -> (column type, a value that does not fit it, that value as the driver reads it)
MISFITS = {
    "postgresql": ("numeric", HUGE, HUGE),
    "mysql": ("tinyint(1)", "2", "2"),
    "sqlite": ("boolean", "3", "3"),
}


def misfit_table(database: SqlDatabase, rows: range, bad: set[int], seq_every: int = 1) -> str:
    """``items (id, seq, v)`` with ``v`` 1 (0 and 1 fit every dialect's type), but the
    dialect's misfit in the rows ``bad``; ``seq`` shared by runs of ``seq_every`` ids."""
    column_type, misfit, _ = MISFITS[database.dialect]
    name = database.table("items")
    database.execute(
        f"CREATE TABLE IF NOT EXISTS {name} (id int PRIMARY KEY, seq int NOT NULL, "
        f"v {column_type})",
        *(
            f"INSERT INTO {name} VALUES ({i}, {i // seq_every}, {misfit if i in bad else 1})"
            for i in rows
        ),
    )
    return name


def read(
    database: SqlDatabase, offsets: MemoryOffsetReader | None = None, **options: Any
) -> tuple[list[int], list[tuple[Any, ...]]]:
    """One run of the source, positions committed: the ids emitted and the reports."""
    config = {"url": database.url, "tables": [database.table("items")], **options}
    source = SourceDriver("sql", config, offsets)
    ids: list[int] = []
    for batch in source.read_to_end():
        ids.extend(batch.values.column("id").to_pylist())
        source.commit(batch.positions)
    source.stop()
    reports = [
        (r.where["key"]["id"], json.loads(r.payload), r.where["column"], str(r.error))
        for r in source.errors.raw_reports
    ]
    assert all(r.stage == "read" for r in source.errors.raw_reports)
    return ids, reports


def test_bad_rows_anywhere_in_a_chunk_are_reported_and_the_others_emitted(
    sql_database: SqlDatabase,
) -> None:
    # chunk_size 7: 7 starts a chunk, 13 ends one, 20 is inside one, 40 is the last row.
    bad = {7, 13, 20, 21, 40}
    misfit_table(sql_database, range(1, 41), bad)
    _, _, as_read = MISFITS[sql_database.dialect]
    offsets = MemoryOffsetReader()
    ids, reports = read(sql_database, offsets, chunk_size=7)
    assert ids == [i for i in range(1, 41) if i not in bad]
    assert [(key, payload) for key, payload, _, _ in reports] == [
        (i, {"id": i, "seq": i, "v": as_read}) for i in sorted(bad)
    ]
    assert {column for _, _, column, _ in reports} == {"v"}
    table = sql_database.table("items")
    assert all(reason.startswith(f"table {table}, key ") for *_, reason in reports)
    # The last position covers the last row, bad as it was: a later run reads nothing.
    ((_, offset),) = offsets.all()
    assert (offset["after"], offset["done"]) == ([40], True)
    assert read(sql_database, offsets, chunk_size=7) == ([], [])


def test_incremental_bad_rows_at_a_shared_cursor_value_are_reported_once(
    sql_database: SqlDatabase,
) -> None:
    # Five ids per cursor value; chunks of 7 end inside a run of equal values, so the next
    # read starts at that value again and must drop the rows (good and bad) it delivered.
    bad = {6, 14, 15, 22, 29}
    misfit_table(sql_database, range(0, 30), bad, seq_every=5)
    offsets = MemoryOffsetReader()
    options = {"mode": "incremental", "cursor": "seq", "chunk_size": 7}
    ids, reports = read(sql_database, offsets, **options)
    assert ids == [i for i in range(30) if i not in bad]
    assert [key for key, *_ in reports] == sorted(bad)

    misfit_table(sql_database, range(30, 40), {33}, seq_every=5)
    more_ids, more_reports = read(sql_database, offsets, **options)
    assert more_ids == [i for i in range(30, 40) if i != 33]
    assert [key for key, *_ in more_reports] == [33]


def test_a_value_that_does_not_fit_in_a_key_column_stops_the_read(
    sqlite_database: SqlDatabase,
) -> None:
    database = sqlite_database
    database.execute(
        "CREATE TABLE items (id numeric(5,2) PRIMARY KEY, v text)",
        "INSERT INTO items VALUES (1, 'a'), (123456, 'b'), (3, 'c')",
    )
    source = SourceDriver("sql", {"url": database.url, "tables": ["items"]})
    with pytest.raises(ConnectorError) as stopped:
        source.read_to_end()
    message = str(stopped.value)
    assert "table main.items, column id: a value does not fit decimal(5,2)" in message
    assert "key or cursor" in message
    assert source.errors.raw_reports == []


def test_values_that_fit_are_never_reported(postgres_database: SqlDatabase) -> None:
    # Trailing zeros beyond 38 digits fit decimal(38,9) (Arrow's parser alone refuses them);
    # they share the column with one value that does not fit.
    zeros = "1.5" + "0" * 50
    amounts_table(postgres_database, {2: zeros, 3: HUGE, 4: "-0.000"}, range(1, 6))
    config = {"url": postgres_database.url, "tables": [postgres_database.table("amounts")]}
    source = SourceDriver("sql", config)
    rows = [row for b in source.read_to_end() for row in b.values.to_pylist()]
    assert rows == [
        {"id": 1, "n": Decimal("1.25")},
        {"id": 2, "n": Decimal("1.5")},
        {"id": 4, "n": Decimal("0")},
        {"id": 5, "n": Decimal("6.25")},
    ]
    assert [r.where["key"] for r in source.errors.raw_reports] == [{"id": 3}]


def test_a_small_numeric_reads_exactly_and_its_nan_makes_its_row_bad(
    postgres_database: SqlDatabase,
) -> None:
    """``numeric(p, s)`` of at most 18 digits is read as a scaled ``bigint``: every value
    exact at the type's limits, nulls kept, and a NaN (which such a column can hold) a bad
    row, as when the column was read as text."""
    name = postgres_database.table("small")
    postgres_database.execute(
        f"CREATE TABLE {name} (id int PRIMARY KEY, a numeric(12,2), b numeric(18,0), "
        "c numeric(5,5), d numeric(18,18))",
        f"INSERT INTO {name} VALUES "
        "(1, 9999999999.99, 999999999999999999, 0.99999, 0.999999999999999999), "
        "(2, -9999999999.99, -999999999999999999, -0.00001, -0.000000000000000001), "
        "(3, NULL, NULL, NULL, NULL), (4, 'NaN', 0, 0, 0), (5, 1.5, 1, 0.1, 0.5), "
        "(6, 0, 0, 0, 'NaN')",
    )
    config = {"url": postgres_database.url, "tables": [name], "chunk_size": 4}
    source = SourceDriver("sql", config)
    values = pa.concat_tables(pa.Table.from_batches([b.values]) for b in source.read_to_end())
    assert values.schema.field("a").type == pa.decimal128(12, 2)
    assert values.schema.field("d").type == pa.decimal128(18, 18)
    assert values.to_pylist() == [
        {
            "id": 1,
            "a": Decimal("9999999999.99"),
            "b": Decimal("999999999999999999"),
            "c": Decimal("0.99999"),
            "d": Decimal("0.999999999999999999"),
        },
        {
            "id": 2,
            "a": Decimal("-9999999999.99"),
            "b": Decimal("-999999999999999999"),
            "c": Decimal("-0.00001"),
            "d": Decimal("-0.000000000000000001"),
        },
        {"id": 3, "a": None, "b": None, "c": None, "d": None},
        {"id": 5, "a": Decimal("1.5"), "b": Decimal(1), "c": Decimal("0.1"), "d": Decimal("0.5")},
    ]
    reports = source.errors.raw_reports
    assert [(r.where["key"], r.where["column"]) for r in reports] == [
        ({"id": 4}, "a"),
        ({"id": 6}, "d"),
    ]
    assert all("not a finite number" in str(r.error) for r in reports)


@pytest.mark.parametrize(
    ("declared", "dtype", "scaled"),
    [
        (sa.Numeric(12, 2), t.decimal(12, 2), True),
        (sa.Numeric(18, 18), t.decimal(18, 18), True),
        (sa.Numeric(19, 2), t.decimal(19, 2), False),  # more digits than a bigint holds
        (sa.Numeric(), t.decimal(38, 9), False),  # unconstrained: any digits
        (sa.Float(), t.float64(), False),
    ],
)
def test_only_numerics_of_at_most_18_declared_digits_are_selected_as_bigints(
    declared: sa.Numeric[Any], dtype: t.DataType, scaled: bool
) -> None:
    reader = _PostgresReader(None, postgresql.psycopg.dialect(), copies=True)
    selected = reader.select_column(sa.column("n", declared), Field("n", dtype))
    text = str(selected.compile(dialect=postgresql.psycopg.dialect()))
    assert ("AS BIGINT" in text) is scaled, text


def test_an_array_item_that_does_not_fit_makes_its_row_bad(
    postgres_database: SqlDatabase,
) -> None:
    schema = postgres_database.schema
    postgres_database.execute(
        f'CREATE TABLE "{schema}".lists (id int PRIMARY KEY, ns numeric[])',
        f'INSERT INTO "{schema}".lists SELECT i, ARRAY[i, i + 0.5] FROM generate_series(1, 9) i',
        f'UPDATE "{schema}".lists SET ns = ARRAY[1, {HUGE}, 2] WHERE id = 5',
    )
    config = {"url": postgres_database.url, "tables": [postgres_database.table("lists")]}
    source = SourceDriver("sql", config)
    ids = [i for b in source.read_to_end() for i in b.values.column("id").to_pylist()]
    assert ids == [1, 2, 3, 4, 6, 7, 8, 9]
    (report,) = source.errors.raw_reports
    assert report.where == {"table": f"{schema}.lists", "key": {"id": 5}, "column": "ns"}
    # The array as PostgreSQL writes it (a snapshot selects arrays as text), and why.
    assert json.loads(report.payload)["ns"] == f"{{1,{HUGE},2}}"
    assert f'its element "{HUGE}" does not fit decimal(38,9)' in str(report.error)


def test_text_that_is_not_a_uuid_makes_its_row_bad() -> None:
    # MariaDB's UUID and UUIDs kept as text arrive as text; no database here stores text that
    # is not a UUID in a UUID column, so the driver's batch is built as it would arrive.
    text = pa.array(["12345678-1234-5678-1234-567812345678", "not-a-uuid", None])
    batch = pa.record_batch({"id": pa.array([1, 2, 3]), "u": text})
    fields = [Field("id", t.int64()), Field("u", t.uuid())]
    values, bad = conform_rows(batch, fields, "s.t", {"table": "s.t"}, key=["id"])
    assert bad is not None
    assert values.filter(bad.good(values.num_rows)).column("id").to_pylist() == [1, 3]
    assert [json.loads(p) for p in bad.payloads] == [{"id": 2, "u": "not-a-uuid"}]
    assert bad.places == [{"table": "s.t", "key": {"id": 2}, "column": "u"}]
    assert "column u: a value does not fit uuid (not a UUID)" in str(bad.errors[0])


def test_infinite_dates_and_timestamps_make_their_rows_bad(
    postgres_database: SqlDatabase,
) -> None:
    """PostgreSQL's ``infinity`` and ``-infinity`` (no year 1 to 9999 holds them) in a date
    and a timestamptz column: their rows are reported, the others read."""
    schema = postgres_database.schema
    postgres_database.execute(
        f'CREATE TABLE "{schema}".days (id int PRIMARY KEY, d date, ts timestamptz)',
        f"INSERT INTO \"{schema}\".days SELECT i, date '2026-01-01' + i, "
        f"timestamptz '2026-01-01 00:00:00+00' + i * interval '1 hour' "
        "FROM generate_series(1, 6) i",
        f"UPDATE \"{schema}\".days SET d = 'infinity' WHERE id = 2",
        f"UPDATE \"{schema}\".days SET ts = '-infinity' WHERE id = 4",
    )
    config = {"url": postgres_database.url, "tables": [postgres_database.table("days")]}
    source = SourceDriver("sql", config)
    ids = [i for b in source.read_to_end() for i in b.values.column("id").to_pylist()]
    assert ids == [1, 3, 5, 6]
    reports = source.errors.raw_reports
    assert [(r.where["key"], r.where["column"]) for r in reports] == [
        ({"id": 2}, "d"),
        ({"id": 4}, "ts"),
    ]
    assert "outside the years 1 to 9999" in str(reports[0].error)

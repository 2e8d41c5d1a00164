"""Bad input to the sql sink: each a one-line ``ConnectorError`` naming the table and what to
fix, the URL's password in none of them, and no position stored past rows not written."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pyarrow as pa
import pytest
import sqlalchemy as sa

from omconnect.connectors.api import ConnectorError, RetriableError
from omconnect.runtime.testing import CollectingErrorReporter, SinkDriver, sink_batches
from tests.support.sql_databases import SqlDatabase

from .sink_fixtures import TABLE, quoted_table, read_table, sink_config

PASSWORD = "pw-Secret-7731"


def batches_of(rows: pa.Table, first_offset: int = 0) -> list:
    return sink_batches(rows, topic="t", partition=0, first_offset=first_offset, batch_rows=100)


def refusal(config: dict, rows: pa.Table | None = None) -> str:
    """The one-line message the sink fails with, started from ``config`` (then given
    ``rows``)."""
    with pytest.raises(ConnectorError) as failed:
        sink = SinkDriver("sql", config)
        if rows is not None:
            sent = batches_of(rows)
            sink.put_all(sent)
            sink.flush(sent)
    message = str(failed.value)
    assert "\n" not in message and "Traceback" not in message
    assert PASSWORD not in message
    return message


def with_password(url: str, user: str | None = None) -> str:
    parsed = sa.make_url(url)
    return parsed.set(username=user or parsed.username, password=PASSWORD).render_as_string(
        hide_password=False
    )


ROWS = pa.table({"id": pa.array([1, 2], pa.int64()), "name": ["a", "b"]})


def test_an_unreachable_server_is_retriable_and_says_what_to_check(
    sql_database: SqlDatabase,
) -> None:
    if sql_database.dialect == "sqlite":
        url = "sqlite:////nonexistent-directory/x.db"
    else:
        url = sa.make_url(with_password(sql_database.url)).set(port=1).render_as_string(False)
    config = sink_config(sql_database, url=url)
    message = refusal(config)
    with pytest.raises(RetriableError):
        SinkDriver("sql", config)
    assert TABLE in message and "cannot reach the database" in message


@pytest.mark.parametrize("dialect", ["postgresql", "mysql"])
def test_a_wrong_login_names_the_table_and_the_credentials(
    dialect: str, request: pytest.FixtureRequest, tmp_path
) -> None:
    from tests.support.sql_databases import open_database

    for database in open_database(dialect, tmp_path):
        user = "omconnect_nobody" if dialect == "postgresql" else None
        message = refusal(sink_config(database, url=with_password(database.url, user)))
        assert TABLE in message
        assert "user and password" in message or "does not exist" in message


@pytest.fixture(params=["postgresql", "mysql"])
def server_database(request: pytest.FixtureRequest, tmp_path) -> Iterator[SqlDatabase]:
    """A fresh database on each server (SQLite has no users to refuse anything)."""
    from tests.support.sql_databases import open_database

    yield from open_database(request.param, tmp_path)


@pytest.fixture
def restricted_user(server_database: SqlDatabase) -> Iterator[str]:
    """A URL of a user that may read the table and create tables, but not write the table."""
    sql_database = server_database
    user = f"omc_ro_{uuid.uuid4().hex[:8]}"
    schema = sql_database.schema
    sql_database.execute(
        f"CREATE TABLE {quoted_table(sql_database)} (id BIGINT PRIMARY KEY, name TEXT)"
    )
    if sql_database.dialect == "postgresql":
        sql_database.execute(
            f'CREATE ROLE "{user}" LOGIN',
            f'GRANT USAGE, CREATE ON SCHEMA "{schema}" TO "{user}"',
            f'GRANT SELECT ON ALL TABLES IN SCHEMA "{schema}" TO "{user}"',
        )
        drop = [f'DROP OWNED BY "{user}" CASCADE', f'DROP ROLE "{user}"']
    else:
        sql_database.execute(
            f"CREATE USER '{user}'@'%' IDENTIFIED BY '{PASSWORD}'",
            f"CREATE USER '{user}'@'localhost' IDENTIFIED BY '{PASSWORD}'",
            f"GRANT SELECT, CREATE ON `{schema}`.* TO '{user}'@'%'",
            f"GRANT SELECT, CREATE ON `{schema}`.* TO '{user}'@'localhost'",
        )
        drop = [f"DROP USER '{user}'@'%'", f"DROP USER '{user}'@'localhost'"]
    try:
        yield with_password(sql_database.url, user)
    finally:
        sql_database.execute(*drop)


def test_a_permission_error_says_what_to_grant(
    server_database: SqlDatabase, restricted_user: str
) -> None:
    config = sink_config(server_database, url=restricted_user, mode="append", delete=False)
    message = refusal(config, ROWS)
    assert "INSERT" in message
    assert TABLE in message and "permission denied" in message and "grant" in message


def test_a_missing_table_without_create(sql_database: SqlDatabase) -> None:
    message = refusal(sink_config(sql_database, create=False))
    assert f"{TABLE} does not exist" in message and "create: true" in message


def test_a_missing_column_without_evolve(sql_database: SqlDatabase) -> None:
    sql_database.execute(f"CREATE TABLE {quoted_table(sql_database)} (id BIGINT PRIMARY KEY)")
    message = refusal(sink_config(sql_database, create=False, evolve=False), ROWS)
    assert TABLE in message and "no column 'name'" in message and "evolve: true" in message


def test_an_upsert_into_a_table_without_a_unique_key(sql_database: SqlDatabase) -> None:
    sql_database.execute(f"CREATE TABLE {quoted_table(sql_database)} (id BIGINT, name TEXT)")
    message = refusal(sink_config(sql_database, create=False), ROWS)
    assert "no primary key or unique index on (id)" in message and "mode: append" in message


def test_a_type_without_a_mapping_names_the_column(sql_database: SqlDatabase) -> None:
    rows = ROWS.append_column("clock", pa.array([1, 2], pa.time64("ns")))
    message = refusal(sink_config(sql_database), rows)
    assert TABLE in message and "'clock'" in message and "nanoseconds" in message


def test_delete_needs_upsert_and_is_refused_before_anything_runs(
    sql_database: SqlDatabase,
) -> None:
    message = refusal(sink_config(sql_database, mode="append", delete=True))
    assert "delete: true needs mode: upsert" in message


def test_a_failed_flush_stores_no_position_and_no_row(sql_database: SqlDatabase) -> None:
    """A flush that fails for a reason of no one row (a column renamed under the sink) is
    rolled back whole: no row of it, no position."""
    sql_database.execute(
        f"CREATE TABLE {quoted_table(sql_database)} (id BIGINT PRIMARY KEY, name TEXT)"
    )
    config = sink_config(sql_database, mode="append", delete=False, create=False)
    good = SinkDriver("sql", config)
    first = batches_of(ROWS)
    good.put_all(first)
    good.flush(first)
    stored = good.stored_positions()
    sql_database.execute(f"ALTER TABLE {quoted_table(sql_database)} RENAME COLUMN name TO label")
    later = batches_of(pa.table({"id": pa.array([3, 4], pa.int64()), "name": ["c", "d"]}), 2)
    good.put_all(later)
    with pytest.raises(ConnectorError) as failed:
        good.flush(later)
    assert TABLE in str(failed.value) and "\n" not in str(failed.value)
    assert good.stored_positions() == stored
    assert sorted(read_table(sql_database).column("id").to_pylist()) == [1, 2]
    assert good.errors.reports == []
    good.stop()


def test_rows_the_database_refuses_are_reported_and_the_rest_written(
    sql_database: SqlDatabase,
) -> None:
    """A null in a NOT NULL column, a CHECK constraint, a duplicate of another row's unique
    value: each such row is reported with the database's words, the rows around it are
    written and the flush's positions stored."""
    sql_database.execute(
        f"CREATE TABLE {quoted_table(sql_database)} (id BIGINT PRIMARY KEY, name TEXT, "
        "must BIGINT NOT NULL CHECK (must < 100), code BIGINT UNIQUE)"
    )
    config = sink_config(sql_database, mode="append", delete=False, create=False)
    sink = SinkDriver("sql", config)
    count = 40
    must = [1] * count
    must[7], must[30] = None, 500  # a null, and a value the CHECK refuses
    codes = list(range(count))
    codes[21] = 3  # row 3's code again
    rows = pa.table(
        {
            "id": pa.array(range(count), pa.int64()),
            "name": [f"n{i}" for i in range(count)],
            "must": pa.array(must, pa.int64()),
            "code": pa.array(codes, pa.int64()),
        }
    )
    sent = sink_batches(rows, topic="t", partition=0, first_offset=0, batch_rows=10)
    sink.put_all(sent)
    sink.flush(sent)
    refused = {
        sent.index(report.batch) * 10 + row: str(report.error)
        for report in sink.errors.reports
        for row in report.rows
    }
    assert sorted(refused) == [7, 21, 30]
    assert all(
        f"table {sql_database.table(TABLE)}: the database refused" in r for r in refused.values()
    )
    assert "null" in refused[7].lower() and "must" in refused[7]
    assert "unique" in refused[21].lower() or "duplicate" in refused[21].lower()
    assert all(report.stage == "sink" for report in sink.errors.reports)
    written = sorted(read_table(sql_database).column("id").to_pylist())
    assert written == [i for i in range(count) if i not in (7, 21, 30)]
    assert [p.offset["offset"] for p in sink.stored_positions()] == [count]
    sink.stop()


def test_a_value_too_long_for_its_column_is_refused_not_cut(sql_database: SqlDatabase) -> None:
    """PostgreSQL cuts a value to a VARCHAR(n) in an explicit cast, MariaDB's LOAD DATA LOCAL
    with a warning: the sink writes neither, it refuses the row. SQLite keeps any length in
    a VARCHAR(n) column: there the row is written whole."""
    sql_database.execute(
        f"CREATE TABLE {quoted_table(sql_database)} (id BIGINT PRIMARY KEY, name VARCHAR(3))"
    )
    sink = SinkDriver("sql", sink_config(sql_database, create=False))
    rows = pa.table({"id": pa.array([1, 2, 3], pa.int64()), "name": ["abc", "abcd", "xyz"]})
    sent = batches_of(rows)
    sink.put_all(sent)
    sink.flush(sent)
    refused = sorted(row for report in sink.errors.reports for row in report.rows)
    table = read_table(sql_database).sort_by("id")
    if sql_database.dialect == "sqlite":
        assert refused == []
        assert table.column("name").to_pylist() == ["abc", "abcd", "xyz"]
    else:
        assert refused == [1]
        assert table.column("name").to_pylist() == ["abc", "xyz"]
    sink.stop()


class DeliveryWatch(CollectingErrorReporter):
    """Notes, when the sink waits for its dead letters, how many rows it reported and which
    positions another session sees stored."""

    def __init__(self, database: SqlDatabase) -> None:
        super().__init__()
        self.database = database
        self.seen: list[tuple[int, list[int]]] = []

    def delivered(self) -> None:
        reported = sum(len(report.rows) for report in self.reports)
        with self.database.engine.connect() as connection:
            stored = connection.execute(
                sa.text(f"SELECT next_offset FROM {quoted_table(self.database, POSITIONS)}")
            ).scalars()
            self.seen.append((reported, sorted(stored)))


POSITIONS = "omconnect_sink_positions"


def test_refused_rows_are_delivered_before_the_positions_covering_them_are_stored(
    sql_database: SqlDatabase,
) -> None:
    sql_database.execute(
        f"CREATE TABLE {quoted_table(sql_database)} (id BIGINT PRIMARY KEY, name TEXT NOT NULL)"
    )
    config = sink_config(sql_database, mode="append", delete=False, create=False)
    sink = SinkDriver("sql", config)
    watch = DeliveryWatch(sql_database)
    sink.context.errors = watch
    first = batches_of(ROWS)
    sink.put_all(first)
    sink.flush(first)
    assert watch.seen == [], "nothing refused: nothing to wait for"
    later = batches_of(pa.table({"id": pa.array([3, 4], pa.int64()), "name": ["c", None]}), 2)
    sink.put_all(later)
    sink.flush(later)
    assert watch.seen == [(1, [2])], "waited once, with the refused row, before storing 4"
    assert [p.offset["offset"] for p in sink.stored_positions()] == [4]
    sink.stop()

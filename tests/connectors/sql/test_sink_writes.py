"""What the sql sink writes, on every dialect: values of every mapped type unchanged, the
last row of a key winning, replays never overwriting newer rows, deletes by position, and
schema changes added or refused."""

from __future__ import annotations

import datetime as dt
import decimal
import uuid

import numpy as np
import pyarrow as pa
import pytest
import sqlalchemy as sa

from omconnect.connectors.api import ConnectorError
from omconnect.runtime.testing import SinkDriver, sink_batches
from tests.support.sql_databases import SqlDatabase

from .sink_fixtures import TABLE, read_table, sink_config

TOPIC = "events"


def deliver(database: SqlDatabase, rows: pa.Table, first_offset: int = 0, **options) -> SinkDriver:
    """``rows`` (keyed by ``id``) put and flushed by a sink over ``database``."""
    sink = SinkDriver("sql", sink_config(database, **options))
    batches = sink_batches(
        rows, topic=TOPIC, partition=0, first_offset=first_offset, batch_rows=1_000
    )
    sink.put_all(batches)
    sink.flush(batches)
    return sink


def values_by_id(database: SqlDatabase, column: str) -> dict[int, object]:
    table = read_table(database)
    return dict(zip(table.column("id").to_pylist(), table.column(column).to_pylist(), strict=True))


def typed_rows(database: SqlDatabase) -> list[dict[str, object]]:
    """The rows of ``TABLE`` read through reflected SQLAlchemy types, ordered by id."""
    schema = None if database.dialect == "sqlite" else database.schema
    table = sa.Table(TABLE, sa.MetaData(schema=schema), autoload_with=database.engine)
    with database.engine.connect() as connection:
        return [dict(r._mapping) for r in connection.execute(sa.select(table).order_by("id"))]


AWKWARD_TEXT = ["tab\there", "line\nbreak\r\n", "back\\slash \\N", "quote \" '", "ünïcødé ✓", ""]


def test_values_of_every_mapped_type_round_trip(sql_database: SqlDatabase) -> None:
    n = len(AWKWARD_TEXT)
    moment = dt.datetime(2026, 3, 4, 5, 6, 7, 891011, tzinfo=dt.UTC)
    ids = [str(uuid.UUID(int=i * 7919)) for i in range(n)]
    rows = pa.table(
        {
            "id": pa.array(range(n), pa.int64()),
            "small": pa.array(range(-3, n - 3), pa.int32()),
            "flag": pa.array([i % 2 == 0 for i in range(n)]),
            "price": pa.array([decimal.Decimal(f"{i}.25") for i in range(n)], pa.decimal128(12, 2)),
            "at": pa.array(
                [moment + dt.timedelta(days=i) for i in range(n)], pa.timestamp("us", "UTC")
            ),
            "day": pa.array([dt.date(2026, 1, 1 + i) for i in range(n)], pa.date32()),
            "text": pa.array(AWKWARD_TEXT),
            "blob": pa.array([t.encode() + b"\x00\xff\t\n\\" for t in AWKWARD_TEXT], pa.binary()),
            "maybe": pa.array([None if i % 2 else i for i in range(n)], pa.int64()),
        }
    )
    rows = rows.append_column("uid", pa.array(ids))
    deliver(sql_database, rows, mode="append", delete=False).stop()
    got = typed_rows(sql_database)
    assert [r["text"] for r in got] == AWKWARD_TEXT
    assert [bytes(r["blob"]) for r in got] == rows.column("blob").to_pylist()
    assert [r["small"] for r in got] == rows.column("small").to_pylist()
    assert [bool(r["flag"]) for r in got] == rows.column("flag").to_pylist()
    assert [decimal.Decimal(r["price"]) for r in got] == rows.column("price").to_pylist()
    assert [r["maybe"] for r in got] == rows.column("maybe").to_pylist()
    assert [r["day"] for r in got] == rows.column("day").to_pylist()
    assert [r["uid"] for r in got] == ids
    stored = [r["at"] for r in got]
    expected = rows.column("at").to_pylist()
    assert [s.replace(tzinfo=None) for s in stored] == [
        e.astimezone(dt.UTC).replace(tzinfo=None) for e in expected
    ]


def test_last_row_of_a_key_wins_within_a_batch(sql_database: SqlDatabase) -> None:
    ids = np.array([1, 2, 1, 3, 2, 1], dtype=np.int64)
    rows = pa.table({"id": ids, "value": pa.array([f"v{i}" for i in range(len(ids))])})
    deliver(sql_database, rows).stop()
    assert values_by_id(sql_database, "value") == {1: "v5", 2: "v4", 3: "v3"}


def test_a_replay_of_older_offsets_never_overwrites_newer_rows(sql_database: SqlDatabase) -> None:
    newer = pa.table({"id": pa.array([1, 2], pa.int64()), "value": ["new", "new"]})
    deliver(sql_database, newer, first_offset=100).stop()
    older = pa.table({"id": pa.array([1, 2, 3], pa.int64()), "value": ["old", "old", "old"]})
    deliver(sql_database, older, first_offset=10).stop()
    assert values_by_id(sql_database, "value") == {1: "new", 2: "new", 3: "old"}


def test_a_delete_from_an_older_offset_keeps_the_newer_row(sql_database: SqlDatabase) -> None:
    deliver(sql_database, pa.table({"id": pa.array([1, 2], pa.int64()), "v": ["a", "b"]}), 50)
    sink = SinkDriver("sql", sink_config(sql_database))
    deletes = sink_batches(
        pa.table({"id": pa.array([1, 2], pa.int64()), "v": ["x", "y"]}),
        topic=TOPIC,
        partition=0,
        first_offset=49,
        batch_rows=10,
        deletes=[True, True],
    )
    sink.put_all(deletes)  # offsets 49 (older than id 1's row at 50) and 50 (same as id 2's)
    sink.flush(deletes)
    sink.stop()
    assert values_by_id(sql_database, "v") == {1: "a", 2: "b"}
    later = sink_batches(
        pa.table({"id": pa.array([2], pa.int64()), "v": ["z"]}),
        topic=TOPIC,
        partition=0,
        first_offset=60,
        batch_rows=10,
        deletes=[True],
    )
    sink = SinkDriver("sql", sink_config(sql_database))
    sink.put_all(later)
    sink.flush(later)
    sink.stop()
    assert values_by_id(sql_database, "v") == {1: "a"}


def test_a_changed_column_type_is_refused_naming_table_column_and_types(
    sql_database: SqlDatabase,
) -> None:
    deliver(sql_database, pa.table({"id": pa.array([1], pa.int64()), "amount": [1.5]})).stop()
    changed = pa.table({"id": pa.array([2], pa.int64()), "amount": ["lots"]})
    with pytest.raises(ConnectorError) as refused:
        deliver(sql_database, changed, first_offset=1)
    message = str(refused.value)
    assert TABLE in message and "'amount'" in message and "string" in message
    assert "DOUBLE" in message.upper() or "FLOAT" in message.upper() or "REAL" in message.upper()
    assert "\n" not in message
    narrowed = pa.table({"id": pa.array([2], pa.int64()), "amount": pa.array([7], pa.int64())})
    with pytest.raises(ConnectorError, match="amount"):
        deliver(sql_database, narrowed, first_offset=1)
    assert values_by_id(sql_database, "amount") == {1: 1.5}


def test_a_new_not_null_column_is_refused(sql_database: SqlDatabase) -> None:
    deliver(sql_database, pa.table({"id": pa.array([1], pa.int64())})).stop()
    schema = pa.schema([pa.field("id", pa.int64()), pa.field("must", pa.int64(), nullable=False)])
    rows = pa.table({"id": pa.array([2], pa.int64()), "must": pa.array([5], pa.int64())}, schema)
    with pytest.raises(ConnectorError, match=r"not-null column 'must'"):
        deliver(sql_database, rows, first_offset=1)


def test_a_wider_field_is_refused_but_a_narrower_one_is_written(
    sql_database: SqlDatabase,
) -> None:
    first = pa.table({"id": pa.array([1], pa.int64()), "n": pa.array([1], pa.int32())})
    deliver(sql_database, first).stop()
    narrower = pa.table({"id": pa.array([2], pa.int64()), "n": pa.array([2], pa.int16())})
    deliver(sql_database, narrower, first_offset=1).stop()
    assert values_by_id(sql_database, "n") == {1: 1, 2: 2}
    if sql_database.dialect == "sqlite":
        return  # every SQLite integer column holds 64 bits
    wider = pa.table({"id": pa.array([3], pa.int64()), "n": pa.array([2**40], pa.int64())})
    with pytest.raises(ConnectorError, match=r"column 'n' is INTEGER.* int64"):
        deliver(sql_database, wider, first_offset=2)

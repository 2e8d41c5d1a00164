"""Records whose key has a null, upserted by the sql sink in real ``omconnect run`` processes
on every dialect: with ``errors.tolerance: all`` each goes to the dead letter topic with a
reason naming the table and the null key column, every other record of its batch is written,
and the positions are stored once (a second run finds nothing to do); with ``none`` the run
stops with one line naming the pipeline, the table and the key column, and no position past
the record is stored, in the table or in the consumer group."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.support.failing_pipeline import topic_messages
from tests.support.omconnect_process import omconnect, tail_topic
from tests.support.sql_databases import SqlDatabase

from .sink_fixtures import TABLE, quoted_table, read_table

ROWS = 600
TOPIC = "orders"
SINK = "orders-to-sql"
POSITIONS_TABLE = "omconnect_sink_positions"

PUBLISH = f"""
name: publish-orders
source:
  connector: csv
  path: in/orders.csv
  key: [shop, id]
  batch_size: 100
  columns: {{shop: string, id: int64, name: string}}
topic: {TOPIC}
format: avro
"""


def sink_pipeline(database: SqlDatabase, tolerance: str) -> str:
    """The pipeline upserting ``TOPIC`` (keyed by its messages' key, ``shop, id``) into
    ``TABLE``, flushing after every consumed batch of at most 100 records."""
    sink = {
        "connector": "sql",
        "url": database.url,
        "table": database.table(TABLE),
        "mode": "upsert",
        "create": True,
    }
    return (
        f"name: {SINK}\ntopic: {TOPIC}\nformat: avro\nsink: {json.dumps(sink)}\n"
        "batching: {max_rows: 100}\ncommit_interval: 0\n"
        f"errors: {{tolerance: {tolerance}}}\n"
    )


def publish(directory: Path, null_keys: dict[int, str]) -> None:
    """Put ``ROWS`` orders on ``TOPIC`` (offset i is order i), keyed by ``shop, id``; row
    ``i`` of ``null_keys`` has a null in that key column (``both``: in both)."""
    lines = ["shop,id,name"]
    for i in range(ROWS):
        null = null_keys.get(i)
        shop = "" if null in ("shop", "both") else f"s{i % 3}"
        key = "" if null in ("id", "both") else str(i)
        lines.append(f"{shop},{key},n{i}")
    (directory / "in").mkdir()
    (directory / "in" / "orders.csv").write_text("\n".join(lines) + "\n")
    (directory / "publish.yaml").write_text(PUBLISH)
    published = omconnect("run", "publish.yaml", "--once", cwd=directory)
    assert published.returncode == 0, published.stderr


def stored_positions(database: SqlDatabase) -> list[tuple[str, str, int, int]]:
    """The sink's positions table rows for ``TABLE``: pipeline, topic, partition, next
    offset."""
    with database.engine.connect() as connection:
        if not sa.inspect(connection).has_table(POSITIONS_TABLE, schema=database.schema):
            return []
        rows = connection.execute(
            sa.text(
                "SELECT pipeline, topic, topic_partition, next_offset FROM "
                f"{quoted_table(database, POSITIONS_TABLE)} WHERE target_table = :target"
            ),
            {"target": database.table(TABLE)},
        ).all()
    return sorted((str(p), str(t), int(n), int(o)) for p, t, n, o in rows)


def group_offsets(directory: Path) -> list[int]:
    """The offsets the sink pipeline's consumer group committed (``omconnect offsets
    list``)."""
    listed = omconnect("offsets", "list", "sink.yaml", cwd=directory)
    assert listed.returncode == 0, listed.stderr
    entries = [json.loads(line) for line in listed.stdout.splitlines() if line.strip()]
    return [int(e["offset"]["offset"]) for e in entries if e["kind"] == "sink"]


def table_rows(database: SqlDatabase) -> dict[tuple[str, int], str]:
    table = read_table(database)
    return {
        (shop, key): name
        for shop, key, name in zip(
            table.column("shop").to_pylist(),
            table.column("id").to_pylist(),
            table.column("name").to_pylist(),
            strict=True,
        )
    }


NULL_KEYS = {0: "id", 150: "shop", 299: "both", 420: "id", 599: "id"}


def test_tolerance_all_dead_letters_null_keys_and_writes_the_rest_once(
    sql_database: SqlDatabase, tmp_path: Path
) -> None:
    publish(tmp_path, NULL_KEYS)
    (tmp_path / "sink.yaml").write_text(sink_pipeline(sql_database, "all"))
    ran = omconnect("run", "sink.yaml", "--once", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr

    expected = {(f"s{i % 3}", i): f"n{i}" for i in range(ROWS) if i not in NULL_KEYS}
    assert table_rows(sql_database) == expected

    dead = tail_topic(f"{TOPIC}.dlq", tmp_path)
    by_name = {item["value"]["name"]: item for item in dead}
    assert sorted(by_name) == sorted(f"n{i}" for i in NULL_KEYS), "one dead letter per record"
    for i, null in NULL_KEYS.items():
        headers = by_name[f"n{i}"]["headers"]
        column = "shop" if null in ("shop", "both") else "id"  # the first null of the key
        reason = headers["omconnect.error.reason"]
        assert f"table {sql_database.table(TABLE)}: key column '{column}' is null" in reason
        assert "mode: upsert" in reason and "\n" not in reason
        assert headers["omconnect.error.stage"] == "sink"
        assert headers["omconnect.error.pipeline"] == SINK
        position = json.loads(headers["omconnect.error.position"])["position"]
        assert position["partition"] == {"topic": TOPIC, "partition": 0}

    # Stored once, covering every record: the dead-lettered ones too.
    assert stored_positions(sql_database) == [(SINK, TOPIC, 0, ROWS)]
    assert group_offsets(tmp_path) == [ROWS]

    again = omconnect("run", "sink.yaml", "--once", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert len(tail_topic(f"{TOPIC}.dlq", tmp_path)) == len(NULL_KEYS), "dead-lettered twice"
    assert table_rows(sql_database) == expected
    assert stored_positions(sql_database) == [(SINK, TOPIC, 0, ROWS)]


NULL_AT = 350


@pytest.mark.parametrize("null", ["id", "shop"])
def test_tolerance_none_stops_at_a_null_key_naming_pipeline_table_and_column(
    sql_database: SqlDatabase, tmp_path: Path, null: str
) -> None:
    publish(tmp_path, {NULL_AT: null})
    (tmp_path / "sink.yaml").write_text(sink_pipeline(sql_database, "none"))
    for _run in range(2):  # a second run stops at the same record, having stored nothing more
        ran = omconnect("run", "sink.yaml", "--once", cwd=tmp_path)
        assert ran.returncode == 1, ran.stderr
        assert "Traceback" not in ran.stderr
        errors = [line for line in ran.stderr.splitlines() if " ERROR " in line]
        assert len(errors) == 1, ran.stderr
        (error,) = errors
        assert f"pipeline {SINK} failed" in error and "errors.tolerance is none" in error
        assert f"table {sql_database.table(TABLE)}: key column '{null}' is null" in error

        # The batches before the bad record's were committed (commit_interval: 0), and
        # nothing from the record on: not in the table, nor in either kind of position.
        positions = stored_positions(sql_database)
        assert len(positions) == 1, positions
        ((_pipeline, _topic, _partition, stored),) = positions
        assert 0 < stored <= NULL_AT, f"stored position {stored}"
        assert group_offsets(tmp_path) == [stored]
        assert table_rows(sql_database) == {(f"s{i % 3}", i): f"n{i}" for i in range(stored)}
        assert topic_messages(tmp_path, f"{TOPIC}.dlq") == 0

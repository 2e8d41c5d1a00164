"""Records whose key has a null, upserted by the sql sink in real ``omconnect run`` processes
on every dialect: with ``errors.tolerance: all`` each goes to the dead letter topic with a
reason naming the table and the null key column, every other record of its batch is written,
and the positions are stored once (a second run finds nothing to do); with ``none`` the run
stops with one line naming the pipeline, the table and the key column, and no position past
the record is stored, in the table or in the consumer group.

The same for ``json`` messages of every shape on one topic: keyed, without a message key but
with the key in the value (keyed by it and written), with the key only in the message key,
with a null key field, with a value that is not an object (refused by the converter).

Records of a schema without a column ``key:`` names (that the table has) and records with no
key at all are dead-lettered too, not the run failed.

And null keys landed without a broker (``broker: none``, the csv source's batches straight
into the sink): the same dead letters, or the same one-line stop and nothing past it."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from omconnect.runtime.brokers import open_broker
from omconnect.schemas.message_batch import MessageBatch
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


def sink_options(database: SqlDatabase, key: list[str] | None = None) -> dict:
    """The sql sink upserting into ``TABLE`` (created), keyed by ``key`` (by default by the
    records' key)."""
    return {
        "connector": "sql",
        "url": database.url,
        "table": database.table(TABLE),
        "mode": "upsert",
        "create": True,
        **({"key": key} if key is not None else {}),
    }


def sink_pipeline(
    database: SqlDatabase,
    tolerance: str,
    key: list[str] | None = None,
    message_format: str = "avro",
) -> str:
    """The pipeline upserting ``TOPIC`` (keyed by ``key``, by default by its messages' key,
    ``shop, id``) into ``TABLE``, flushing after every consumed batch of at most 100
    records."""
    sink = sink_options(database, key)
    return (
        f"name: {SINK}\ntopic: {TOPIC}\nformat: {message_format}\nsink: {json.dumps(sink)}\n"
        "batching: {max_rows: 100}\ncommit_interval: 0\n"
        f"errors: {{tolerance: {tolerance}}}\n"
    )


def publish(directory: Path, null_keys: dict[int, str]) -> None:
    """Put ``ROWS`` orders on ``TOPIC`` (offset i is order i), keyed by ``shop, id``; row
    ``i`` of ``null_keys`` has a null in that key column (``both``: in both)."""
    write_orders(directory, null_keys)
    (directory / "publish.yaml").write_text(PUBLISH)
    published = omconnect("run", "publish.yaml", "--once", cwd=directory)
    assert published.returncode == 0, published.stderr


UNKEYED = 50

PUBLISH_UNKEYED = f"""
name: publish-unkeyed
source:
  connector: csv
  path: in/unkeyed/orders.csv
  batch_size: 100
  columns: {{shop: string, name: string}}
topic: {TOPIC}
format: avro
"""


def publish_unkeyed(directory: Path) -> None:
    """Put ``UNKEYED`` more orders on ``TOPIC`` (after those of ``publish``), of a schema
    with no ``id`` column and without a message key."""
    lines = ["shop,name"] + [f"s{i % 3},u{i}" for i in range(UNKEYED)]
    (directory / "in" / "unkeyed").mkdir(parents=True)
    # orders.csv, as the file of ``publish``: a file's name names its records' schema.
    (directory / "in" / "unkeyed" / "orders.csv").write_text("\n".join(lines) + "\n")
    (directory / "publish-unkeyed.yaml").write_text(PUBLISH_UNKEYED)
    published = omconnect("run", "publish-unkeyed.yaml", "--once", cwd=directory)
    assert published.returncode == 0, published.stderr


def produce(directory: Path, messages: list[tuple[bytes | None, bytes]]) -> None:
    """Put ``messages`` (key, value bodies) on ``TOPIC`` of the embedded broker as they are."""

    async def send() -> None:
        broker = open_broker(f"embedded://{directory / '.omconnect'}")
        producer = await broker.producer()
        keys = [key for key, _ in messages]
        values = [value for _, value in messages]
        await producer.send(TOPIC, MessageBatch.build(values=values, keys=keys))
        await producer.close()
        await broker.close()

    asyncio.run(send())


def stopped_run(directory: Path) -> str:
    """Run ``sink.yaml``, which must stop under ``errors.tolerance: none``: its one error
    line, which names the pipeline (no traceback)."""
    ran = omconnect("run", "sink.yaml", "--once", cwd=directory)
    assert ran.returncode == 1, ran.stderr
    assert "Traceback" not in ran.stderr
    (error,) = [line for line in ran.stderr.splitlines() if " ERROR " in line]
    assert f"pipeline {SINK} failed" in error and "errors.tolerance is none" in error
    return error


def dead_letters(directory: Path) -> list[dict]:
    if topic_messages(directory, f"{TOPIC}.dlq") == 0:
        return []
    return tail_topic(f"{TOPIC}.dlq", directory)


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
        error = stopped_run(tmp_path)
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


def test_records_without_the_key_column_are_dead_lettered_naming_it(
    sql_database: SqlDatabase, tmp_path: Path
) -> None:
    publish(tmp_path, {})
    publish_unkeyed(tmp_path)  # offsets ROWS on: no id column, no message key
    (tmp_path / "sink.yaml").write_text(sink_pipeline(sql_database, "all", key=["shop", "id"]))
    ran = omconnect("run", "sink.yaml", "--once", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr

    assert table_rows(sql_database) == {(f"s{i % 3}", i): f"n{i}" for i in range(ROWS)}
    dead = dead_letters(tmp_path)
    assert sorted(item["value"]["name"] for item in dead) == sorted(f"u{i}" for i in range(UNKEYED))
    for item in dead:
        headers = item["headers"]
        reason = headers["omconnect.error.reason"]
        assert f"table {sql_database.table(TABLE)}: key column 'id' is not in the" in reason
        assert headers["omconnect.error.stage"] == "sink"
    assert stored_positions(sql_database) == [(SINK, TOPIC, 0, ROWS + UNKEYED)]


def test_tolerance_none_stops_at_a_record_without_the_key_column(
    sql_database: SqlDatabase, tmp_path: Path
) -> None:
    publish(tmp_path, {})
    publish_unkeyed(tmp_path)
    (tmp_path / "sink.yaml").write_text(sink_pipeline(sql_database, "none", key=["shop", "id"]))
    error = stopped_run(tmp_path)
    assert f"table {sql_database.table(TABLE)}: key column 'id' is not in the" in error
    ((_pipeline, _topic, _partition, stored),) = stored_positions(sql_database)
    assert 0 < stored <= ROWS, f"stored position {stored}"
    assert table_rows(sql_database) == {(f"s{i % 3}", i): f"n{i}" for i in range(stored)}
    assert dead_letters(tmp_path) == []


# ``json`` messages of every shape, as (message key, value) bodies, in offset order.
SHAPES: list[tuple[bytes | None, bytes]] = [
    (b'{"shop": "s0", "id": 0}', b'{"shop": "s0", "id": 0, "name": "keyed"}'),
    (None, b'{"shop": "s1", "id": 1, "name": "no message key"}'),
    (b'{"shop": "s2", "id": 2}', b'{"name": "key only in the message key"}'),
    (b'{"shop": "s3", "id": null}', b'{"shop": "s3", "id": null, "name": "null id"}'),
    (None, b'{"shop": "s4", "name": "no id at all"}'),
    (b'{"shop": "s5", "id": 5}', b"42"),
    (b'{"shop": "s6", "id": 6}', b'{"shop": "s6", "id": 6, "name": "keyed again"}'),
]
NOT_AN_OBJECT = 5  # the offset of SHAPES whose value the converter refuses


def test_json_messages_of_every_shape_are_written_or_dead_lettered(
    sql_database: SqlDatabase, tmp_path: Path
) -> None:
    produce(tmp_path, SHAPES)
    sink = sink_pipeline(sql_database, "all", key=["shop", "id"], message_format="json")
    (tmp_path / "sink.yaml").write_text(sink)
    ran = omconnect("run", "sink.yaml", "--once", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr

    assert table_rows(sql_database) == {
        ("s0", 0): "keyed",
        ("s1", 1): "no message key",
        ("s2", 2): "key only in the message key",
        ("s6", 6): "keyed again",
    }
    dead = dead_letters(tmp_path)
    unkeyable = [item for item in dead if item["headers"]["omconnect.error.stage"] == "sink"]
    assert sorted(item["value"]["name"] for item in unkeyable) == ["no id at all", "null id"]
    for item in unkeyable:
        reason = item["headers"]["omconnect.error.reason"]
        assert f"table {sql_database.table(TABLE)}: key column 'id' is null" in reason
    (not_an_object,) = [item for item in dead if item not in unkeyable]
    assert not_an_object["value"] == 42
    assert not_an_object["headers"]["omconnect.error.stage"] == "convert"
    assert stored_positions(sql_database) == [(SINK, TOPIC, 0, len(SHAPES))]


def test_tolerance_none_stops_at_the_first_json_message_that_cannot_be_keyed(
    sql_database: SqlDatabase, tmp_path: Path
) -> None:
    # Without the value that is not an object, which its decoding (before the sink) refuses.
    produce(tmp_path, SHAPES[:NOT_AN_OBJECT])
    sink = sink_pipeline(sql_database, "none", key=["shop", "id"], message_format="json")
    (tmp_path / "sink.yaml").write_text(sink)
    error = stopped_run(tmp_path)
    assert f"table {sql_database.table(TABLE)}: key column 'id' is null" in error
    assert stored_positions(sql_database) == []  # the messages before it were in its batch
    assert dead_letters(tmp_path) == []


def test_a_topic_without_keys_is_dead_lettered_under_tolerance_all(
    postgres_database: SqlDatabase, tmp_path: Path
) -> None:
    publish_unkeyed(tmp_path)  # no message key, no key field, and no key: in the sink
    (tmp_path / "sink.yaml").write_text(sink_pipeline(postgres_database, "all"))
    ran = omconnect("run", "sink.yaml", "--once", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    dead = dead_letters(tmp_path)
    assert len(dead) == UNKEYED
    reason = dead[0]["headers"]["omconnect.error.reason"]
    assert f"table {postgres_database.table(TABLE)}: the records have no key" in reason
    assert stored_positions(postgres_database) == [(SINK, TOPIC, 0, UNKEYED)]


def direct_pipeline(database: SqlDatabase, tolerance: str) -> str:
    """``in/orders.csv`` upserted into ``TABLE`` without a broker (``broker: none``): the
    sink takes the source's batches in the same process, at most 100 rows at a time, and
    flushes after each."""
    sink = sink_options(database)
    source = PUBLISH.split("source:\n", 1)[1].split("topic:", 1)[0]
    return (
        f"name: {SINK}\nbroker: none\nsource:\n{source}topic: {TOPIC}\nsink: {json.dumps(sink)}\n"
        "batching: {max_rows: 100}\ncommit_interval: 0\n"
        f"errors: {{tolerance: {tolerance}}}\n"
    )


def write_orders(directory: Path, null_keys: dict[int, str]) -> None:
    """``in/orders.csv``: ``ROWS`` orders, row ``i`` of ``null_keys`` with a null in that key
    column (``both``: in both)."""
    lines = ["shop,id,name"]
    for i in range(ROWS):
        null = null_keys.get(i)
        shop = "" if null in ("shop", "both") else f"s{i % 3}"
        key = "" if null in ("id", "both") else str(i)
        lines.append(f"{shop},{key},n{i}")
    (directory / "in").mkdir(exist_ok=True)
    (directory / "in" / "orders.csv").write_text("\n".join(lines) + "\n")


def test_without_a_broker_null_keys_are_dead_lettered_and_the_rest_written_once(
    sql_database: SqlDatabase, tmp_path: Path
) -> None:
    """``broker: none``: the bad records go to the dead letter topic of the state directory's
    embedded broker, every other row lands, and a second run has nothing to do."""
    write_orders(tmp_path, NULL_KEYS)
    (tmp_path / "sink.yaml").write_text(direct_pipeline(sql_database, "all"))
    expected = {(f"s{i % 3}", i): f"n{i}" for i in range(ROWS) if i not in NULL_KEYS}
    for _run in range(2):
        ran = omconnect("run", "sink.yaml", "--once", cwd=tmp_path)
        assert ran.returncode == 0, ran.stderr
        assert table_rows(sql_database) == expected
        dead = dead_letters(tmp_path)
        assert sorted(item["value"]["name"] for item in dead) == sorted(f"n{i}" for i in NULL_KEYS)
        for item in dead:
            reason = item["headers"]["omconnect.error.reason"]
            assert f"table {sql_database.table(TABLE)}: key column" in reason
            assert item["headers"]["omconnect.error.stage"] == "sink"
        assert stored_positions(sql_database) == [(SINK, TOPIC, 0, ROWS)]


def test_without_a_broker_tolerance_none_stops_at_a_null_key_and_writes_nothing_past_it(
    sql_database: SqlDatabase, tmp_path: Path
) -> None:
    write_orders(tmp_path, {NULL_AT: "id"})
    (tmp_path / "sink.yaml").write_text(direct_pipeline(sql_database, "none"))
    for _run in range(2):  # the second run reads on from the source's position, stops again
        error = stopped_run(tmp_path)
        assert f"table {sql_database.table(TABLE)}: key column 'id' is null" in error
        written = table_rows(sql_database)
        assert 0 < len(written) <= NULL_AT, f"{len(written)} rows written"
        assert written == {(f"s{i % 3}", i): f"n{i}" for i in range(len(written))}
        # No dead letter: the embedded broker they would go to was never opened.
        assert not (tmp_path / ".omconnect" / "broker.sqlite").exists()

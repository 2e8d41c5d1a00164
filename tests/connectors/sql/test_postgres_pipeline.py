"""``pipelines/postgres-to-topic.yaml`` against the machine's PostgreSQL: the first run
publishes the whole table, the next one only the rows added since."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.support.failing_pipeline import topic_messages
from tests.support.omconnect_process import REPO, omconnect, tail_topic
from tests.support.sql_databases import SqlDatabase

PIPELINE = "pipelines/postgres-to-topic.yaml"


def test_postgres_to_topic_snapshot_then_incremental(
    postgres_database: SqlDatabase, tmp_path: Path
) -> None:
    schema = postgres_database.schema
    postgres_database.execute(
        f'CREATE TABLE "{schema}".orders (order_id bigint PRIMARY KEY, customer text, '
        "amount numeric(10,2))",
        f"INSERT INTO \"{schema}\".orders SELECT i, 'c' || i, i * 1.25 "
        "FROM generate_series(1, 1000) i",
    )
    (tmp_path / "pipelines").mkdir()
    shutil.copy(REPO / PIPELINE, tmp_path / PIPELINE)
    # The one variable: this test's schema first in the search path.
    url = f"{postgres_database.url}?options=-csearch_path%3D{schema}"
    env = {"POSTGRES_URL": url}
    topic = f"orders-from-postgres.{schema}.orders"

    checked = omconnect("validate", PIPELINE, cwd=tmp_path, env=env)
    assert checked.returncode == 0, checked.stderr
    first = omconnect("run", PIPELINE, "--once", cwd=tmp_path, env=env)
    assert first.returncode == 0, first.stderr
    assert topic_messages(tmp_path, topic) == 1000

    postgres_database.execute(
        f"INSERT INTO \"{schema}\".orders SELECT i, 'c' || i, i * 1.25 "
        "FROM generate_series(1001, 1010) i"
    )
    second = omconnect("run", PIPELINE, "--once", cwd=tmp_path, env=env)
    assert second.returncode == 0, second.stderr
    messages = tail_topic(topic, tmp_path)
    assert sorted(m["value"]["order_id"] for m in messages) == list(range(1, 1011))
    assert messages[-1]["value"]["amount"] in ("1262.50", 1262.5)

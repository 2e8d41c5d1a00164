"""Every pipeline file in pipelines/ validates and runs to completion with ``--once``."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pyarrow.dataset as ds
import pytest
import sqlalchemy as sa

from tests.support.omconnect_process import REPO, omconnect
from tests.support.sql_databases import open_database, sqlalchemy_url

PIPELINES = sorted((REPO / "pipelines").glob("*.yaml"))


def test_there_are_pipelines() -> None:
    assert PIPELINES, "pipelines/ must hold at least the quick start"


# What a pipeline's header says to run first: the database pipelines move the quick start's
# orders into PostgreSQL and back out.
RUN_FIRST = {
    "topic-to-postgres.yaml": ["quickstart.yaml"],
    "postgres-to-topic.yaml": ["quickstart.yaml", "topic-to-postgres.yaml"],
    "postgres-cdc.yaml": ["quickstart.yaml", "topic-to-postgres.yaml"],
}


@pytest.fixture
def postgres_url(tmp_path: Path) -> Iterator[str]:
    """``POSTGRES_URL`` (the one variable the database pipelines take) for a fresh
    schema of the machine's PostgreSQL, first in the search path."""
    for database in open_database("postgresql", tmp_path):
        yield f"{database.url}?options=-csearch_path%3D{database.schema}"


@pytest.fixture
def cdc_slot(postgres_url: str) -> Iterator[str]:
    """``CDC_SLOT`` for the CDC pipeline: a slot of this test's own, dropped after (a slot
    left behind would keep WAL on the server), with its publication."""
    slot = f"omc_test_{uuid.uuid4().hex[:12]}"
    yield slot
    engine = sa.create_engine(sqlalchemy_url(postgres_url.split("?")[0]))
    with engine.connect() as connection:
        connection.execute(
            sa.text(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                "WHERE slot_name = :slot AND NOT active"
            ),
            {"slot": slot},
        )
        connection.execute(sa.text(f'DROP PUBLICATION IF EXISTS "{slot}"'))
        connection.commit()
    engine.dispose()


@pytest.mark.parametrize("pipeline", PIPELINES, ids=lambda p: p.name)
def test_pipeline_validates_and_runs_once(
    pipeline: Path, repo_copy: Path, postgres_url: str, cdc_slot: str
) -> None:
    env = {"POSTGRES_URL": postgres_url, "CDC_SLOT": cdc_slot}
    for first in RUN_FIRST.get(pipeline.name, []):
        ran = omconnect("run", f"pipelines/{first}", "--once", cwd=repo_copy, env=env)
        assert ran.returncode == 0, ran.stderr
    relative = pipeline.relative_to(REPO)
    checked = omconnect("validate", str(relative), cwd=repo_copy, env=env)
    assert checked.returncode == 0, checked.stderr
    ran = omconnect("run", str(relative), "--once", cwd=repo_copy, env=env)
    assert ran.returncode == 0, ran.stderr


def test_quickstart_delivers_every_positive_order_to_parquet(repo_copy: Path) -> None:
    import pyarrow.csv as pacsv

    ran = omconnect("run", "pipelines/quickstart.yaml", "--once", cwd=repo_copy)
    assert ran.returncode == 0, ran.stderr
    source = pacsv.read_csv(repo_copy / "pipelines/data/orders.csv")
    expected = sorted(
        i
        for i, a in zip(source["order_id"].to_pylist(), source["amount"].to_pylist(), strict=True)
        if a > 0
    )
    written = ds.dataset(repo_copy / "out/orders", format="parquet").to_table()
    assert sorted(written["order_id"].to_pylist()) == expected
    assert set(written.column_names) == set(source.column_names)

    again = omconnect("run", "pipelines/quickstart.yaml", "--once", cwd=repo_copy)
    assert again.returncode == 0, again.stderr
    rewritten = ds.dataset(repo_copy / "out/orders", format="parquet").to_table()
    assert rewritten.num_rows == len(expected), "a second run must not read anything twice"

    tail = omconnect(
        "topics", "tail", "orders", "--from-beginning", "--max", "2", "--no-follow", cwd=repo_copy
    )
    assert tail.returncode == 0, tail.stderr
    import json

    lines = [json.loads(line) for line in tail.stdout.splitlines()]
    assert [item["value"]["order_id"] for item in lines] == [1, 2]
    assert lines[0]["topic"] == "orders" and lines[0]["offset"] == 0
    # The OpenMessaging message id: the stable id the source gave the record.
    assert lines[0]["message_id"] == lines[0]["headers"]["oms.message_id"]
    assert lines[0]["message_id"] != lines[1]["message_id"]

"""Fixtures of the state tests: one test body for every state backend and offset store.

``state`` is a pipeline's ``state:`` setting for each backend in turn: a fresh directory
(SQLite files and lock files), and a fresh schema in the machine's PostgreSQL
(``tests.support.sql_databases``), dropped after the test. PostgreSQL not running fails the
test with the command that starts it.

``offsets_at`` is where an offset store lives, for each store in turn: those two states, and
the stores in a broker (``offsets: broker``): a compacted topic of its own on the session's
Tansu (``tests.support.kafka_server``, ``transactions=false``: Tansu 0.6 shows aborted
transactions to readers), and a key-value bucket of its own on the machine's NATS server
(``tests.support.nats_server``), deleted after the test.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.state.offset_stores import NATS, OffsetsAt, delete_nats_bucket
from tests.support.kafka_server import shared_kafka_url
from tests.support.sql_databases import open_database

BACKENDS = ("directory", "postgresql")
OFFSET_STORES = (*BACKENDS, "kafka-topic", "nats-kv")


@pytest.fixture
def postgres_state(tmp_path: Path) -> Iterator[str]:
    """The ``state:`` URL of a fresh Postgres state: a schema of its own, dropped after."""
    for database in open_database("postgresql", tmp_path):
        yield f"{database.url}?schema={database.schema}"


@pytest.fixture(params=BACKENDS)
def state(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh ``state:`` of each backend in turn."""
    if request.param == "directory":
        return str(tmp_path / "state")
    return str(request.getfixturevalue("postgres_state"))


@pytest.fixture(params=OFFSET_STORES)
def offsets_at(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OffsetsAt]:
    """Where a fresh offset store lives, for each store in turn."""
    if request.param == "directory":
        yield OffsetsAt(str(tmp_path / "state"))
    elif request.param == "postgresql":
        yield OffsetsAt(str(request.getfixturevalue("postgres_state")))
    elif request.param == "kafka-topic":
        topic = f"__omconnect-offsets-test-{uuid.uuid4().hex[:12]}"
        yield OffsetsAt(shared_kafka_url(), topic, atomic=False)
    else:
        bucket = f"omconnect-offsets-test-{uuid.uuid4().hex[:12]}"
        yield OffsetsAt(f"nats://{NATS.address_or_fail()}", bucket, atomic=False)
        asyncio.run(delete_nats_bucket(bucket))

"""Topic settings of the embedded broker: stored at creation, kept across reopening (old files
included), and retention by size and by age trimming whole old segments."""

from __future__ import annotations

import logging
import sqlite3
import time
from pathlib import Path

import pytest

from omconnect.runtime.brokers import Consumer
from omconnect.runtime.brokers.base import TopicInfo, TopicSettings
from omconnect.runtime.brokers.embedded import EmbeddedBroker

from .conftest import numbered_messages, run

# The tables of a broker file written before topic settings and transactions existed.
_FORMAT_1_FILE = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE topics (name TEXT PRIMARY KEY, partitions INTEGER NOT NULL,
    created_ms INTEGER NOT NULL);
CREATE TABLE partitions (topic TEXT NOT NULL, partition INTEGER NOT NULL,
    start_offset INTEGER NOT NULL, next_offset INTEGER NOT NULL,
    PRIMARY KEY (topic, partition)) WITHOUT ROWID;
CREATE TABLE segments (topic TEXT NOT NULL, partition INTEGER NOT NULL,
    base_offset INTEGER NOT NULL, count INTEGER NOT NULL, max_timestamp INTEGER NOT NULL,
    body BLOB NOT NULL, PRIMARY KEY (topic, partition, base_offset));
CREATE TABLE group_offsets (group_id TEXT NOT NULL, topic TEXT NOT NULL,
    partition INTEGER NOT NULL, next_offset INTEGER NOT NULL,
    PRIMARY KEY (group_id, topic, partition)) WITHOUT ROWID;
INSERT INTO meta VALUES ('format', '1');
INSERT INTO topics VALUES ('old', 2, 1700000000000);
INSERT INTO partitions VALUES ('old', 0, 0, 0), ('old', 1, 0, 0);
"""


async def _offsets(consumer: Consumer, timeout: float = 1.0) -> list[int]:
    """The offsets the consumer returns until a poll comes back empty."""
    offsets: list[int] = []
    while batches := await consumer.poll(10_000, timeout):
        timeout = 0.1
        for batch in batches:
            assert batch.messages.offsets is not None
            offsets += batch.messages.offsets.to_pylist()
    return offsets


def _segment_bytes(log: Path, topic: str) -> list[int]:
    connection = sqlite3.connect(log)
    try:
        rows = connection.execute(
            "SELECT length(body) FROM segments WHERE topic = ? ORDER BY base_offset", (topic,)
        ).fetchall()
        return [int(size) for (size,) in rows]
    finally:
        connection.close()


def test_topic_settings_are_kept_across_reopening(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = TopicSettings(partitions=3, compacted=True, retention_ms=86_400_000)

    async def create() -> None:
        broker = EmbeddedBroker(tmp_path)
        with caplog.at_level(logging.WARNING, "omconnect.broker.embedded"):
            await broker.create_topic("facts", settings)
        await broker.create_topic("sized", TopicSettings(retention_bytes=1 << 20))
        await (await broker.producer()).send("auto", numbered_messages(0, 1))
        await broker.close()

    async def reopen() -> tuple[list[TopicInfo], list[TopicSettings | None]]:
        broker = EmbeddedBroker(tmp_path)
        await broker.create_topic("facts", TopicSettings(partitions=5))  # exists: unchanged
        found = [await broker.topic_settings(n) for n in ("facts", "sized", "auto", "none")]
        topics = await broker.list_topics()
        await broker.close()
        return topics, found

    run(create())
    assert "does not compact" in caplog.text
    topics, found = run(reopen())
    assert found == [settings, TopicSettings(retention_bytes=1 << 20), TopicSettings(), None]
    assert topics == [TopicInfo("auto", 1, 1), TopicInfo("facts", 3, 0), TopicInfo("sized", 1, 0)]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (TopicSettings(partitions=0), "at least one partition"),
        (TopicSettings(retention_ms=0), "retention_ms must be positive"),
        (TopicSettings(retention_bytes=-1), "retention_bytes must be positive"),
    ],
)
def test_bad_topic_settings_are_refused(
    tmp_path: Path, settings: TopicSettings, message: str
) -> None:
    async def body() -> None:
        broker = EmbeddedBroker(tmp_path)
        try:
            with pytest.raises(ValueError, match=message):
                await broker.create_topic("t", settings)
        finally:
            await broker.close()

    run(body())


def test_a_file_from_before_topic_settings_opens_and_works(tmp_path: Path) -> None:
    connection = sqlite3.connect(tmp_path / "broker.sqlite")
    connection.executescript(_FORMAT_1_FILE)
    connection.close()

    async def body() -> list[int]:
        broker = EmbeddedBroker(tmp_path)
        assert await broker.topic_settings("old") == TopicSettings(partitions=2)
        producer = await broker.producer()
        await producer.send("old", numbered_messages(0, 3), partition=1)
        offsets = await _offsets(await broker.consumer("g", ["old"]))
        await broker.close()
        return offsets

    assert run(body()) == [0, 1, 2]


def test_retention_by_size_drops_the_oldest_segments_and_readers_move_on(tmp_path: Path) -> None:
    log = tmp_path / "broker.sqlite"

    async def body() -> None:
        broker = EmbeddedBroker(tmp_path)
        await (await broker.producer()).send("probe", numbered_messages(0, 100))
        (segment,) = _segment_bytes(log, "probe")
        await broker.create_topic("t", TopicSettings(retention_bytes=segment * 7 // 2))
        reader = await broker.consumer("reader", ["t"])
        producer = await broker.producer()
        await producer.send("t", numbered_messages(0, 100))
        assert await _offsets(reader) == list(range(100))
        for n in range(1, 10):
            await producer.send("t", numbered_messages(n * 100, 100))
        assert len(_segment_bytes(log, "t")) == 10  # the next check is seconds away
        # A producer's first send to a topic enforces its retention.
        await (await broker.producer()).send("t", numbered_messages(1000, 100))
        assert len(_segment_bytes(log, "t")) == 3
        assert [(t.name, t.messages) for t in await broker.list_topics()] == [
            ("probe", 100),
            ("t", 300),
        ]
        assert await _offsets(reader) == list(range(800, 1100))
        assert await _offsets(await broker.consumer("newcomer", ["t"])) == list(range(800, 1100))
        await broker.close()

    run(body())


def test_retention_by_age_counts_from_the_append_not_the_message_time(tmp_path: Path) -> None:
    async def body() -> None:
        broker = EmbeddedBroker(tmp_path)
        await broker.create_topic("t", TopicSettings(partitions=2, retention_ms=500))
        producer = await broker.producer()
        # The messages were born in 2023, long before the retention window: they stay until
        # they have been in the log for 500 ms.
        for n in range(4):
            await producer.send("t", numbered_messages(n * 10, 10), partition=n % 2)
        time.sleep(0.6)
        await (await broker.producer()).send("t", numbered_messages(40, 10), partition=0)
        assert [(t.name, t.messages) for t in await broker.list_topics()] == [("t", 10)]
        assert await _offsets(await broker.consumer("g", ["t"])) == list(range(20, 30))
        await broker.close()

    run(body())


def test_retention_never_trims_an_open_transaction(tmp_path: Path) -> None:
    async def body() -> None:
        broker = EmbeddedBroker(tmp_path)
        await broker.create_topic("t", TopicSettings(retention_ms=300))
        plain = await broker.producer()
        await plain.send("t", numbered_messages(0, 5))
        transactional = await broker.producer()
        await transactional.begin_transaction()
        await transactional.send("t", numbered_messages(5, 5))
        time.sleep(0.4)
        await (await broker.producer()).send("t", numbered_messages(10, 5))
        assert [(t.name, t.messages) for t in await broker.list_topics()] == [("t", 10)]
        await transactional.commit_transaction()
        assert await _offsets(await broker.consumer("g", ["t"])) == list(range(5, 15))
        await broker.close()

    run(body())

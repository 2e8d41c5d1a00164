"""What the embedded broker adds to the contract: its URL options, segment layout, trimming
and where a new group starts."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pyarrow as pa
import pytest

from omconnect.runtime.brokers import ConsumedBatch, open_broker
from omconnect.runtime.brokers.base import TopicSettings
from omconnect.runtime.brokers.embedded import EmbeddedBroker
from omconnect.schemas.message_batch import MessageBatch

from .conftest import numbered_messages, run


def _offsets(batches: list[ConsumedBatch]) -> list[int]:
    return [o for b in batches for o in b.messages.offsets.to_pylist()]  # type: ignore[union-attr]


def test_url_forms_open_the_same_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)

    async def body() -> None:
        relative = open_broker("embedded://.omconnect")
        producer = await relative.producer()
        await producer.send("t", numbered_messages(0, 3))
        await relative.close()
        prefixed = open_broker(f"oms:embedded://{tmp_path / '.omconnect'}?sync=full")
        assert [(t.name, t.messages) for t in await prefixed.list_topics()] == [("t", 3)]
        await prefixed.close()

    run(body())
    assert (tmp_path / ".omconnect" / "broker.sqlite").is_file()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("embedded://", "needs a directory"),
        ("embedded://x?sync=sometimes", "sync"),
        ("embedded://x?compression=gzip", "compression"),
        ("embedded://x?retention=1", "unknown embedded broker option 'retention'"),
    ],
)
def test_bad_embedded_urls_are_refused(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        open_broker(url)


@pytest.mark.parametrize("compression", ["none", "lz4", "zstd"])
def test_every_compression_round_trips(tmp_path: Path, compression: str) -> None:
    async def body() -> list[bytes]:
        broker = open_broker(f"embedded://{tmp_path}?compression={compression}")
        producer = await broker.producer()
        await producer.send("t", numbered_messages(0, 50))
        consumer = await broker.consumer("g", ["t"])
        got = await consumer.poll(100, timeout=1)
        await broker.close()
        return [v for b in got for v in b.messages.values.to_pylist()]

    assert run(body()) == [f"m{n}".encode() for n in range(50)]


def test_large_sends_are_split_into_segments_and_read_in_small_polls(tmp_path: Path) -> None:
    async def body() -> list[list[int]]:
        broker = EmbeddedBroker(tmp_path, segment_bytes=2000)
        producer = await broker.producer()
        (result,) = await producer.send("t", numbered_messages(0, 1000))
        assert (result.first_offset, result.count) == (0, 1000)
        consumer = await broker.consumer("g", ["t"])
        polls = []
        while got := await consumer.poll(37, timeout=0.05):
            polls.append(_offsets(got))
        await broker.close()
        return polls

    polls = run(body())
    connection = sqlite3.connect(tmp_path / "broker.sqlite")
    segments = connection.execute("SELECT count(*), sum(count) FROM segments").fetchone()
    connection.close()
    assert segments[0] > 5 and segments[1] == 1000
    assert all(len(p) == 37 for p in polls[:-1])
    assert [o for p in polls for o in p] == list(range(1000))


def test_one_send_to_several_partitions_is_one_segment_each(tmp_path: Path) -> None:
    async def body() -> None:
        broker = EmbeddedBroker(tmp_path)
        await broker.create_topic("t", TopicSettings(partitions=3))
        producer = await broker.producer()
        results = await producer.send("t", numbered_messages(0, 300, key_space=30))
        assert sorted(r.partition for r in results) == [0, 1, 2]
        assert sum(r.count for r in results) == 300
        await broker.close()

    run(body())
    connection = sqlite3.connect(tmp_path / "broker.sqlite")
    assert connection.execute("SELECT count(*) FROM segments").fetchone()[0] == 3
    connection.close()


def test_start_latest_skips_messages_already_there(tmp_path: Path) -> None:
    async def body() -> list[int]:
        broker = EmbeddedBroker(tmp_path)
        producer = await broker.producer()
        await producer.send("t", numbered_messages(0, 4))
        consumer = await broker.consumer("g", ["t"], start="latest")
        assert await consumer.poll(10, timeout=0.05) == []
        await producer.send("t", numbered_messages(4, 2))
        offsets = _offsets(await consumer.poll(10, timeout=1))
        await broker.close()
        return offsets

    assert run(body()) == [4, 5]


def test_delete_before_trims_whole_segments_and_moves_readers(tmp_path: Path) -> None:
    async def body() -> None:
        broker = EmbeddedBroker(tmp_path)
        producer = await broker.producer()
        for i in range(4):
            await producer.send("t", numbered_messages(i * 10, 10))
        reader = await broker.consumer("g", ["t"])
        assert _offsets(await reader.poll(5, timeout=1)) == [0, 1, 2, 3, 4]
        assert await broker.delete_before("t", 0, 25) == 25
        assert [(t.name, t.messages) for t in await broker.list_topics()] == [("t", 15)]
        assert _offsets(await reader.poll(100, timeout=1)) == list(range(25, 40))
        fresh = await broker.consumer("other", ["t"])
        assert _offsets(await fresh.poll(100, timeout=1)) == list(range(25, 40))
        assert await broker.delete_before("t", 0, 99) == 40  # never past the high-water
        await broker.close()

    run(body())
    connection = sqlite3.connect(tmp_path / "broker.sqlite")
    assert connection.execute("SELECT count(*) FROM segments").fetchone()[0] == 0
    connection.close()


def test_explicit_partition_out_of_range_is_refused(tmp_path: Path) -> None:
    async def body() -> None:
        broker = EmbeddedBroker(tmp_path)
        await broker.create_topic("t", TopicSettings(partitions=2))
        producer = await broker.producer()
        with pytest.raises(ValueError, match="partition 2 does not exist"):
            await producer.send("t", numbered_messages(0, 1), partition=2)
        await broker.close()

    run(body())


def test_a_consumer_sees_topics_created_after_it(tmp_path: Path) -> None:
    async def body() -> list[int]:
        broker = EmbeddedBroker(tmp_path)
        consumer = await broker.consumer("g", ["later"])
        assert await consumer.poll(10, timeout=0.05) == []
        producer = await broker.producer()
        await producer.send("later", numbered_messages(0, 2))
        offsets = _offsets(await consumer.poll(10, timeout=1))
        await broker.close()
        return offsets

    assert run(body()) == [0, 1]


def test_a_committed_offset_beyond_the_log_resets_to_the_start(tmp_path: Path) -> None:
    async def body() -> list[int]:
        broker = EmbeddedBroker(tmp_path)
        producer = await broker.producer()
        await producer.send("t", numbered_messages(0, 3))
        stale = await broker.consumer("g", ["t"])
        await stale.commit({("t", 0): 50})
        consumer = await broker.consumer("g", ["t"])
        offsets = _offsets(await consumer.poll(10, timeout=1))
        await broker.close()
        return offsets

    assert run(body()) == [0, 1, 2]


def test_segments_written_before_the_message_id_column_still_read() -> None:
    from omconnect.runtime.brokers.embedded._segment_codec import SegmentCodec

    older = pa.RecordBatch.from_arrays(
        [
            pa.array([b"k"], pa.binary()),
            pa.array([b"v"], pa.binary()),
            pa.array([5], pa.int64()),
            pa.array([[("h", b"1")]], pa.map_(pa.string(), pa.binary())),
        ],
        names=["key", "value", "timestamp", "headers"],
    )
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, older.schema) as writer:
        writer.write_batch(older)
    decoded = SegmentCodec.decode(sink.getvalue().to_pybytes())
    assert decoded.message_ids.to_pylist() == [None]
    assert decoded.header_dict(0) == {"h": b"1"}
    both = MessageBatch.concat([decoded, MessageBatch.build([b"w"], message_ids=["m"])])
    assert both.message_ids.to_pylist() == [None, "m"]


def test_id_runs_are_stored_as_runs_and_older_readers_still_read_the_rest() -> None:
    from omconnect.runtime.brokers.embedded._segment_codec import SegmentCodec
    from omconnect.schemas.message_ids import MessageIdRuns

    ids = MessageIdRuns.derived(["0123456789abcdef", "fedcba9876543210"], [0, 7], [3, 2])
    messages = MessageBatch.build([b"v"] * 5, keys=[b"k"] * 5, timestamps=9, message_ids=ids)
    body = SegmentCodec().encode(messages.slice(1))
    stored = pa.ipc.open_stream(pa.py_buffer(body)).read_next_batch()
    assert "message_id" not in stored.schema.names, "no string per row"
    decoded = SegmentCodec.decode(bytes(body))
    assert decoded.id_runs == ids.slice(1)
    assert decoded.message_ids.equals(ids.to_array().slice(1))
    # What a reader from before runs does with the body: every column but the ids.
    older = MessageBatch.from_table(stored)
    assert older.values.to_pylist() == [b"v"] * 4 and older.keys.to_pylist() == [b"k"] * 4
    assert older.message_ids.null_count == 4


def test_string_ids_are_stored_as_strings() -> None:
    from omconnect.runtime.brokers.embedded._segment_codec import SegmentCodec

    messages = MessageBatch.build([b"a", b"b"], message_ids=["cdc-1", None])
    decoded = SegmentCodec.decode(bytes(SegmentCodec().encode(messages)))
    assert decoded.id_runs is None and decoded.message_ids.to_pylist() == ["cdc-1", None]

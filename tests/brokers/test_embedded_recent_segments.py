"""Segments a process appended lately are read by its own consumers without the file
(``_recent_segments``): the same messages, and only what the log lets them see."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from omconnect.runtime.brokers import ConsumedBatch
from omconnect.runtime.brokers.base import TopicSettings
from omconnect.runtime.brokers.embedded import EmbeddedBroker
from omconnect.runtime.brokers.embedded._recent_segments import RecentSegments
from omconnect.runtime.brokers.embedded._segment_codec import SegmentCodec
from omconnect.schemas.message_batch import MessageBatch
from omconnect.schemas.message_ids import MessageIdRuns

from .conftest import numbered_messages, run


def _table(batches: list[ConsumedBatch]) -> pa.Table:
    """The messages read, partition after partition, in offset order."""
    ordered = sorted(batches, key=lambda b: (b.partition, b.messages.offsets[0].as_py()))
    return pa.Table.from_batches([b.messages.table for b in ordered])


class _Decodes:
    """Counts the segment bodies decoded (read from the file)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        original = SegmentCodec.decode

        def counted(body: bytes) -> MessageBatch:
            self.count += 1
            return original(body)

        monkeypatch.setattr(SegmentCodec, "decode", staticmethod(counted))


def _mixed_batches() -> list[MessageBatch]:
    """Keys, headers, null values, ids as runs and as strings, several timestamps."""
    runs = MessageIdRuns.derived(["0123456789abcdef"], [0], [40])
    return [
        MessageBatch.build(
            [f"v{n}".encode() if n % 7 else None for n in range(40)],
            keys=[f"k{n % 5}".encode() for n in range(40)],
            timestamps=1_700_000_000_000,
            headers=[{"h": str(n).encode()} for n in range(40)],
            message_ids=runs,
        ),
        MessageBatch.build(
            [b"a", b"b", b"c"], message_ids=["cdc-1", None, "cdc-3"], timestamps=[5, 6, 7]
        ),
        numbered_messages(100, 500, key_space=3),
    ]


def test_a_consumer_of_the_same_broker_reads_what_the_file_holds_without_decoding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    decodes = _Decodes(monkeypatch)

    async def body() -> tuple[pa.Table, int, pa.Table]:
        broker = EmbeddedBroker(tmp_path, segment_bytes=4000)
        await broker.create_topic("t", TopicSettings(partitions=2))
        consumer = await broker.consumer("same", ["t"])
        producer = await broker.producer()
        for batch in _mixed_batches():
            await producer.send("t", batch)
        same = []
        while got := await consumer.poll(97, timeout=0.1):
            same.extend(got)
        decoded_here = decodes.count
        await broker.close()
        # Another broker on the file (as another process would) reads the bodies.
        other = EmbeddedBroker(tmp_path)
        reader = await other.consumer("other", ["t"])
        from_file = []
        while got := await reader.poll(97, timeout=0.1):
            from_file.extend(got)
        await other.close()
        return _table(same), decoded_here, _table(from_file)

    same, decoded_here, from_file = run(body())
    assert decoded_here == 0, "the consumer of the appending broker fetched bodies"
    assert decodes.count > 5, "the other broker read the segments from the file"
    assert same.num_rows == 543
    assert same.equals(from_file, check_metadata=True)


def test_the_stored_form_is_what_the_body_decodes_to() -> None:
    codec = SegmentCodec()
    for batch in _mixed_batches():
        for messages in (batch, batch.with_offsets(10), batch.slice(1, 2)):
            stored = SegmentCodec.stored_form(messages)
            decoded = SegmentCodec.decode(bytes(codec.encode(messages)))
            assert stored.table.equals(decoded.table, check_metadata=True)
            assert stored.id_runs == decoded.id_runs


def test_an_open_transaction_stays_invisible_and_an_aborted_one_is_never_read(
    tmp_path: Path,
) -> None:
    async def body() -> list[list[bytes]]:
        broker = EmbeddedBroker(tmp_path)
        await broker.create_topic("t")
        consumer = await broker.consumer("g", ["t"])
        producer = await broker.producer()
        seen = []
        await producer.begin_transaction()
        await producer.send("t", MessageBatch.build([b"aborted"]))
        seen.append([v for b in await consumer.poll(10, timeout=0.2) for v in b.messages.values])
        await producer.abort_transaction()
        await producer.begin_transaction()
        await producer.send("t", MessageBatch.build([b"committed"]))
        seen.append([v for b in await consumer.poll(10, timeout=0.2) for v in b.messages.values])
        await producer.commit_transaction()
        seen.append([v for b in await consumer.poll(10, timeout=1) for v in b.messages.values])
        await broker.close()
        return [[v.as_py() for v in values] for values in seen]

    assert run(body()) == [[], [], [b"committed"]]


def test_only_a_bounded_amount_is_kept_and_only_while_a_consumer_is_open() -> None:
    recent = RecentSegments(max_bytes=10_000)
    batch = numbered_messages(0, 100)
    recent.put(("t", 0, 0, 1), batch)
    assert recent.get(("t", 0, 0, 1)) is None, "kept with no consumer to read it"
    recent.add_reader()
    keys = [("t", 0, n * 100, 1) for n in range(40)]
    for key in keys:
        recent.put(key, batch)
    assert 0 < recent.nbytes <= 10_000
    assert recent.get(keys[-1]) is batch and recent.get(keys[0]) is None, "oldest dropped"
    assert recent.get(("t", 0, keys[-1][2], 2)) is None, "another append at that offset"
    recent.remove_reader()
    assert recent.nbytes == 0 and recent.get(keys[-1]) is None


def test_a_producer_without_a_consumer_in_its_broker_keeps_nothing(tmp_path: Path) -> None:
    async def body() -> Any:
        broker = EmbeddedBroker(tmp_path)
        producer = await broker.producer()
        await producer.send("t", numbered_messages(0, 1000))
        kept = broker._recent.nbytes
        await broker.close()
        return kept

    assert run(body()) == 0

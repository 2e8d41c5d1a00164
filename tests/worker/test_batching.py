"""Batching by count, bytes and linger keeps every position mark on the right row."""

from __future__ import annotations

import time

import pyarrow as pa

from omconnect.runtime.worker.batching import BatchAccumulator, split
from omconnect.schemas import types as t
from omconnect.schemas.record import Position, PositionMark, RecordBatch
from omconnect.schemas.schema import Schema

SCHEMA = Schema("rows", (t.Field("id", t.int64()),))


def batch(start: int, rows: int, file: str = "a") -> RecordBatch:
    values = pa.record_batch([pa.array(range(start, start + rows), pa.int64())], names=["id"])
    mark = PositionMark(rows, Position({"file": file}, {"row": start + rows}))
    return RecordBatch(values=values, schema=SCHEMA, marks=(mark,))


def ids(batches: list[RecordBatch]) -> list[int]:
    return [i for b in batches for i in b.values.column("id").to_pylist()]


def test_split_cuts_by_rows_and_keeps_the_mark_on_the_last_piece() -> None:
    pieces = split(batch(0, 10), max_rows=4, max_bytes=1 << 30)
    assert [p.num_rows for p in pieces] == [4, 4, 2]
    assert [len(p.marks) for p in pieces] == [0, 0, 1]
    assert pieces[-1].marks[0].end_row == 2
    assert ids(pieces) == list(range(10))


def test_split_cuts_by_bytes() -> None:
    pieces = split(batch(0, 100), max_rows=1000, max_bytes=8 * 10)
    assert all(p.num_rows <= 10 for p in pieces)
    assert ids(pieces) == list(range(100))


def test_concat_shifts_marks() -> None:
    joined = RecordBatch.concat([batch(0, 3), batch(3, 2, file="b")])
    assert joined.num_rows == 5
    assert [(m.end_row, m.position.offset["row"]) for m in joined.marks] == [(3, 3), (5, 5)]
    assert [p.partition["file"] for p in joined.positions] == ["a", "b"]


def test_accumulator_holds_small_batches_until_full() -> None:
    acc = BatchAccumulator(max_rows=10, max_bytes=1 << 30, linger=60)
    assert acc.add(batch(0, 4)) == []
    assert acc.add(batch(4, 4)) == []
    ready = acc.add(batch(8, 4))
    assert [b.num_rows for b in ready] == [12]
    assert ids(ready) == list(range(12))
    assert ready[0].positions == [Position({"file": "a"}, {"row": 12})]


def test_accumulator_lets_linger_expire() -> None:
    acc = BatchAccumulator(max_rows=1000, max_bytes=1 << 30, linger=0.05)
    acc.add(batch(0, 3))
    assert not acc.due()
    time.sleep(0.06)
    assert acc.due()
    assert ids(acc.take()) == [0, 1, 2]
    assert acc.take() == []


def test_accumulator_does_not_mix_schemas() -> None:
    other = Schema("other", (t.Field("id", t.int64()),))
    acc = BatchAccumulator(max_rows=1000, max_bytes=1 << 30, linger=60)
    acc.add(batch(0, 3))
    second = batch(3, 3)
    second.schema = other
    ready = acc.add(second)
    assert [b.schema.name for b in ready] == ["rows"]
    assert [b.schema.name for b in acc.take()] == ["other"]


def test_filter_keeps_marks_covering_dropped_rows() -> None:
    b = RecordBatch.concat([batch(0, 3), batch(3, 3, file="b")])
    kept = b.filter(pa.array([True, False, False, False, False, True]))
    assert ids([kept]) == [0, 5]
    assert [m.end_row for m in kept.marks] == [1, 2]
    assert len(kept.positions) == 2

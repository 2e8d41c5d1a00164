"""``RecordBatch`` per-row columns (deletes, headers, message ids, timestamps, keys) stay
aligned with the rows through filter, slice, with_values, concat and from_records."""

from __future__ import annotations

from dataclasses import replace

import pyarrow as pa
import pytest

from omconnect.schemas import types as t
from omconnect.schemas.message_batch import HEADERS_TYPE
from omconnect.schemas.record import Position, PositionMark, Record, RecordBatch
from omconnect.schemas.schema import Schema
from omconnect.schemas.types import Field

ITEMS = Schema(
    "items",
    (Field("id", t.int64(), nullable=False), Field("name", t.string(), nullable=False)),
    key_fields=("id",),
)
KEY = Schema("items_key", (Field("id", t.int64(), nullable=False),))


def five_rows() -> RecordBatch:
    ids = [0, 1, 2, 3, 4]
    return RecordBatch(
        values=pa.record_batch(
            {"id": pa.array(ids, pa.int64()), "name": ["a", None, "c", None, "e"]}
        ),
        schema=ITEMS,
        marks=tuple(PositionMark(i + 1, Position({"f": "x"}, {"row": i + 1})) for i in ids),
        keys=pa.record_batch({"id": pa.array(ids, pa.int64())}),
        key_schema=KEY,
        timestamps=pa.array([10, 11, 12, 13, 14], pa.int64()),
        tombstones=pa.array([False, True, False, True, False]),
        row_headers=pa.array(
            [[("h", f"{i}".encode())] if i % 2 == 0 else None for i in ids], HEADERS_TYPE
        ),
        message_ids=pa.array([f"m{i}" for i in ids], pa.string()),
    )


def per_row(batch: RecordBatch) -> list[tuple[object, ...]]:
    """Every per-row column of each row, side by side."""
    assert batch.keys is not None and batch.timestamps is not None
    assert batch.row_headers is not None and batch.message_ids is not None
    return list(
        zip(
            batch.values.column("id").to_pylist(),
            batch.keys.column("id").to_pylist(),
            batch.timestamps.to_pylist(),
            batch.delete_mask().tolist(),
            batch.row_headers.to_pylist(),
            batch.message_ids.to_pylist(),
            strict=True,
        )
    )


def expected(rows: list[int]) -> list[tuple[object, ...]]:
    return [
        (i, i, 10 + i, i % 2 == 1, [("h", f"{i}".encode())] if i % 2 == 0 else None, f"m{i}")
        for i in rows
    ]


def test_filter_keeps_every_per_row_column_aligned() -> None:
    kept = five_rows().filter(pa.array([True, True, False, None, True]))
    assert per_row(kept) == expected([0, 1, 4])
    assert [m.end_row for m in kept.marks] == [1, 2, 2, 2, 3]


def test_slice_keeps_every_per_row_column_aligned() -> None:
    part = five_rows().slice(1, 3)
    assert per_row(part) == expected([1, 2, 3])
    assert [m.end_row for m in part.marks] == [1, 2, 3]


def test_with_values_keeps_the_per_row_columns() -> None:
    batch = five_rows()
    renamed = batch.values.rename_columns(["id", "label"])
    schema = ITEMS.with_fields([ITEMS.fields[0], Field("label", t.string())])
    changed = batch.with_values(renamed, schema)
    assert changed.values.schema.names == ["id", "label"]
    assert per_row(changed) == expected([0, 1, 2, 3, 4])


def test_delete_mask_is_all_false_without_tombstones() -> None:
    batch = RecordBatch(pa.record_batch({"id": pa.array([1, 2], pa.int64())}), KEY)
    assert batch.delete_mask().tolist() == [False, False]
    with_null = RecordBatch(batch.values, KEY, tombstones=pa.array([None, True], pa.bool_()))
    assert with_null.delete_mask().tolist() == [False, True]


def test_a_per_row_column_of_the_wrong_length_is_refused() -> None:
    with pytest.raises(ValueError, match="tombstones has 1 entries for 2 rows"):
        RecordBatch(
            pa.record_batch({"id": pa.array([1, 2], pa.int64())}),
            KEY,
            tombstones=pa.array([True]),
        )


def test_concat_fills_missing_deletes_and_headers_and_shifts_marks() -> None:
    batch = five_rows()
    plain = RecordBatch(
        values=batch.values.slice(0, 2),
        schema=ITEMS,
        marks=(PositionMark(2, Position({"f": "y"}, {"row": 2})),),
        keys=batch.keys.slice(0, 2) if batch.keys is not None else None,
        key_schema=KEY,
        timestamps=pa.array([1, 2], pa.int64()),
        message_ids=pa.array(["p0", "p1"]),
    )
    joined = RecordBatch.concat([batch, plain])
    assert joined.num_rows == 7
    assert joined.delete_mask().tolist() == [False, True, False, True, False, False, False]
    assert joined.row_headers is not None and joined.row_headers.to_pylist()[5:] == [None, None]
    assert joined.message_ids is not None and joined.message_ids.to_pylist()[5:] == ["p0", "p1"]
    assert joined.marks[-1].end_row == 7
    with pytest.raises(ValueError, match="differ in stream"):
        RecordBatch.concat([batch, replace(batch, stream="other")])
    with pytest.raises(ValueError, match="some batches have timestamps"):
        RecordBatch.concat([plain, replace(plain, timestamps=None)])


def test_from_records_turns_a_none_value_into_a_delete_of_its_key() -> None:
    records = [
        Record({"id": 1, "name": "a"}, ITEMS, headers={"trace": b"t1"}, message_id="m1"),
        Record(None, ITEMS, key={"id": 2}, headers={"op": b"d"}),
        Record({"id": 3, "name": "c"}, ITEMS, position=Position({"f": "x"}, {"row": 3})),
    ]
    [batch] = RecordBatch.from_records(records)
    assert batch.delete_mask().tolist() == [False, True, False]
    assert batch.values.to_pylist() == [
        {"id": 1, "name": "a"},
        {"id": None, "name": None},
        {"id": 3, "name": "c"},
    ]
    # The delete's key travels in explicit keys (the schema's key fields).
    assert batch.key_schema == ITEMS.key_schema()
    assert batch.key_columns() is not None
    assert batch.key_columns().to_pylist() == [{"id": 1}, {"id": 2}, {"id": 3}]
    assert batch.row_headers is not None
    assert batch.row_headers.to_pylist() == [[("trace", b"t1")], [("op", b"d")], None]
    assert batch.headers == {}
    assert batch.message_ids is not None
    assert batch.message_ids.to_pylist() == ["m1", None, None]
    assert [m.end_row for m in batch.marks] == [3]


def test_from_records_groups_by_schema_stream_and_topic() -> None:
    records = [
        Record({"id": 1, "name": "a"}, ITEMS, topic="beats"),
        Record({"id": 2, "name": "b"}, ITEMS, topic="beats", headers={"x": b"1"}),
        Record({"id": 3, "name": "c"}, ITEMS),
        Record({"id": 4, "name": "d"}, ITEMS, stream="s"),
    ]
    batches = RecordBatch.from_records(records)
    assert [(b.num_rows, b.topic, b.stream) for b in batches] == [
        (2, "beats", None),
        (1, None, None),
        (1, None, "s"),
    ]
    assert batches[0].row_headers is not None
    assert batches[0].row_headers.to_pylist() == [None, [("x", b"1")]]
    assert batches[1].row_headers is None and batches[1].tombstones is None


def test_a_delete_without_a_key_is_refused() -> None:
    with pytest.raises(ValueError, match=r"record 1: value=None .* Record.key is required"):
        RecordBatch.from_records([Record({"id": 1, "name": "a"}, ITEMS), Record(None, ITEMS)])
    keyless = Schema("k", (Field("x", t.int64()),))
    with pytest.raises(ValueError, match="needs a key schema"):
        RecordBatch.from_records([Record(None, keyless, key={"x": 1})])

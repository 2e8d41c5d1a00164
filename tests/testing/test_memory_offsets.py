"""The kit's MemoryOffsetReader keeps positions as the runtime's offset store does: values
beyond plain JSON come back as they went in, and what the store refuses it refuses alike."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from omconnect.connectors.api import Position
from omconnect.runtime.state.offsets import SqliteOffsetStore
from omconnect.runtime.testing import MemoryOffsetReader

NAMESPACE = "kit"

# What the sql source puts in its key and cursor positions, and the like.
OFFSET: dict[str, Any] = {
    "at": dt.datetime(2024, 10, 27, 2, 30, 0, 123456, tzinfo=ZoneInfo("Europe/Paris"), fold=1),
    "at_fixed": dt.datetime(2024, 2, 29, 23, 59, 58, tzinfo=dt.timezone(dt.timedelta(hours=-3))),
    "day": dt.date(2024, 2, 29),
    "amount": Decimal("12345678901234567890.000000001"),
    "id": uuid.UUID("12345678-1234-5678-1234-567812345678"),
    "raw": b"\x00\xff\n\\",
    "after": [Decimal("-0.00"), dt.date(1999, 12, 31), None, "text", 7],
}
PARTITION: dict[str, Any] = {
    "table": "public.orders",
    "shard": b"\x01",
    "since": dt.date(2024, 1, 1),
}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteOffsetStore]:
    """The runtime's offset store, in a file of the test."""
    opened = SqliteOffsetStore(tmp_path / "offsets.sqlite")
    yield opened
    opened.close()


def typed(value: Any) -> Any:
    """``value`` with the type, zone and fold of every part beside it, so that ``==`` tells a
    ``Decimal`` from an ``int``, a zone from another with the same offset and the two
    readings of an ambiguous wall time apart."""
    if isinstance(value, dict):
        return {key: typed(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [typed(item) for item in value]
    return (type(value), value, getattr(value, "tzinfo", None), getattr(value, "fold", None))


def test_positions_beyond_json_come_back_as_they_went_in(store: SqliteOffsetStore) -> None:
    offsets = MemoryOffsetReader()
    positions = [Position(PARTITION, {"row": 1}), Position(PARTITION, OFFSET)]
    offsets.commit(positions)
    store.put(NAMESPACE, positions)

    assert typed(offsets.get(PARTITION)) == typed(OFFSET)
    assert typed(offsets.all()[0][0]) == typed(PARTITION)
    assert typed(offsets.all()[0][1]) == typed(OFFSET)
    # ... exactly as the real store gives them back
    assert typed(offsets.get(PARTITION)) == typed(store.get(NAMESPACE, PARTITION))
    stored = store.all(NAMESPACE)
    assert typed(offsets.all()) == typed([(p.partition, p.offset) for p in stored])


def test_every_read_is_a_copy_of_what_was_committed() -> None:
    offsets = MemoryOffsetReader()
    offset = {"after": [1, 2]}
    offsets.commit([Position({"table": "t"}, offset)])
    offset["after"].append(3)
    got = offsets.get({"table": "t"})
    assert got == {"after": [1, 2]}
    got["after"].append(4)
    assert offsets.get({"table": "t"}) == {"after": [1, 2]}


def test_partitions_are_listed_in_the_order_of_the_store(store: SqliteOffsetStore) -> None:
    positions = [Position({"table": name}, {"row": i}) for i, name in enumerate("cab")]
    offsets = MemoryOffsetReader()
    offsets.commit(positions)
    store.put(NAMESPACE, positions)
    assert offsets.all() == [(p.partition, p.offset) for p in store.all(NAMESPACE)]


@pytest.mark.parametrize(
    "position",
    [
        Position(PARTITION, {"row": {1, 2}}),
        Position(PARTITION, {"nested": {"when": dt.timedelta(seconds=1)}}),
        Position(PARTITION, {1: "key that is not a string"}),  # type: ignore[dict-item]
        Position({"table": object()}, {"row": 1}),
    ],
    ids=["set", "timedelta", "int-key", "object-partition"],
)
def test_a_position_the_store_refuses_is_refused_alike_and_nothing_is_kept(
    store: SqliteOffsetStore, position: Position
) -> None:
    good = Position({"table": "other"}, {"row": 1})
    with pytest.raises(TypeError) as refused_by_store:
        store.put(NAMESPACE, [good, position])
    offsets = MemoryOffsetReader()
    with pytest.raises(TypeError) as refused_by_kit:
        offsets.commit([good, position])
    assert str(refused_by_kit.value) == str(refused_by_store.value)
    assert store.all(NAMESPACE) == []
    assert offsets.all() == []
    assert offsets.get(good.partition) is None

"""UUID text conversion over whole columns."""

from __future__ import annotations

import uuid

import pyarrow as pa

from omconnect.runtime.transforms.uuid_strings import uuid_from_text, uuid_to_text


def test_round_trip_with_nulls_slices_and_bad_text() -> None:
    ids = [uuid.uuid4() for _ in range(50)]
    text = pa.array([str(u) for u in ids] + [None, "not-a-uuid", ids[0].hex.upper()])
    parsed, invalid = uuid_from_text(text)
    assert invalid.to_pylist() == [False] * 51 + [True, False]
    assert parsed.to_pylist() == [*ids, None, None, ids[0]]
    assert uuid_to_text(parsed).to_pylist() == [str(u) for u in ids] + [None, None, str(ids[0])]
    assert uuid_to_text(parsed.slice(7, 3)).to_pylist() == [str(u) for u in ids[7:10]]
    assert uuid_from_text(text.slice(5, 2))[0].to_pylist() == ids[5:7]


def test_empty() -> None:
    parsed, invalid = uuid_from_text(pa.array([], pa.string()))
    assert len(parsed) == 0 and len(invalid) == 0
    assert len(uuid_to_text(parsed)) == 0

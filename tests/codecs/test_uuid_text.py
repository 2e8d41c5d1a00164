"""UUID text conversion over whole columns."""

from __future__ import annotations

import uuid

import numpy as np
import pyarrow as pa

from omconnect.codecs.uuid_text import (
    uuid_bytes,
    uuid_from_text,
    uuid_text_matrix,
    uuid_to_text,
    uuids_from_text_matrix,
)


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


def test_text_matrix_reads_what_uuid_from_text_reads() -> None:
    """The fixed-width reader (Avro's 36-character strings) and the column reader accept the
    same texts: 32 hex digits in any case, hyphens anywhere."""
    value = uuid.UUID("0123abcd-4567-89ef-0123-456789abcdef")
    texts = [
        str(value),
        str(value).upper(),
        "0123abcd4567-89ef-0123-456789ab-cdef",
        "0123abcd-4567-89ef-0123-456789abcdeg",
        "0123abcd-4567-89ef-0123-456789abcd-f",
    ]
    matrix = np.frombuffer("".join(texts).encode(), np.uint8).reshape(len(texts), 36)
    parsed, bad = uuids_from_text_matrix(matrix)
    assert bad.tolist() == [False, False, False, True, True]
    assert parsed.to_pylist()[:3] == [value] * 3
    columns, invalid = uuid_from_text(pa.array(texts))
    assert invalid.to_pylist() == bad.tolist()
    assert columns.to_pylist() == [value] * 3 + [None, None]


def test_canonical_text_matrix() -> None:
    value = uuid.UUID("0123abcd-4567-89ef-0123-456789abcdef")
    column = pa.array([value.bytes], pa.binary(16))
    assert uuid_text_matrix(uuid_bytes(column)).tobytes().decode() == str(value)

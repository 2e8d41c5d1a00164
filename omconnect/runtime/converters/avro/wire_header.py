"""The Confluent wire format header: magic byte 0, then the schema id as 4 big-endian bytes."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pyarrow as pa

MAGIC_BYTE = 0
HEADER_SIZE = 5


def header(schema_id: int) -> bytes:
    """The 5 bytes that start every body written with ``schema_id``."""
    return bytes([MAGIC_BYTE]) + schema_id.to_bytes(4, "big")


def read_headers(
    bodies: pa.Array, allow_null: bool = False
) -> tuple[npt.NDArray[np.int64], dict[int, Exception]]:
    """The schema id of every body (-1 where there is none), and the bodies without a valid
    header. Null bodies are errors unless ``allow_null`` (message keys may be absent)."""
    n = len(bodies)
    large = bodies.type in (pa.large_binary(), pa.large_string())
    offsets = np.frombuffer(
        bodies.buffers()[1], dtype=np.int64 if large else np.int32, count=bodies.offset + n + 1
    )[bodies.offset :].astype(np.int64)
    data = bodies.buffers()[2]
    raw = np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, np.uint8)
    raw = np.concatenate([raw, np.zeros(HEADER_SIZE, dtype=np.uint8)])
    starts = offsets[:-1]
    window = raw[np.minimum(starts, len(raw) - HEADER_SIZE)[:, None] + np.arange(HEADER_SIZE)]
    ids = window[:, 1:].astype(np.int64) @ np.array([1 << 24, 1 << 16, 1 << 8, 1])
    present = (
        np.ones(n, dtype=np.bool_)
        if bodies.null_count == 0
        else np.asarray(bodies.is_valid().to_numpy(zero_copy_only=False), dtype=np.bool_)
    )
    well_formed = present & (np.diff(offsets) >= HEADER_SIZE) & (window[:, 0] == MAGIC_BYTE)
    errors: dict[int, Exception] = {}
    broken = np.flatnonzero(present & ~well_formed)
    if len(broken):
        error = ValueError("not Confluent Avro: no magic byte 0 and 4-byte schema id")
        errors.update(dict.fromkeys(broken.tolist(), error))
    if not allow_null and not present.all():
        errors.update(dict.fromkeys(np.flatnonzero(~present).tolist(), ValueError("null body")))
    return np.where(well_formed, ids, -1), errors

"""A ``MessageBatch`` as the columns the ``APPEND`` script takes, and the columns the ``READ``
script returns as a ``MessageBatch``, losslessly and without a Python loop over messages.

Each variable-length column (values, keys, timestamps as decimal text, message ids, header
names, header values) travels as its int32 little-endian offsets from 0, its bytes, and one
byte per row saying whether the row is set; the header maps as their offsets into the header
entries and one validity byte per row. The reply columns carry a length per row instead
(-1 for null). So null and empty values, keys and header maps stay apart, a header may repeat
its name or have a null value, and timestamps keep all 64 bits.

How the fields of a stream entry look is written in ``_scripts``: other Redis clients read
them as plain fields (``value``, ``key``, ``timestamp``, ``message_id``, ``h:<header>``), and
an entry another client wrote with fields of its own reads back with them as headers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from omconnect.schemas.message_batch import HEADERS_TYPE, MessageBatch

_INT32 = np.dtype("<i4")


def append_columns(messages: MessageBatch) -> list[bytes]:
    """The 18 column arguments of ``APPEND`` (its ARGV from the fourth on)."""
    column = messages.headers
    offsets_buffer = column.buffers()[1]
    if offsets_buffer is None:
        map_offsets = np.zeros(len(column) + 1, dtype=_INT32)
    else:
        map_offsets = np.frombuffer(
            offsets_buffer, dtype=_INT32, count=len(column) + 1, offset=column.offset * 4
        )
    first, last = int(map_offsets[0]), int(map_offsets[-1])
    names = column.keys.slice(first, last - first)
    items = column.items.slice(first, last - first)
    return [
        *_variable(messages.values),
        *_variable(messages.keys),
        *_variable(pc.cast(messages.timestamps, pa.string()))[:2],
        *_variable(messages.message_ids),
        (map_offsets - first).astype(_INT32).tobytes(),
        _validity(column),
        *_variable(names)[:2],
        *_variable(items),
    ]


def _variable(array: pa.Array) -> tuple[bytes, bytes, bytes]:
    """Offsets from 0, bytes and validity bytes of a binary or string array."""
    n = len(array)
    _, offsets_buffer, data_buffer = array.buffers()[:3]
    if offsets_buffer is None:
        offsets = np.zeros(n + 1, dtype=_INT32)
    else:
        offsets = np.frombuffer(offsets_buffer, dtype=_INT32, count=n + 1, offset=array.offset * 4)
    start, end = (int(offsets[0]), int(offsets[-1])) if n else (0, 0)
    data = data_buffer.slice(start, end - start).to_pybytes() if data_buffer is not None else b""
    return (offsets - start).astype(_INT32).tobytes(), data, _validity(array)


def _validity(array: pa.Array) -> bytes:
    if array.null_count == 0:
        return b"\x01" * len(array)
    return array.is_valid().to_numpy(zero_copy_only=False).astype(np.uint8).tobytes()


def read_columns(reply: Sequence[Any]) -> MessageBatch:
    """The entries a ``READ`` reply returned, in order, numbered with their offsets (the
    number of their id less one)."""
    (_, seqs, v_lengths, v_data, k_lengths, k_data, stamps, i_lengths, i_data) = reply[:9]
    (h_counts, n_lengths, n_data, h_lengths, h_data) = reply[9:14]
    offsets = np.array(seqs.split(), dtype=np.int64) - 1
    n = len(offsets)
    counts = np.frombuffer(h_counts, dtype=_INT32)
    present = counts >= 0
    map_offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(np.where(present, counts, 0), out=map_offsets[1:])
    headers = pa.MapArray.from_arrays(
        pa.array(map_offsets),
        _from_lengths(n_lengths, n_data).cast(pa.string()),
        _from_lengths(h_lengths, h_data),
        type=HEADERS_TYPE,
        mask=None if present.all() else pa.array(~present),
    )
    return MessageBatch.build(
        values=_from_lengths(v_lengths, v_data),
        keys=_from_lengths(k_lengths, k_data),
        timestamps=np.array(stamps.split(), dtype=np.int64) if n else np.zeros(0, np.int64),
        headers=headers,
        offsets=offsets,
        message_ids=_from_lengths(i_lengths, i_data).cast(pa.string()),
    )


def _from_lengths(lengths: bytes, data: bytes) -> pa.Array:
    """A binary array of per-row lengths (-1 for null) and the rows' bytes one after
    another."""
    sizes = np.frombuffer(lengths, dtype=_INT32)
    valid = sizes >= 0
    offsets = np.zeros(len(sizes) + 1, dtype=np.int32)
    np.cumsum(np.where(valid, sizes, 0), out=offsets[1:])
    validity = None if valid.all() else pa.array(valid).buffers()[1]
    return pa.Array.from_buffers(
        pa.binary(), len(sizes), [validity, pa.py_buffer(offsets), pa.py_buffer(data)]
    )

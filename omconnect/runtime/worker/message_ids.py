"""Stable message ids and the header column of outgoing messages, built column-wise.

Every message a source publishes carries ``oms.message_id``. A source may set its own ids
(``RecordBatch.message_ids``: a CDC source uses the commit LSN and the index in the
transaction); otherwise the runtime derives them from positions. A row's id is the digest of
the position its source partition had reached before the row (the committed position, for the
first rows after a start) and the row's index since that position.
A source that resumes from a committed position and marks its rows at the same places emits
the same ids again, so a broker that de-duplicates by message id (NATS ``Nats-Msg-Id``) or a
consumer can drop redelivered records.

The ids travel in the message batch's ``message_id`` column (``oms.message_id`` on brokers
with headers only). Nothing here builds a Python object per row: ids
(``<16 hex digits>-<index in hex>``, one width per batch) are written into the string buffer
with numpy, headers are a ``map`` column gathered from offsets with numpy.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pyarrow as pa

from omconnect.schemas.message_batch import HEADERS_TYPE
from omconnect.schemas.position_codec import encode_position_value
from omconnect.schemas.record import RecordBatch, partition_id

OffsetLookup = Callable[[Mapping[str, Any]], Mapping[str, Any] | None]


class MessageIdDeriver:
    """Derives ids for the batches of one source task, in poll order.

    Args:
        committed: the committed offset of a source partition (the offset store), read once
            per partition the first time it appears.
    """

    def __init__(self, committed: OffsetLookup) -> None:
        self._committed = committed
        self._reached: dict[str, str] = {}
        self._trailing: tuple[str, int] | None = None

    def ids(self, batch: RecordBatch) -> pa.StringArray:
        """One id per row of ``batch`` (a batch as the source polled it)."""
        n = batch.num_rows
        prefixes: list[str] = []
        starts: list[int] = []
        lengths: list[int] = []
        first_index: list[int] = []
        start = 0
        for mark in batch.marks:
            pid = partition_id(mark.position.partition)
            if pid not in self._reached:
                committed = self._committed(mark.position.partition)
                self._reached[pid] = encode_position_value(dict(committed or {}))
            if mark.end_row > start:
                prefix, index = self._segment_start(pid)
                prefixes.append(prefix)
                starts.append(start)
                lengths.append(mark.end_row - start)
                first_index.append(index)
            self._reached[pid] = encode_position_value(dict(mark.position.offset))
            self._trailing = None
            start = max(start, mark.end_row)
            last_pid = pid
        if start < n:
            # Rows after the last mark: numbered on from the last position reached, and the
            # next batch's first rows continue that count.
            if self._trailing is None:
                anchor = last_pid if batch.marks else ""
                self._trailing = (_digest(anchor, self._reached.get(anchor, "")), 0)
            prefix, index = self._trailing
            prefixes.append(prefix)
            starts.append(start)
            lengths.append(n - start)
            first_index.append(index)
            self._trailing = (prefix, index + n - start)
        return _join_ids(prefixes, starts, lengths, first_index, n)

    def _segment_start(self, pid: str) -> tuple[str, int]:
        if self._trailing is not None:
            return self._trailing
        return _digest(pid, self._reached[pid]), 0


def _digest(pid: str, offset: str) -> str:
    return hashlib.blake2b(f"{pid}\x00{offset}".encode(), digest_size=8).hexdigest()


# Byte value -> its two hex digits, as one uint16 in memory order.
_BYTE_HEX = np.frombuffer(
    b"".join(f"{value:02x}".encode() for value in range(256)), dtype=np.uint16
)
_PREFIX_WIDTH = 16


def _join_ids(
    prefixes: list[str], starts: list[int], lengths: list[int], first_index: list[int], n: int
) -> pa.StringArray:
    """``<prefix>-<index in hex>``, every id of one width, written straight into the string
    array's data buffer (one numpy pass per character column, no per-row string)."""
    if n == 0:
        return pa.array([], pa.string())
    index = np.arange(n, dtype=np.int64) - np.repeat(np.asarray(starts, np.int64), lengths)
    index += np.repeat(np.asarray(first_index, np.int64), lengths)
    # The index as big-endian bytes, each byte two hex digits: 8 digits, or 16 past 2**32.
    wide = int(index.max()) >= 1 << 32
    index_bytes = index.astype(">u8" if wide else ">u4").view(np.uint8).reshape(n, -1)
    digits = 2 * index_bytes.shape[1]
    width = _PREFIX_WIDTH + 1 + digits
    data = np.empty((n, width), dtype=np.uint8)
    if len(prefixes) == 1:
        data[:, : _PREFIX_WIDTH + 1] = np.frombuffer(f"{prefixes[0]}-".encode(), dtype=np.uint8)
    else:
        segment = np.repeat(np.arange(len(prefixes)), lengths)
        prefix_bytes = np.frombuffer("".join(prefixes).encode("ascii"), dtype=np.uint8)
        data[:, :_PREFIX_WIDTH] = prefix_bytes.reshape(-1, _PREFIX_WIDTH)[segment]
        data[:, _PREFIX_WIDTH] = ord("-")
    data[:, _PREFIX_WIDTH + 1 :] = _BYTE_HEX[index_bytes].view(np.uint8).reshape(n, digits)
    offsets = np.arange(0, (n + 1) * width, width, dtype=np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data))


def message_headers(batch: RecordBatch) -> pa.MapArray | None:
    """The header column of ``batch``'s messages: the shared ``headers``, then the row's own
    ``row_headers``; None when there are none. (The message id has its own column.)"""
    n = batch.num_rows
    shared_names = list(batch.headers)
    shared_values = list(batch.headers.values())
    row_headers = batch.row_headers
    if not shared_names and row_headers is None:
        return None
    if row_headers is None:
        return batch_wide_headers(batch.headers, n)
    if not shared_names:
        return row_headers
    shared = len(shared_names)
    row_counts, row_starts = _map_extents(row_headers)
    counts = shared + row_counts
    offsets = np.zeros(n + 1, np.int64)
    np.cumsum(counts, out=offsets[1:])
    # Pool: the shared entries, then every row header entry; ``take`` gathers each row's
    # entries in that order.
    owner = np.repeat(np.arange(n, dtype=np.int64), counts)
    within = np.arange(int(offsets[-1]), dtype=np.int64) - offsets[:-1][owner]
    take = np.where(within < shared, within, shared + row_starts[owner] + (within - shared))
    indices = pa.array(take)
    names = pa.concat_arrays(
        [pa.array(shared_names, pa.string()), row_headers.keys.cast(pa.string())]
    ).take(indices)
    values = pa.concat_arrays(
        [pa.array(shared_values, pa.binary()), row_headers.items.cast(pa.binary())]
    ).take(indices)
    return pa.MapArray.from_arrays(
        pa.array(offsets.astype(np.int32)), names, values, type=HEADERS_TYPE
    )


def batch_wide_headers(headers: dict[str, bytes], rows: int) -> pa.MapArray:
    """The same headers for every row, built without a Python object per row."""
    names = pa.array(list(headers.keys()) * rows, pa.string())
    values = pa.array(list(headers.values()) * rows, pa.binary())
    offsets = pa.array(np.arange(rows + 1, dtype=np.int32) * len(headers))
    return pa.MapArray.from_arrays(offsets, names, values, type=HEADERS_TYPE)


def _map_extents(column: pa.MapArray) -> tuple[np.ndarray, np.ndarray]:
    """Entries per row (0 for null rows) and where each row's entries start in the child
    (``keys``/``items`` of a sliced map are its whole child, so the offsets stay absolute)."""
    offsets = column.offsets.to_numpy().astype(np.int64)
    counts = np.diff(offsets)
    if column.null_count:
        counts = np.where(column.is_valid().to_numpy(zero_copy_only=False), counts, 0)
    return counts, offsets[:-1]

"""Stable message ids and the header column of outgoing messages, built column-wise.

Every message a source publishes carries ``oms.message_id``. A source may set its own ids
(``RecordBatch.message_ids``: a CDC source uses the commit LSN and the index in the
transaction); otherwise the runtime derives them from positions. A row's id is the digest of
the position its source partition had reached before the row (the committed position, for the
first rows after a start) and the row's index since that position.
A source that resumes from a committed position and marks its rows at the same places emits
the same ids again, so a broker that de-duplicates by message id (NATS ``Nats-Msg-Id``) or a
consumer can drop redelivered records.

Nothing here builds a Python object per row: ids (``<16 hex digits>-<index in hex>``, one width
per batch) are written into the string buffer with numpy, headers are a ``map`` column
gathered from offsets with numpy.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pyarrow as pa

from omconnect.schemas.message import HEADER_PREFIX
from omconnect.schemas.message_batch import HEADERS_TYPE
from omconnect.schemas.position_codec import encode_position_value
from omconnect.schemas.record import RecordBatch, partition_id

MESSAGE_ID_HEADER = f"{HEADER_PREFIX}message_id"

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


_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_PREFIX_WIDTH = 16


def _join_ids(
    prefixes: list[str], starts: list[int], lengths: list[int], first_index: list[int], n: int
) -> pa.StringArray:
    """``<prefix>-<index in hex>``, every id of one width, written straight into the string
    array's data buffer (one numpy pass per character column, no per-row string)."""
    if n == 0:
        return pa.array([], pa.string())
    segment = np.repeat(np.arange(len(prefixes)), lengths)
    index = np.arange(n, dtype=np.int64) - np.repeat(np.asarray(starts, np.int64), lengths)
    index += np.repeat(np.asarray(first_index, np.int64), lengths)
    digits = max(8, (int(index.max()).bit_length() + 3) // 4)
    width = _PREFIX_WIDTH + 1 + digits
    data = np.empty((n, width), dtype=np.uint8)
    prefix_bytes = np.frombuffer("".join(prefixes).encode("ascii"), dtype=np.uint8)
    data[:, :_PREFIX_WIDTH] = prefix_bytes.reshape(-1, _PREFIX_WIDTH)[segment]
    data[:, _PREFIX_WIDTH] = ord("-")
    for k in range(digits):
        shift = 4 * (digits - 1 - k)
        data[:, _PREFIX_WIDTH + 1 + k] = _HEX[(index >> shift) & 15]
    offsets = np.arange(0, (n + 1) * width, width, dtype=np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data))


def message_headers(batch: RecordBatch, message_ids: pa.StringArray | None) -> pa.MapArray | None:
    """The header column of ``batch``'s messages: the shared ``headers``, then the row's own
    ``row_headers``, then ``oms.message_id``. None when there is nothing to send."""
    n = batch.num_rows
    shared_names = list(batch.headers)
    shared_values = list(batch.headers.values())
    row_headers = batch.row_headers
    if not shared_names and row_headers is None and message_ids is None:
        return None
    shared = len(shared_names)
    if message_ids is not None and not shared and row_headers is None:
        # The common case, one entry per row: no gather at all.
        return pa.MapArray.from_arrays(
            pa.array(np.arange(n + 1, dtype=np.int32)),
            pa.repeat(pa.scalar(MESSAGE_ID_HEADER, pa.string()), n),
            message_ids.cast(pa.binary()),
            type=HEADERS_TYPE,
        )
    if row_headers is not None:
        row_counts, row_starts = _map_extents(row_headers)
        row_names = row_headers.keys
        row_values = row_headers.items
    else:
        row_counts = np.zeros(n, np.int64)
        row_starts = np.zeros(n, np.int64)
        row_names = pa.array([], pa.string())
        row_values = pa.array([], pa.binary())
    has_id = 1 if message_ids is not None else 0
    counts = shared + row_counts + has_id
    offsets = np.zeros(n + 1, np.int64)
    np.cumsum(counts, out=offsets[1:])
    # Pool: shared entries, then every row header entry, then one id per row; ``take`` gathers
    # each row's entries in that order.
    pool_row_start = shared
    pool_id_start = shared + len(row_names)
    if row_headers is None:
        # Every row has the same number of entries: the gather is a fixed pattern.
        pattern = np.empty((n, shared + has_id), dtype=np.int64)
        pattern[:, :shared] = np.arange(shared)
        if has_id:
            pattern[:, shared] = pool_id_start + np.arange(n)
        take = pattern.reshape(-1)
    else:
        total = int(offsets[-1])
        owner = np.repeat(np.arange(n, dtype=np.int64), counts)
        within = np.arange(total, dtype=np.int64) - offsets[:-1][owner]
        take = np.where(
            within < shared,
            within,
            np.where(
                within < shared + row_counts[owner],
                pool_row_start + row_starts[owner] + (within - shared),
                pool_id_start + owner,
            ),
        )
    name_parts = [pa.array(shared_names, pa.string()), row_names.cast(pa.string())]
    value_parts = [pa.array(shared_values, pa.binary()), row_values.cast(pa.binary())]
    if message_ids is not None:
        name_parts.append(pa.repeat(pa.scalar(MESSAGE_ID_HEADER, pa.string()), n))
        value_parts.append(message_ids.cast(pa.binary()))
    indices = pa.array(take)
    names = pa.concat_arrays(name_parts).take(indices)
    values = pa.concat_arrays(value_parts).take(indices)
    return pa.MapArray.from_arrays(
        pa.array(offsets.astype(np.int32)), names, values, type=HEADERS_TYPE
    )


def _map_extents(column: pa.MapArray) -> tuple[np.ndarray, np.ndarray]:
    """Entries per row (0 for null rows) and where each row's entries start in the child
    (``keys``/``items`` of a sliced map are its whole child, so the offsets stay absolute)."""
    offsets = column.offsets.to_numpy().astype(np.int64)
    counts = np.diff(offsets)
    if column.null_count:
        counts = np.where(column.is_valid().to_numpy(zero_copy_only=False), counts, 0)
    return counts, offsets[:-1]

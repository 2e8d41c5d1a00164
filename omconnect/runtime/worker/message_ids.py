"""Stable message ids and the header column of outgoing messages, built column-wise.

Every message a source publishes carries ``oms.message_id``. A source may set its own ids
(``RecordBatch.message_ids``: a CDC source uses the commit LSN and the index in the
transaction); otherwise the runtime derives them from positions. A row's id is the digest of
the position its source partition had reached before the row (the committed position, for the
first rows after a start) and the row's index since that position.
A source that resumes from a committed position and marks its rows at the same places emits
the same ids again, so a broker that de-duplicates by message id (NATS ``Nats-Msg-Id``) or a
consumer can drop redelivered records.

The ids are ``<16 hex digits>-<index in hex>`` (one width per polled batch) and travel as
``MessageIdRuns``, a few runs per batch, until something reads them as strings (the message
batch's ``message_id`` column; ``oms.message_id`` on brokers with headers only). Nothing here
builds a Python object per row: headers are a ``map`` column gathered from offsets with numpy.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pyarrow as pa

from omconnect.runtime.converters.base import map_extents
from omconnect.schemas.message_batch import HEADERS_TYPE
from omconnect.schemas.message_ids import MessageIdRuns
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

    def ids(self, batch: RecordBatch) -> MessageIdRuns:
        """One id per row of ``batch`` (a batch as the source polled it)."""
        n = batch.num_rows
        prefixes: list[str] = []
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
            lengths.append(n - start)
            first_index.append(index)
            self._trailing = (prefix, index + n - start)
        return MessageIdRuns.derived(prefixes, first_index, lengths)

    def _segment_start(self, pid: str) -> tuple[str, int]:
        if self._trailing is not None:
            return self._trailing
        return _digest(pid, self._reached[pid]), 0


def _digest(pid: str, offset: str) -> str:
    return hashlib.blake2b(f"{pid}\x00{offset}".encode(), digest_size=8).hexdigest()


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
    row_counts, row_starts = map_extents(row_headers)
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

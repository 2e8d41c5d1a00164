"""Rows a pipeline published, kept decoded for its own sink, so that they are not decoded again.

A pipeline with a source and a sink publishes rows to the broker and then reads them back:
the sink's converter turns the message bodies into columns again, which for Avro costs about
as much as reading the table did (B1a: about one second of CPU per million rows of ``t1m``,
the largest single cost on the sink side). The rows are still in memory when the sink asks for
them, so the source loop keeps, for every batch the broker acknowledged into one partition,
the columns the converter says decoding its bodies gives (``Converter.decoded_form``), under
the offsets the broker gave them; the sink loop takes them for a consumed batch whose offsets
it holds and decodes only what it does not hold.

Nothing else changes: the messages are published and read back as always (their timestamps,
headers and ids come from the broker), the positions committed are the same, and a sink that
rewinds, a restart, or a batch split across partitions simply decodes. Offsets identify a
message within a topic partition, so what is taken is what the broker holds there. What is
held is bounded by ``max_bytes``: the oldest batches are dropped first (their messages are
decoded when read).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from omconnect.runtime.converters.base import DecodedGroup

DEFAULT_MAX_BYTES = 128 * 1024 * 1024
"""What the pipeline keeps for its sink at most (the sink keeps up, so little is held)."""


@dataclass(frozen=True)
class _Held:
    first_offset: int
    group: DecodedGroup
    nbytes: int

    @property
    def end_offset(self) -> int:
        return self.first_offset + self.group.values.num_rows


class PublishedBatches:
    """Decoded forms of published batches, by topic partition and offset (thread-safe)."""

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._held: OrderedDict[tuple[str, int, int], _Held] = OrderedDict()
        self._bytes = 0

    @property
    def nbytes(self) -> int:
        """The bytes of the batches held."""
        return self._bytes

    def put(self, topic: str, partition: int, first_offset: int, group: DecodedGroup) -> None:
        """Keep ``group``, whose rows the broker stored at ``first_offset`` onwards of
        ``topic`` partition ``partition``, one message per row in order."""
        nbytes = group.values.nbytes + (group.keys.nbytes if group.keys is not None else 0)
        if nbytes > self.max_bytes:
            return
        with self._lock:
            self._held[topic, partition, first_offset] = _Held(first_offset, group, nbytes)
            self._bytes += nbytes
            while self._bytes > self.max_bytes:
                _, dropped = self._held.popitem(last=False)
                self._bytes -= dropped.nbytes

    def take(self, topic: str, partition: int, offsets: pa.Int64Array) -> list[DecodedGroup] | None:
        """The decoded rows of the messages at ``offsets`` (consecutive) of ``topic``
        partition ``partition``, one group per published batch they come from (``rows`` are
        indices into ``offsets``), when every one of them is held; else None. Batches read to
        their end, and those before ``offsets`` (the consumer moved past them: the sink read them
        before the source's acknowledgement came back), are let go."""
        count = len(offsets)
        if count == 0:
            return None
        first = int(offsets[0].as_py())
        end = first + count
        if int(offsets[count - 1].as_py()) + 1 != end:
            return None  # not consecutive (a transaction marker between): decode instead
        with self._lock:
            self._let_go(topic, partition, before=first)  # the consumer has moved past them
            pieces = self._covering(topic, partition, first, end)
            if pieces is None:
                return None
            self._let_go(topic, partition, before=end)
        return [_rows_of(held, first, end) for held in pieces]

    def _let_go(self, topic: str, partition: int, before: int) -> None:
        """Drop the held batches of ``topic`` partition ``partition`` that end by ``before``."""
        for key, held in list(self._held.items()):
            if key[:2] == (topic, partition) and held.end_offset <= before:
                del self._held[key]
                self._bytes -= held.nbytes

    def _covering(self, topic: str, partition: int, start: int, end: int) -> list[_Held] | None:
        """The held batches that together hold offsets ``start`` to ``end - 1``, in order."""
        ranges = sorted(
            (held for key, held in self._held.items() if key[:2] == (topic, partition)),
            key=lambda held: held.first_offset,
        )
        found = []
        at = start
        for held in ranges:
            if held.first_offset <= at < held.end_offset:
                found.append(held)
                at = held.end_offset
                if at >= end:
                    return found
        return None


def _rows_of(held: _Held, first: int, end: int) -> DecodedGroup:
    """The rows of ``held`` at offsets ``first`` to ``end - 1``, numbered from ``first``."""
    start = max(first, held.first_offset)
    stop = min(end, held.end_offset)
    at, length = start - held.first_offset, stop - start
    group = held.group
    return DecodedGroup(
        rows=pa.array(np.arange(start - first, stop - first, dtype=np.int64)),
        values=group.values.slice(at, length),
        schema=group.schema,
        keys=group.keys.slice(at, length) if group.keys is not None else None,
    )

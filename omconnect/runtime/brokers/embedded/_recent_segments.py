"""Segments this process appended lately, kept as their messages for its own consumers.

A pipeline with a source and a sink appends a segment and reads it back a moment later, in the
same process: fetching the body from SQLite and decoding its IPC stream cost B1a (1M rows of
``t1m``, about 130 MB of segments) about a sixth of the embedded broker's CPU. So a broker's
producers keep, after each append, every segment's messages as decoding its body would give
them (``SegmentCodec.stored_form``), and its consumers list the segments they may read from
the log as always (what they may see is decided there: open and aborted transactions,
retention) and take the bodies they find here instead of fetching and decoding them.

A segment is known by its topic, partition, base offset and the millisecond of its append: a
topic deleted and created again (by another process too) numbers its segments from 0 again,
at another time. Consumers of other processes, and any segment not held, read the log. What is
held is bounded by bytes; the oldest segments are dropped first; and nothing is kept while the
broker has no consumer open (a pipeline without a sink would only pay the memory).
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from omconnect.schemas.message_batch import MessageBatch

DEFAULT_MAX_BYTES = 32 * 1024 * 1024
"""What a broker keeps at most. A sink that keeps up reads a segment soon after its append:
on B1a (40 segments of 25,000 messages) 16 MiB left 2 segments to decode, 64 MiB 3, and each
16 MiB held costs about as much in the process's peak memory."""

SegmentKey = tuple[str, int, int, int]
"""A segment's topic, partition, base offset and append time (Unix ms)."""


class RecentSegments:
    """The messages of recently appended segments by ``SegmentKey`` (thread-safe)."""

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._held: OrderedDict[SegmentKey, MessageBatch] = OrderedDict()
        self._bytes = 0
        self._readers = 0

    @property
    def wanted(self) -> bool:
        """Whether a consumer is open to read what is kept."""
        return self._readers > 0

    def add_reader(self) -> None:
        with self._lock:
            self._readers += 1

    def remove_reader(self) -> None:
        """A consumer closed; the last one lets go of everything."""
        with self._lock:
            self._readers -= 1
            if self._readers == 0:
                self._held.clear()
                self._bytes = 0

    @property
    def nbytes(self) -> int:
        return self._bytes

    def put(self, key: SegmentKey, messages: MessageBatch) -> None:
        """Keep ``messages``, the segment ``key`` as its body decodes."""
        size = messages.nbytes
        if size > self.max_bytes:
            return
        with self._lock:
            if not self._readers:
                return
            previous = self._held.pop(key, None)
            if previous is not None:
                self._bytes -= previous.nbytes
            self._held[key] = messages
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, dropped = self._held.popitem(last=False)
                self._bytes -= dropped.nbytes

    def get(self, key: SegmentKey) -> MessageBatch | None:
        with self._lock:
            return self._held.get(key)

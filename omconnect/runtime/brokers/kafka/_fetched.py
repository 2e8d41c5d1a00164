"""``FetchedRecords``: what librdkafka handed over that no poll has returned yet.

librdkafka's consumer queue holds records in the order fetch responses arrived, usually all of
one partition, then the next. A poll takes what is queued into these per-partition buffers
and returns them in turn across partitions (at most one batch per partition, the budget going
to the partition whose turn it is first, as the embedded broker does), so one busy partition
does not keep the others waiting. A paused partition's records stay here until it resumes
(librdkafka stops fetching it). A revoked or sought partition's records are dropped, and the
first one's offset is where this member had got to.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable

from confluent_kafka import Message

from omconnect.runtime.brokers.base import TopicPartition


class FetchedRecords:
    """Per-partition buffers, safe to use from the poll's thread and the loop's."""

    def __init__(self) -> None:
        self._records: dict[TopicPartition, deque[Message]] = {}
        self._lock = threading.Lock()
        self._turn = 0

    def add(self, tp: TopicPartition, record: Message) -> None:
        with self._lock:
            self._records.setdefault(tp, deque()).append(record)

    def count(self, readable: Callable[[TopicPartition], bool]) -> int:
        with self._lock:
            return sum(len(found) for tp, found in self._records.items() if readable(tp))

    def take(
        self, budget: int, readable: Callable[[TopicPartition], bool]
    ) -> list[tuple[TopicPartition, list[Message]]]:
        """Up to ``budget`` records, in turn across the readable partitions."""
        with self._lock:
            ready = sorted(tp for tp, found in self._records.items() if found and readable(tp))
            if not ready:
                return []
            self._turn += 1
            turn = self._turn % len(ready)
            taken = []
            for tp in ready[turn:] + ready[:turn]:
                if budget == 0:
                    break
                found = self._records[tp]
                count = min(budget, len(found))
                taken.append((tp, [found.popleft() for _ in range(count)]))
                budget -= count
            return taken

    def drop(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        """Forget the records of ``partitions``; the offset of the first one of each (where
        this member had read up to)."""
        with self._lock:
            firsts = {}
            for tp in partitions:
                found = self._records.pop(tp, None)
                if found:
                    firsts[tp] = found[0].offset() or 0
            return firsts

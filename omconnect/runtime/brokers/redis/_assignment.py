"""Which member of a consumer group reads which partition: Kafka's range assignor, computed
by every member from the same group document, so they agree without a leader."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from omconnect.runtime.brokers.base import TopicPartition


@dataclass(frozen=True)
class Subscription:
    """What one member reads: ``topics`` by name and every topic whose whole name matches
    ``pattern``."""

    member_id: str
    topics: tuple[str, ...]
    pattern: str | None = None

    def topics_among(self, existing: Iterable[str]) -> set[str]:
        """The topics of ``existing`` this member subscribes to."""
        compiled = re.compile(self.pattern) if self.pattern is not None else None
        named = set(self.topics)
        return {
            t
            for t in existing
            if t in named or (compiled is not None and compiled.fullmatch(t) is not None)
        }


def subscribed_counts(
    members: Iterable[Subscription], partition_counts: Mapping[str, int]
) -> dict[str, int]:
    """The partition count of every existing topic some member subscribes to."""
    topics: set[str] = set()
    for member in members:
        topics |= member.topics_among(partition_counts)
    return {t: partition_counts[t] for t in sorted(topics)}


def range_assignment(
    members: Sequence[Subscription], counts: Mapping[str, int]
) -> dict[str, set[TopicPartition]]:
    """Member id -> its partitions. Per topic, the partitions are split into contiguous
    ranges over its subscribers sorted by member id; the first ones get one more when the
    count does not divide evenly (Kafka's ``RangeAssignor``)."""
    assignment: dict[str, set[TopicPartition]] = {m.member_id: set() for m in members}
    subscribers: dict[str, list[str]] = {}
    for member in members:
        for topic in member.topics_among(counts):
            subscribers.setdefault(topic, []).append(member.member_id)
    for topic, ids in subscribers.items():
        ordered = sorted(ids)
        share, extra = divmod(counts[topic], len(ordered))
        first = 0
        for index, member_id in enumerate(ordered):
            size = share + (1 if index < extra else 0)
            assignment[member_id].update((topic, p) for p in range(first, first + size))
            first += size
    return assignment

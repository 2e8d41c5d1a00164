"""Which member of a consumer group reads which partition: Kafka's range assignor.

Every member runs it on the same inputs (the group's members and the partition counts of the
topics they subscribe to, as stored at one generation), so they agree on the assignment
without a leader.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
import uuid
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

    @classmethod
    def new(cls, topics: Sequence[str], pattern: str | None) -> Subscription:
        """The subscription of a new member, under a fresh id that starts with the creation
        time (members are sorted by id, so older members keep the lower ranges).

        Raises:
            ValueError: neither topics nor a pattern, or a pattern that is not a regular
                expression.
        """
        if not topics and pattern is None:
            raise ValueError("a consumer needs at least one topic or a pattern")
        if pattern is not None:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(
                    f"topic pattern {pattern!r} is not a regular expression: {exc}"
                ) from None
        member_id = f"{time.time_ns():016x}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        return cls(member_id, tuple(dict.fromkeys(topics)), pattern)

    def check_seek(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Raises ValueError: a partition of ``offsets`` is of a topic this member does not
        subscribe to, or its offset is negative."""
        for tp, offset in offsets.items():
            if not self.topics_among([tp[0]]):
                raise ValueError(f"cannot seek {tp[0]!r}: the consumer does not subscribe to it")
            if offset < 0:
                raise ValueError(f"cannot seek {tp} to a negative offset ({offset})")

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


def partitions_digest(counts: Mapping[str, int]) -> str:
    """A short fingerprint of a group's subscribed partitions, to store with its generation."""
    text = json.dumps(sorted(counts.items()), separators=(",", ":"))
    return hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()


def range_assignment(
    members: Sequence[Subscription], counts: Mapping[str, int]
) -> dict[str, set[TopicPartition]]:
    """Member id -> its partitions. Per topic, the partitions are split into contiguous ranges
    over the members subscribing to it, sorted by member id; the first members get one more
    when the count does not divide evenly (Kafka's ``RangeAssignor``)."""
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

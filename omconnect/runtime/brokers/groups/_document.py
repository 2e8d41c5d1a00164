"""A consumer group as one JSON document: the state that drivers without a group coordinator
keep on their server and change by compare-and-set (see ``_storage``).

The document holds the group's ``generation``, its ``members`` (each one's subscription and
the generation it last synced at), the partition counts of the topics they subscribe to
(``partitions``), the ``owners`` of the partitions and, where the storage keeps them in the
document, the committed ``offsets``. Whatever changes the members or the subscribed
partitions bumps the generation, so one generation names one member list and one partition
list, and every member computes the same assignment from it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from omconnect.runtime.brokers.base import TopicPartition
from omconnect.runtime.brokers.groups._range_assignor import Subscription


@dataclass
class GroupDocument:
    """The state of one group; see the module docstring.

    Attributes:
        offsets: topic -> partition -> next offset; None when the storage keeps the committed
            offsets apart from the document (then they are not part of its JSON).
    """

    generation: int = 0
    members: dict[str, dict[str, Any]] = field(default_factory=dict)
    partitions: dict[str, int] = field(default_factory=dict)
    owners: dict[str, dict[str, str]] = field(default_factory=dict)
    offsets: dict[str, dict[str, int]] | None = None

    @classmethod
    def from_json(cls, raw: bytes | str | None, *, with_offsets: bool) -> GroupDocument:
        """The document stored as ``raw`` (empty or None: a group nobody wrote yet)."""
        data = json.loads(raw) if raw else {}
        offsets = None
        if with_offsets:
            offsets = {
                t: {p: int(o) for p, o in v.items()} for t, v in data.get("offsets", {}).items()
            }
        return cls(
            generation=int(data.get("generation", 0)),
            members=dict(data.get("members", {})),
            partitions={t: int(n) for t, n in data.get("partitions", {}).items()},
            owners={t: dict(o) for t, o in data.get("owners", {}).items()},
            offsets=offsets,
        )

    def to_json(self) -> str:
        data: dict[str, Any] = {
            "generation": self.generation,
            "members": self.members,
            "partitions": self.partitions,
            "owners": self.owners,
        }
        if self.offsets is not None:
            data["offsets"] = self.offsets
        return json.dumps(data, sort_keys=True, separators=(",", ":"))

    def subscriptions(self) -> list[Subscription]:
        """Every member's subscription, sorted by member id."""
        return [
            Subscription(mid, tuple(m.get("topics", ())), m.get("pattern"))
            for mid, m in sorted(self.members.items())
        ]

    def owner(self, tp: TopicPartition) -> str | None:
        return self.owners.get(tp[0], {}).get(str(tp[1]))

    def set_owner(self, tp: TopicPartition, member_id: str | None) -> None:
        topic, partition = tp[0], str(tp[1])
        if member_id is not None:
            self.owners.setdefault(topic, {})[partition] = member_id
        elif topic in self.owners:
            self.owners[topic].pop(partition, None)
            if not self.owners[topic]:
                del self.owners[topic]

    def owned_by(self, member_id: str) -> set[TopicPartition]:
        return {
            (topic, int(p))
            for topic, owners in self.owners.items()
            for p, owner in owners.items()
            if owner == member_id
        }

    def drop_member(self, member_id: str, *, release: bool) -> None:
        """Remove a member. One that leaves releases its partitions (the next owner takes
        them at once); a dead one stays their owner of record, so the next owner knows it
        takes them from a member that is gone (a driver may wait before it reads what that
        member had read)."""
        self.members.pop(member_id, None)
        if release:
            for tp in self.owned_by(member_id):
                self.set_owner(tp, None)

    def committed(self) -> dict[TopicPartition, int]:
        """The committed offsets the document holds (none when it does not hold offsets)."""
        return {
            (topic, int(p)): offset
            for topic, offsets in (self.offsets or {}).items()
            for p, offset in offsets.items()
        }

    def set_offset(self, tp: TopicPartition, offset: int) -> None:
        assert self.offsets is not None, "the storage keeps the offsets apart"
        self.offsets.setdefault(tp[0], {})[str(tp[1])] = offset

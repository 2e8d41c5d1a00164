"""A consumer group as one JSON document in a NATS key-value bucket, changed by compare-and-set.

The document (key ``g.<base64url of the group name>``) holds the group's ``generation``, its
``members`` (each one's subscription and the generation it last synced at), the partition
counts of the topics they subscribe to, the ``owners`` of the partitions and the committed
``offsets``. Every change reads the document, applies a function to it and writes it back
only if nobody wrote in between (``Nats-Expected-Last-Subject-Sequence``, the key's revision);
otherwise it reads again and retries. So a commit checks the member's generation and the
partitions' owner and stores the offsets in one atomic step, as a Kafka coordinator does.
"""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import nats.errors
import nats.js.errors
from nats.js.kv import KeyValue

from omconnect.runtime.brokers.base import BrokerError, TopicPartition
from omconnect.runtime.brokers.nats._assignment import Subscription
from omconnect.runtime.brokers.nats._connection import describe

T = TypeVar("T")

_ATTEMPTS = 100


@dataclass
class GroupDocument:
    """The state of one group; see the module docstring."""

    generation: int = 0
    members: dict[str, dict[str, Any]] = field(default_factory=dict)
    partitions: dict[str, int] = field(default_factory=dict)
    owners: dict[str, dict[str, str]] = field(default_factory=dict)
    offsets: dict[str, dict[str, int]] = field(default_factory=dict)

    @classmethod
    def from_json(cls, raw: bytes) -> GroupDocument:
        data = json.loads(raw)
        return cls(
            generation=int(data.get("generation", 0)),
            members=dict(data.get("members", {})),
            partitions={t: int(n) for t, n in data.get("partitions", {}).items()},
            owners={t: dict(o) for t, o in data.get("owners", {}).items()},
            offsets={
                t: {p: int(o) for p, o in v.items()} for t, v in data.get("offsets", {}).items()
            },
        )

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "generation": self.generation,
                "members": self.members,
                "partitions": self.partitions,
                "owners": self.owners,
                "offsets": self.offsets,
            },
            sort_keys=True,
            separators=(",", ":"),
        ).encode()

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

    def drop_member(self, member_id: str) -> None:
        """Remove a member and free its partitions."""
        self.members.pop(member_id, None)
        for tp in self.owned_by(member_id):
            self.set_owner(tp, None)

    def committed(self, topics: set[str]) -> dict[TopicPartition, int]:
        return {
            (topic, int(p)): offset
            for topic, offsets in self.offsets.items()
            if topic in topics
            for p, offset in offsets.items()
        }

    def set_offset(self, tp: TopicPartition, offset: int) -> None:
        self.offsets.setdefault(tp[0], {})[str(tp[1])] = offset


class GroupStore:
    """Loads and changes one group's document."""

    def __init__(self, bucket: KeyValue, group: str) -> None:
        self.group = group
        self._bucket = bucket
        encoded = base64.urlsafe_b64encode(group.encode()).decode().rstrip("=")
        self.key = f"g.{encoded}"

    async def load(self) -> tuple[GroupDocument, int]:
        """The document and its revision (an empty document and 0 when there is none)."""
        try:
            entry = await self._bucket.get(self.key)
        except nats.js.errors.KeyNotFoundError:
            return GroupDocument(), 0
        except (nats.errors.Error, TimeoutError) as exc:
            raise BrokerError(
                f"cannot read consumer group {self.group!r}: {describe(exc)}"
            ) from None
        return GroupDocument.from_json(entry.value or b"{}"), entry.revision or 0

    async def change(self, apply: Callable[[GroupDocument], T]) -> tuple[T, GroupDocument]:
        """Apply ``apply`` to the current document and store the result atomically; reads
        and applies again when another member wrote meanwhile. Nothing is written when
        ``apply`` changed nothing, or raised (its exception propagates).

        Returns:
            What ``apply`` returned and the document as stored.
        """
        for _ in range(_ATTEMPTS):
            document, revision = await self.load()
            before = document.to_json()
            result = apply(document)
            after = document.to_json()
            if after == before:
                return result, document
            try:
                if revision == 0:
                    await self._bucket.create(self.key, after)
                else:
                    await self._bucket.update(self.key, after, last=revision)
            except nats.js.errors.KeyWrongLastSequenceError:
                continue
            except (nats.errors.Error, TimeoutError) as exc:
                raise BrokerError(
                    f"cannot update consumer group {self.group!r}: {describe(exc)}"
                ) from None
            return result, document
        raise BrokerError(f"consumer group {self.group!r} changed {_ATTEMPTS} times in a row")

    async def delete_if_unused(self) -> None:
        """Remove the document of a group without members or offsets (a ``topics tail``
        group), unless someone wrote it meanwhile."""
        document, revision = await self.load()
        if revision and not document.members and not document.offsets:
            # Changed meanwhile, or the server is gone: leave it.
            with contextlib.suppress(nats.errors.Error, TimeoutError):
                await self._bucket.delete(self.key, last=revision)

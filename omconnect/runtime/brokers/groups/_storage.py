"""Where a group's document lives, as the membership protocol needs it: read the document
with its version, write it back only if the version is unchanged.

A driver implements ``GroupStorage`` on its server's compare-and-set (a NATS key-value
revision, a Redis ``WATCH``/``MULTI``); ``GroupStorage.change`` is the one read-apply-write
loop on top of it. Offsets a storage keeps apart from the document (a ``Commit``) and the
liveness records of dropped members (``forget``) are written in the same atomic step as the
document, so a commit checks the member's generation and the partitions' owner and stores the
offsets at once, as a Kafka coordinator does.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Set
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import TypeVar

from omconnect.runtime.brokers.base import BrokerError, TopicPartition
from omconnect.runtime.brokers.groups._document import GroupDocument

T = TypeVar("T")

ATTEMPTS = 100


@dataclass(frozen=True)
class Commit:
    """Offsets to store with a change: the next offset of each partition. ``reset``: they
    come from a consumer outside the group (an offset reset), so the group also reads on from
    them."""

    offsets: Mapping[TopicPartition, int]
    reset: bool


class GroupAttempt(ABC):
    """One compare-and-set of a group's document: ``write`` succeeds only if nobody wrote the
    document since this attempt's ``read``."""

    @abstractmethod
    async def read(self) -> GroupDocument:
        """The document as stored now (an empty one when there is none); its version is kept
        for ``write``."""

    @abstractmethod
    async def write(
        self, document: GroupDocument | None, commit: Commit | None, forget: Set[str]
    ) -> bool:
        """Store ``document`` (None: it did not change), ``commit``'s offsets where the
        document does not hold them, and drop the liveness records of the members in
        ``forget``; all of it only if the document's version is still the one read.

        Returns:
            False when someone wrote the document meanwhile: nothing was written.
        """


class GroupStorage(ABC):
    """One group's document and committed offsets on a driver's server."""

    group: str

    @abstractmethod
    def attempt(self) -> AbstractAsyncContextManager[GroupAttempt]:
        """A compare-and-set attempt, open while the context is (a Redis ``WATCH`` holds a
        connection)."""

    @abstractmethod
    async def committed(
        self, partitions: Set[TopicPartition] | None, document: GroupDocument | None
    ) -> dict[TopicPartition, int]:
        """The committed offsets of ``partitions`` (None: of every partition), from
        ``document`` (just stored) where the offsets live in it."""

    @abstractmethod
    async def remove_if_unused(self, document: GroupDocument) -> None:
        """Remove the group after its last member left (``document``), if it never committed
        (a ``topics tail`` group) and nobody joined or committed meanwhile."""

    async def change(
        self,
        apply: Callable[[GroupDocument], T],
        *,
        commit: Commit | None = None,
        forget: Set[str] = frozenset(),
    ) -> tuple[T, GroupDocument]:
        """Apply ``apply`` to the current document and store the result atomically, with
        ``commit`` and ``forget`` (read when writing: ``apply`` may fill it); reads and applies
        again when another member wrote meanwhile. Nothing is written when ``apply`` raised
        (its exception propagates), nor when it changed nothing and there is nothing else to
        write.

        Returns:
            What ``apply`` returned and the document as stored.
        """
        for _ in range(ATTEMPTS):
            async with self.attempt() as attempt:
                document = await attempt.read()
                before = document.to_json()
                result = apply(document)
                changed = document.to_json() != before
                if not changed and commit is None and not forget:
                    return result, document
                if await attempt.write(document if changed else None, commit, forget):
                    return result, document
        raise BrokerError(f"consumer group {self.group!r} changed {ATTEMPTS} times in a row")

"""A consumer group as one JSON document in a NATS key-value bucket (``OMC_groups``), under
the key ``g.<base64url of the group name>``, committed offsets included; the document and the
protocol are ``omconnect.runtime.brokers.groups``.

A change writes the document back only if nobody wrote in between: the key's revision
(``Nats-Expected-Last-Subject-Sequence``) is the version ``GroupAttempt.write`` checks.
"""

from __future__ import annotations

import base64
import contextlib
from collections.abc import AsyncIterator, Set

import nats.errors
import nats.js.errors
from nats.js.kv import KeyValue

from omconnect.runtime.brokers.base import BrokerError, TopicPartition
from omconnect.runtime.brokers.groups import Commit, GroupAttempt, GroupDocument, GroupStorage
from omconnect.runtime.brokers.nats._connection import NatsConnection, describe


class KvGroupStorage(GroupStorage):
    """One group's document in the broker's groups bucket (made on first use)."""

    def __init__(self, connection: NatsConnection, group: str) -> None:
        self.group = group
        self._connection = connection
        encoded = base64.urlsafe_b64encode(group.encode()).decode().rstrip("=")
        self.key = f"g.{encoded}"

    async def load(self, bucket: KeyValue | None = None) -> tuple[GroupDocument, int]:
        """The document and its revision (an empty document and 0 when there is none)."""
        if bucket is None:
            bucket = await self._bucket()
        try:
            entry = await bucket.get(self.key)
        except nats.js.errors.KeyNotFoundError:
            return GroupDocument(offsets={}), 0
        except (nats.errors.Error, TimeoutError) as exc:
            raise BrokerError(
                f"cannot read consumer group {self.group!r}: {describe(exc)}"
            ) from None
        return GroupDocument.from_json(entry.value, with_offsets=True), entry.revision or 0

    @contextlib.asynccontextmanager
    async def attempt(self) -> AsyncIterator[GroupAttempt]:
        yield _RevisionAttempt(self, await self._bucket())

    async def committed(
        self, partitions: Set[TopicPartition] | None, document: GroupDocument | None
    ) -> dict[TopicPartition, int]:
        if document is None:
            bucket = await self._connection.groups(create=False)
            if bucket is None:
                return {}  # no group ever committed
            document, _ = await self.load(bucket)
        found = document.committed()
        return found if partitions is None else {tp: found[tp] for tp in partitions & found.keys()}

    async def remove_if_unused(self, document: GroupDocument) -> None:
        del document  # read again, for the revision the delete expects
        current, revision = await self.load()
        if revision and not current.members and not current.offsets:
            # Changed meanwhile, or the server is gone: leave it.
            with contextlib.suppress(nats.errors.Error, TimeoutError):
                await (await self._bucket()).delete(self.key, last=revision)

    async def _bucket(self) -> KeyValue:
        bucket = await self._connection.groups()
        assert bucket is not None
        return bucket


class _RevisionAttempt(GroupAttempt):
    def __init__(self, storage: KvGroupStorage, bucket: KeyValue) -> None:
        self._storage = storage
        self._bucket = bucket
        self._revision = 0

    async def read(self) -> GroupDocument:
        document, self._revision = await self._storage.load(self._bucket)
        return document

    async def write(
        self, document: GroupDocument | None, commit: Commit | None, forget: Set[str]
    ) -> bool:
        # The offsets are in the document, and pings keep no records: only the document.
        del commit, forget
        if document is None:
            return True
        key, raw = self._storage.key, document.to_json().encode()
        try:
            if self._revision == 0:
                await self._bucket.create(key, raw)
            else:
                await self._bucket.update(key, raw, last=self._revision)
        except nats.js.errors.KeyWrongLastSequenceError:
            return False
        except (nats.errors.Error, TimeoutError) as exc:
            raise BrokerError(
                f"cannot update consumer group {self._storage.group!r}: {describe(exc)}"
            ) from None
        return True

"""The offset store contract: where pipelines keep their source positions.

Keys are (namespace, partition) where the namespace is the pipeline name and the partition a
source's partition dict. ``put`` is durable when it returns and, in the SQLite, Postgres and
transactional Kafka stores, atomic: after a crash the store holds every position of a call or
none (the NATS bucket and a Kafka topic without transactions keep each position whole, but
maybe only some of a call's). Implementations: SQLite (default, under ``state:``), Postgres
(``state.postgres``), and with ``offsets: broker`` a compacted Kafka topic (``kafka_topic``)
or a NATS key-value bucket (``nats_kv``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from typing import Any

from omconnect.schemas.record import Position


class OffsetStoreError(Exception):
    """The offset store cannot be opened, read or written. The message names the store and
    says why, in words a person can act on (``the disk holding STATE/offsets.sqlite is
    full``)."""


class OffsetStore(ABC):
    @abstractmethod
    def get(self, namespace: str, partition: Mapping[str, Any]) -> Mapping[str, Any] | None:
        """The stored offset of ``partition``, or None."""

    @abstractmethod
    def all(self, namespace: str) -> list[Position]:
        """Every stored position of ``namespace``."""

    @abstractmethod
    def put(self, namespace: str, positions: Iterable[Position]) -> None:
        """Store ``positions`` atomically and durably."""

    @abstractmethod
    def delete(self, namespace: str, partition: Mapping[str, Any] | None = None) -> int:
        """Forget one partition (or the whole namespace); returns how many were removed."""

    @abstractmethod
    def namespaces(self) -> list[str]: ...

    @abstractmethod
    def close(self) -> None: ...

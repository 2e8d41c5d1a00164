"""The read-only views of stored positions that source tasks get as ``context.offsets``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from omconnect.runtime.state.offsets import OffsetStore
from omconnect.schemas.position_codec import decode_position_value
from omconnect.schemas.record import partition_id


class NamespaceOffsetReader:
    """Offsets of one pipeline (namespace); implements the connector API's OffsetReader."""

    def __init__(self, store: OffsetStore, namespace: str) -> None:
        self.store = store
        self.namespace = namespace

    def get(self, partition: Mapping[str, Any]) -> Mapping[str, Any] | None:
        return self.store.get(self.namespace, partition)

    def all(self) -> list[tuple[Mapping[str, Any], Mapping[str, Any]]]:
        return [(p.partition, p.offset) for p in self.store.all(self.namespace)]


class TransactionPositionReader:
    """Offsets of a pipeline whose source positions live in the broker's transactions
    (``exactly_once``): loaded by the source loop before each start of the task."""

    def __init__(self) -> None:
        self._offsets: dict[str, tuple[Mapping[str, Any], Mapping[str, Any]]] = {}

    def load(self, stored: Mapping[str, str]) -> None:
        """Replace what is known by ``stored`` (partition id -> encoded offset)."""
        self._offsets = {
            pid: (decode_position_value(pid), decode_position_value(offset))
            for pid, offset in stored.items()
        }

    def get(self, partition: Mapping[str, Any]) -> Mapping[str, Any] | None:
        found = self._offsets.get(partition_id(partition))
        return found[1] if found else None

    def all(self) -> list[tuple[Mapping[str, Any], Mapping[str, Any]]]:
        return list(self._offsets.values())

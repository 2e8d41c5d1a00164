"""The read-only view of the offset store that source tasks get as ``context.offsets``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from omconnect.runtime.offsets.base import OffsetStore


class NamespaceOffsetReader:
    """Offsets of one pipeline (namespace); implements the connector API's OffsetReader."""

    def __init__(self, store: OffsetStore, namespace: str) -> None:
        self.store = store
        self.namespace = namespace

    def get(self, partition: Mapping[str, Any]) -> Mapping[str, Any] | None:
        return self.store.get(self.namespace, partition)

    def all(self) -> list[tuple[Mapping[str, Any], Mapping[str, Any]]]:
        return [(p.partition, p.offset) for p in self.store.all(self.namespace)]

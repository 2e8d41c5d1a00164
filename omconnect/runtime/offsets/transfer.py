"""Exporting and importing a namespace's offsets as plain JSON-able rows (for the CLI and
the HTTP API), for any ``OffsetStore``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from omconnect.runtime.offsets.base import OffsetStore
from omconnect.schemas.record import Position


def export_offsets(store: OffsetStore, namespace: str) -> list[dict[str, Any]]:
    """``[{"partition": {...}, "offset": {...}}, ...]`` for every position of ``namespace``."""
    return [
        {"partition": dict(position.partition), "offset": dict(position.offset)}
        for position in store.all(namespace)
    ]


def import_offsets(store: OffsetStore, namespace: str, rows: Iterable[Mapping[str, Any]]) -> int:
    """Validate every row, then store them all in one ``put``; returns how many.

    Raises:
        ValueError: a row is not ``{"partition": dict, "offset": dict}``; nothing is stored.
    """
    positions = []
    for number, row in enumerate(rows):
        partition, offset = row.get("partition"), row.get("offset")
        if not isinstance(partition, Mapping) or not isinstance(offset, Mapping):
            raise ValueError(
                f"offset row {number}: expected {{'partition': {{...}}, 'offset': {{...}}}}, "
                f"got keys {sorted(row)}"
            )
        extra = set(row) - {"partition", "offset"}
        if extra:
            raise ValueError(f"offset row {number}: unknown keys {sorted(extra)}")
        positions.append(Position(dict(partition), dict(offset)))
    store.put(namespace, positions)
    return len(positions)

"""Exporting and importing a namespace's offsets as plain JSON-able rows (for the CLI and
the HTTP API), for any ``OffsetStore``.

Values JSON cannot hold (datetimes, decimals, bytes, UUIDs) are exported as tagged JSON
(``{"$datetime": "2024-05-01T12:00:00+00:00"}``, see ``schemas.position_codec``) and read back
as those values on import; plain JSON values export as they are.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from omconnect.runtime.state.offsets.base import OffsetStore
from omconnect.schemas.position_codec import position_from_json, position_to_json
from omconnect.schemas.record import Position


def export_offsets(store: OffsetStore, namespace: str) -> list[dict[str, Any]]:
    """``[{"partition": {...}, "offset": {...}}, ...]`` for every position of ``namespace``,
    JSON-able (tagged where needed)."""
    return [
        {
            "partition": position_to_json(position.partition),
            "offset": position_to_json(position.offset),
        }
        for position in store.all(namespace)
    ]


def import_offsets(
    store: OffsetStore,
    namespace: str,
    rows: Iterable[Mapping[str, Any]],
    check: Callable[[Position], Position] | None = None,
) -> int:
    """Validate every row, then store them all in one ``put``; returns how many.

    Tagged values (as ``export_offsets`` writes them) are read back into datetimes, decimals,
    bytes and UUIDs.

    Args:
        check: called with each decoded position; returns the position to store (the same,
            or one with redacted values put back) or raises ``ValueError`` saying why it
            cannot be used (the source connector's ``validate_offset``).

    Raises:
        ValueError: a row is not ``{"partition": dict, "offset": dict}``, holds a
            malformed tag, or ``check`` refused it; nothing is stored.
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
        try:
            position = Position(position_from_json(partition), position_from_json(offset))
            positions.append(check(position) if check is not None else position)
        except ValueError as error:
            raise ValueError(f"offset row {number}: {error}") from None
    store.put(namespace, positions)
    return len(positions)

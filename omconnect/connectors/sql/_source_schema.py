"""Schema changes between runs of the sql source: a new schema version or a refusal.

A table's committed position records the columns its rows were emitted with (name -> type
text) and that schema's version. When a task starts (and before each incremental pass) the
table is reflected again and compared with them, and ``schema_evolution`` decides:

- ``evolve`` (default): added, dropped and widened columns are taken as they are now, under
  the next schema version; the schema registry checks the new version's compatibility when
  it is published.
- ``freeze``: any change stops the task with an error listing it.
- ``discard_column``: added columns are left out (rows keep the emitted shape); a dropped or
  changed column, which the emitted shape cannot hold any more, stops the task.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from omconnect.connectors.api import ConnectorError
from omconnect.schemas.types import Field

Evolution = Literal["evolve", "freeze", "discard_column"]

SNAPSHOT = "snapshot"
"""The ``mode`` (and the ``mode`` of a stored offset) of a table read once, by key range."""
INCREMENTAL = "incremental"
"""The ``mode`` (and the ``mode`` of a stored offset) of a table read on a cursor."""


@dataclass(frozen=True)
class EmittedShape:
    """The columns a table's rows are emitted with, and the schema version they carry."""

    fields: tuple[Field, ...]
    version: int

    def record(self) -> dict[str, Any]:
        """What a position stores of the shape."""
        return {"version": self.version, "columns": {f.name: str(f.type) for f in self.fields}}


def decide_shape(
    table: str,
    reflected: Sequence[Field],
    stored: Mapping[str, Any] | None,
    evolution: Evolution,
) -> EmittedShape:
    """The shape to emit ``table``'s rows with now, given the shape ``stored`` in its
    committed position (None on a first run).

    Raises:
        ConnectorError: the change is refused by ``evolution``; the message lists it and
            says which setting accepts it.
    """
    if not stored or not isinstance(stored.get("columns"), Mapping):
        return EmittedShape(tuple(reflected), 1)
    before: Mapping[str, str] = stored["columns"]
    version = int(stored.get("version", 1))
    now = {f.name: str(f.type) for f in reflected}
    added = [n for n in now if n not in before]
    dropped = [n for n in before if n not in now]
    changed = [f"{n} {before[n]} -> {now[n]}" for n in now if n in before and before[n] != now[n]]
    if not (added or dropped or changed):
        return EmittedShape(tuple(reflected), version)
    described = "; ".join(
        part
        for part in (
            f"added {', '.join(added)}" if added else "",
            f"dropped {', '.join(dropped)}" if dropped else "",
            f"changed {', '.join(changed)}" if changed else "",
        )
        if part
    )
    if evolution == "evolve":
        return EmittedShape(tuple(reflected), version + 1)
    if evolution == "discard_column" and not dropped and not changed:
        return EmittedShape(tuple(f for f in reflected if f.name in before), version)
    accepts = "`schema_evolution: evolve`"
    raise ConnectorError(
        f"table {table} changed since it was last read ({described}) and schema_evolution is "
        f"{evolution}; set {accepts} to publish a new schema version, or undo the change"
    )


__all__ = ["EmittedShape", "Evolution", "decide_shape"]

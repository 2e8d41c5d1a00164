"""Where the offset store contract tests find their stores (``conftest.offsets_at``)."""

from __future__ import annotations

from dataclasses import dataclass

from omconnect.runtime.state import OffsetStore, open_offset_store, open_state
from omconnect.runtime.state.offsets.broker_stores import (
    open_broker_offset_store,
    open_existing_broker_offset_store,
)
from tests.support.nats_server import SHARED as NATS

__all__ = ["NATS", "OPEN_IN_A_SUBPROCESS", "OffsetsAt", "delete_nats_bucket"]


@dataclass(frozen=True)
class OffsetsAt:
    """Where an offset store lives: a ``state:`` (``name`` None), or a broker URL and the
    topic or bucket ``name`` of the test's own.

    Attributes:
        atomic: whether a ``put`` stores all its positions or none, even when the process
            dies midway (the broker stores without transactions store each one on its own).
    """

    location: str
    name: str | None = None
    atomic: bool = True

    def open(self) -> OffsetStore:
        """The store, created when missing."""
        if self.name is None:
            return open_offset_store(self.location)
        return open_broker_offset_store(self.location, self.name)

    def open_existing(self) -> OffsetStore | None:
        """The store if it was made, else None (creates nothing)."""
        if self.name is None:
            return open_state(self.location).open_existing_offset_store()
        return open_existing_broker_offset_store(self.location, self.name)

    @property
    def argv(self) -> list[str]:
        """What ``OPEN_IN_A_SUBPROCESS`` reads from ``sys.argv[1:3]``."""
        return [self.location, self.name or ""]


OPEN_IN_A_SUBPROCESS = """
import sys
from omconnect.runtime.state import open_offset_store
from omconnect.runtime.state.offsets.broker_stores import open_broker_offset_store

location, name = sys.argv[1], sys.argv[2]
store = open_broker_offset_store(location, name) if name else open_offset_store(location)
"""
"""Python that opens the store of ``OffsetsAt.argv`` as ``store``, for tests' subprocesses."""


async def delete_nats_bucket(bucket: str) -> None:
    """Delete ``bucket`` from the shared NATS server, if it is there."""
    import nats
    import nats.js.errors

    client = await nats.connect(f"nats://{NATS.address}", connect_timeout=2)
    try:
        await client.jetstream().delete_key_value(bucket)
    except nats.js.errors.NotFoundError:
        pass
    finally:
        await client.close()

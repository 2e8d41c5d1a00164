"""Whether the members of a consumer group are alive: their heartbeats.

A member puts a heartbeat (the server's time) in the group's ``:alive`` sorted set every
``interval`` seconds from a background task, and on every sync. One whose heartbeat is
older than ``claim_idle`` plus two heartbeats is dead: the next member to sync drops it (and
its heartbeat), and its partitions go to the others. Its unprocessed entries have then been
idle at least ``claim_idle``, the ``XAUTOCLAIM`` min idle time their next owner claims them
with. One script call beats and reads the heartbeats and the group's document at once.
"""

from __future__ import annotations

import logging

from omconnect.runtime.brokers.groups import GroupDocument, MemberLiveness
from omconnect.runtime.brokers.redis._connection import RedisConnection, broker_errors
from omconnect.runtime.brokers.redis._group_storage import RedisGroupStorage

log = logging.getLogger("omconnect.broker.redis")


class HeartbeatLiveness(MemberLiveness):
    """The heartbeats of the member ``member_id``, and what it saw of the others'."""

    def __init__(
        self,
        connection: RedisConnection,
        storage: RedisGroupStorage,
        member_id: str,
        claim_idle: float,
    ) -> None:
        self.interval = min(1.0, claim_idle / 4)
        self._expiry_ms = int((claim_idle + 2 * self.interval) * 1000)
        self.gone_reason = f"no heartbeat for {self._expiry_ms / 1000:.1f} s"
        self._connection = connection
        self._storage = storage
        self._member_id = member_id

    async def look(self) -> GroupDocument:
        return await self._look(beat=True)

    async def before_sync(self) -> None:
        await self._look(beat=True)

    async def gone_now(self) -> set[str]:
        await self._look(beat=False)
        return set(self.dead)

    async def _look(self, beat: bool) -> GroupDocument:
        """The document, and which members are dead now (a heartbeat of this one first)."""
        scripts = await self._connection.scripts()
        storage = self._storage
        keys = [storage.alive_key, storage.key]
        async with broker_errors(self._connection, f"reading consumer group {storage.group!r}"):
            now, beats, raw = await scripts.heartbeat(
                keys=keys, args=[self._member_id if beat else ""]
            )
        document = GroupDocument.from_json(raw, with_offsets=False)
        last = {beats[i].decode(): float(beats[i + 1]) for i in range(0, len(beats), 2)}
        cutoff = int(now) - self._expiry_ms
        self.dead = frozenset(
            m for m in document.members if m != self._member_id and last.get(m, 0) < cutoff
        )
        return document

    async def signal(self) -> None:
        storage = self._storage
        try:
            scripts = await self._connection.scripts()
            await scripts.heartbeat(keys=[storage.alive_key, storage.key], args=[self._member_id])
        except Exception as exc:  # the server is away: the next poll says so
            log.debug("consumer group %r: heartbeat failed: %s", storage.group, exc)

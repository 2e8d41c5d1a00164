"""``StreamReader``: how one group member reads the streams of the partitions it owns.

Every owned partition has a Redis consumer group (the omconnect group's name) on its stream,
whose last delivered id is where the member reads on with ``XREADGROUP ... >``; what it read
and has not committed stays in the group's pending entries list (PEL). A partition the
member just gained starts in *claim* mode: ``XAUTOCLAIM`` moves the entries the previous
owner left pending to this member and they are delivered first, in id order, then reading
goes on with ``>``; so what a dead or departed member had read and not committed is
delivered again, before anything newer. Entries are claimed with min idle time 0 from a
member that left (it released them), and from one that died with min idle ``claim_idle``,
once every entry it left pending has been idle that long: a claim then skips none of them,
so they come in order and a later commit never acknowledges one that was not delivered.

A read that fails after the server may have run it (the connection broke, or the poll was
cancelled) delivered entries nobody received: the partitions go back to claim mode from the
offset after the last entry returned, so those entries come again rather than being
acknowledged by a later commit unread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import redis.exceptions as redis_errors

from omconnect.runtime.brokers.base import (
    BrokerError,
    ConsumedBatch,
    ConsumerStart,
    TopicPartition,
)
from omconnect.runtime.brokers.redis._connection import RedisConnection, broker_errors
from omconnect.runtime.brokers.redis._entry_codec import read_columns

Mode = Literal["c", "r"]


class StreamGone(BrokerError):
    """A stream (or its Redis consumer group) of an owned partition disappeared."""


@dataclass
class PartitionState:
    """Where a member is in one owned partition.

    Attributes:
        stream: the partition's stream key.
        mode: ``c`` claims pending entries (from ``cursor``, those idle ``min_idle_ms``),
            ``r`` reads new ones.
        wait_id: the last entry id when the last read found nothing (a blocking wait wakes
            for what follows it); empty when unknown.
        next_offset: the offset after the last entry returned, if any was.
    """

    stream: str
    mode: Mode = "c"
    min_idle_ms: int = 0
    cursor: str = "0-0"
    wait_id: str = ""
    next_offset: int | None = None

    def redeliver_unreturned(self) -> None:
        """Claim again, at once, whatever was delivered after the last entry returned."""
        self.mode, self.min_idle_ms, self.wait_id = "c", 0, ""
        self.cursor = "0-0" if self.next_offset is None else f"0-{self.next_offset + 1}"


class StreamReader:
    """Reads for the member ``member_id`` of ``group``."""

    def __init__(self, connection: RedisConnection, group: str, member_id: str) -> None:
        self._connection = connection
        self._group = group
        self._member_id = member_id

    async def start(
        self,
        gained: Mapping[TopicPartition, int],
        committed: Mapping[TopicPartition, int],
        seeks: Mapping[TopicPartition, int],
        start: ConsumerStart,
    ) -> dict[TopicPartition, PartitionState]:
        """The states of newly owned partitions: each stream's Redis group made if missing
        (at the committed offset, else at the first entry or the high-water), then a seek
        where one waits, else claim mode with the min idle time of ``gained``."""
        client = await self._connection.client()
        keys = self._connection.keys
        states = {tp: PartitionState(keys.stream(*tp), min_idle_ms=gained[tp]) for tp in gained}
        async with broker_errors(self._connection, f"joining the streams of {self._group!r}"):
            pipe = client.pipeline(transaction=False)
            for tp, state in states.items():
                offset = committed.get(tp)
                first = (
                    f"0-{offset}" if offset is not None else "0-0" if start == "earliest" else "$"
                )
                pipe.xgroup_create(state.stream, self._group, first, mkstream=True)
            for reply in await pipe.execute(raise_on_error=False):
                if isinstance(reply, Exception) and "BUSYGROUP" not in str(reply):
                    raise reply
        for tp, offset in seeks.items():
            if tp in states:
                await self.seek(states[tp], offset)
        return states

    async def seek(self, state: PartitionState, offset: int) -> None:
        """Read ``state``'s partition from ``offset`` (at most its high-water) next."""
        scripts = await self._connection.scripts()
        async with broker_errors(self._connection, f"seeking in {state.stream!r}"):
            target = await scripts.seek(keys=[state.stream], args=[self._group, int(offset)])
        state.mode, state.wait_id, state.next_offset = "r", "", int(target)

    async def fetch(
        self, partitions: Sequence[tuple[TopicPartition, PartitionState]], budget: int
    ) -> list[ConsumedBatch]:
        """Up to ``budget`` entries of ``partitions``, taken in order, one batch per
        partition that had any."""
        if not partitions:
            return []
        scripts = await self._connection.scripts()
        keys = [state.stream for _, state in partitions]
        args: list[str | int] = [self._group, self._member_id, budget]
        for _, state in partitions:
            args += [state.mode, state.min_idle_ms, state.cursor]
        try:
            async with broker_errors(self._connection, "reading"):
                try:
                    reply = await scripts.read(keys=keys, args=args)
                except redis_errors.ResponseError as exc:
                    if "NOGROUP" in str(exc) or "no such key" in str(exc):
                        raise StreamGone(
                            f"a stream of consumer group {self._group!r} was deleted "
                            "meanwhile: the group reads its partitions from their committed "
                            "offsets again"
                        ) from None
                    raise
        except BaseException:
            for _, state in partitions:
                state.redeliver_unreturned()
            raise
        entries = read_columns(reply)
        batches = []
        at = 0
        for (tp, state), (count, mode, cursor, wait) in zip(partitions, reply[0], strict=True):
            state.mode = "c" if mode == b"c" else "r"
            state.cursor, state.wait_id = cursor.decode(), wait.decode()
            if count:
                part = entries.slice(at, count)
                at += count
                batch = ConsumedBatch(tp[0], tp[1], part)
                state.next_offset = batch.next_offset
                batches.append(batch)
        return batches

    async def wait(
        self, partitions: Sequence[tuple[TopicPartition, PartitionState]], seconds: float
    ) -> None:
        """Wait up to ``seconds`` for an entry after the last one of any of ``partitions``
        (a blocking ``XREAD``, which delivers nothing to the group)."""
        waiting = [s for _, s in partitions if s.mode == "r" and s.wait_id]
        if not waiting or len(waiting) < len(partitions):
            # Nothing to block on, or entries to claim that are not idle long enough yet.
            await asyncio.sleep(min(seconds, 0.05 if partitions else seconds))
            return
        client = await self._connection.client()
        streams: dict[Any, Any] = {s.stream: s.wait_id for s in waiting}
        async with broker_errors(self._connection, "waiting for messages"):
            await client.xread(streams, count=1, block=max(1, int(seconds * 1000)))

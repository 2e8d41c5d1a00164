"""Whether the other members of a consumer group are alive: they answer a ping.

Each member answers requests on ``_OMC.member.<member id>`` from its own connection. A member
whose process died has no connection left, so the server answers "no responders" at once:
after ``NO_RESPONDERS_GRACE`` seconds of that (time for a client to reconnect after a server
restart) the member is gone, even if it was killed by SIGKILL. A member that is there but
does not answer (a stopped or hung process) is gone after ``session_timeout`` seconds.
Members ping each other in the background while they poll, every ``PING_INTERVAL``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable

import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription as NatsSubscription

from omconnect.runtime.brokers.groups import GroupDocument, MemberLiveness
from omconnect.runtime.brokers.nats._connection import NatsConnection
from omconnect.runtime.brokers.nats._group_storage import KvGroupStorage

PING_INTERVAL = 0.5
NO_RESPONDERS_GRACE = 2.0


def ping_subject(member_id: str) -> str:
    return f"_OMC.member.{member_id}"


async def _pong(msg: Msg) -> None:
    if msg.reply:
        await msg.respond(b"")


class PingLiveness(MemberLiveness):
    """What the member ``member_id`` saw of the others' pings, and its answers to theirs."""

    gone_reason = "no answer to pings"
    interval = PING_INTERVAL

    def __init__(
        self,
        connection: NatsConnection,
        storage: KvGroupStorage,
        member_id: str,
        session_timeout: float,
    ) -> None:
        self._connection = connection
        self._storage = storage
        self._member_id = member_id
        self._session_timeout = session_timeout
        self._silent_since: dict[str, float] = {}
        self._unreachable_since: dict[str, float] = {}
        self._others: list[str] = []
        self._answering: NatsSubscription | None = None

    async def look(self) -> GroupDocument:
        document, _ = await self._storage.load()
        self._others = [m for m in document.members if m != self._member_id]
        return document

    async def before_sync(self) -> None:
        if self._answering is None:
            client = await self._connection.client()
            self._answering = await client.subscribe(ping_subject(self._member_id), cb=_pong)

    async def after_sync(self, document: GroupDocument) -> None:
        self._others = [m for m in document.members if m != self._member_id]
        await super().after_sync(document)

    async def gone_now(self) -> set[str]:
        """The members that have no connection right now (one ping each): for a process
        outside the group that changes its offsets, where waiting out a grace is pointless."""
        document, _ = await self._storage.load()
        client = await self._connection.client()
        ids = sorted(set(document.members))
        answers = await asyncio.gather(*(self._ping(client, m) for m in ids))
        return {m for m, answer in zip(ids, answers, strict=True) if answer == "no responders"}

    async def signal(self) -> None:
        with contextlib.suppress(Exception):
            await self._check(await self._connection.client(), self._others)

    async def stop(self) -> None:
        await super().stop()
        if self._answering is not None:
            with contextlib.suppress(Exception):
                await self._answering.unsubscribe()
            self._answering = None

    async def _check(self, client: Client, member_ids: Iterable[str]) -> None:
        """Ping ``member_ids``; keep the ones now considered gone in ``dead``."""
        ids = sorted(set(member_ids))
        answers = await asyncio.gather(*(self._ping(client, m) for m in ids))
        now = time.monotonic()
        dead = set()
        for member_id, answer in zip(ids, answers, strict=True):
            if answer == "ok":
                self._silent_since.pop(member_id, None)
                self._unreachable_since.pop(member_id, None)
                continue
            silent = now - self._silent_since.setdefault(member_id, now)
            if answer == "no responders":
                unreachable = now - self._unreachable_since.setdefault(member_id, now)
                if unreachable >= min(NO_RESPONDERS_GRACE, self._session_timeout):
                    dead.add(member_id)
            else:
                self._unreachable_since.pop(member_id, None)
            if silent >= self._session_timeout:
                dead.add(member_id)
        for gone in set(self._silent_since) - set(ids):
            self._silent_since.pop(gone, None)
            self._unreachable_since.pop(gone, None)
        self.dead = frozenset(dead)

    async def _ping(self, client: Client, member_id: str) -> str:
        try:
            await client.request(
                ping_subject(member_id), b"", timeout=min(1.0, self._session_timeout / 2)
            )
        except nats.errors.NoRespondersError:
            return "no responders"
        except (nats.errors.Error, TimeoutError):
            return "silent"
        return "ok"

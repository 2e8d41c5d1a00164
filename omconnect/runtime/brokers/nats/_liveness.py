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
import time
from collections.abc import Iterable

import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription as NatsSubscription

PING_INTERVAL = 0.5
NO_RESPONDERS_GRACE = 2.0


def ping_subject(member_id: str) -> str:
    return f"_OMC.member.{member_id}"


async def answer_pings(client: Client, member_id: str) -> NatsSubscription:
    """Answer the pings of the other members until the subscription is dropped."""

    async def pong(msg: Msg) -> None:
        if msg.reply:
            await msg.respond(b"")

    return await client.subscribe(ping_subject(member_id), cb=pong)


class Liveness:
    """What one member saw of the others' pings."""

    def __init__(self, session_timeout: float) -> None:
        self._session_timeout = session_timeout
        self._silent_since: dict[str, float] = {}
        self._unreachable_since: dict[str, float] = {}
        self.dead: set[str] = set()

    async def check(self, client: Client, member_ids: Iterable[str]) -> set[str]:
        """Ping ``member_ids``; the ones now considered gone (also kept in ``dead``)."""
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
        self.dead = dead
        return dead

    async def gone_now(self, client: Client, member_ids: Iterable[str]) -> set[str]:
        """The members that have no connection right now (one ping each): for a process
        outside the group that changes its offsets, where waiting out a grace is pointless."""
        ids = sorted(set(member_ids))
        answers = await asyncio.gather(*(self._ping(client, m) for m in ids))
        return {m for m, answer in zip(ids, answers, strict=True) if answer == "no responders"}

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

"""``MemberLiveness``: the driver's part of group membership, how one member tells that others
are gone (pings, heartbeats) and shows that it is not."""

from __future__ import annotations

import asyncio
import contextlib
from abc import ABC, abstractmethod

from omconnect.runtime.brokers.groups._document import GroupDocument


class MemberLiveness(ABC):
    """How one member of a group tells that others are gone, and shows that it is not: on
    each look and sync, and by a ``signal`` every ``interval`` seconds in the background
    while it is in the group.

    Attributes:
        dead: the other members found gone at the last look (or signal).
        gone_reason: how a gone member was noticed, for the log ("no answer to pings").
        interval: seconds between two background signals.
    """

    dead: frozenset[str] = frozenset()
    gone_reason: str
    interval: float
    _signalling: asyncio.Task[None] | None = None
    _stopped = False

    @abstractmethod
    async def look(self) -> GroupDocument:
        """The group's document as it is now; ``dead`` is up to date with it."""

    @abstractmethod
    async def before_sync(self) -> None:
        """Called before each sync of this member: show that it is there, see who is gone."""

    @abstractmethod
    async def gone_now(self) -> set[str]:
        """The members gone right now, for a commit from outside the group."""

    @abstractmethod
    async def signal(self) -> None:
        """One background round (a heartbeat, pings of the others); never raises."""

    async def after_sync(self, document: GroupDocument) -> None:
        """Called after each sync with the document stored: the background signals start."""
        del document
        if self._signalling is None:
            self._signalling = asyncio.create_task(self._signal_every_interval())

    async def stop(self) -> None:
        """Stop the background signals; idempotent."""
        self._stopped = True
        if self._signalling is not None:
            self._signalling.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._signalling
            self._signalling = None

    async def _signal_every_interval(self) -> None:
        # The flag as well as the cancel: a client library can lose a cancel that arrives
        # while its call completes (asyncio.wait_for on Python 3.11), and the task would run on.
        while not self._stopped:
            await asyncio.sleep(self.interval)
            if not self._stopped:
                await self.signal()

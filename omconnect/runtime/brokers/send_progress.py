"""``SendProgress``: how a producer waits for its server's acknowledgements.

A send fails on no progress, not on a total deadline: the timeout a driver is given
(``ack_timeout``, ``confirm_timeout``) is how long a producer waits without hearing from the
server about any of its messages (this send's or an earlier one's still in flight) while it
needs an answer. A large send to a slow but working server waits as long as acknowledgements
arrive; a stalled or vanished one fails it within the timeout. Waiting never cancels what it
waits for: ``asyncio.wait`` returns on its timeout and leaves the future running.
"""

from __future__ import annotations

import asyncio
from typing import Any


class SendProgress:
    """When a producer last heard from its server, and the waits that count on it."""

    def __init__(self) -> None:
        self.heard = 0.0  # loop time of the last answer (an acknowledgement or a refusal)

    def note(self, loop: asyncio.AbstractEventLoop) -> None:
        """The server answered just now (call it on ``loop``)."""
        self.heard = loop.time()

    async def wait(self, waited: asyncio.Future[Any], quiet: float) -> None:
        """Wait until ``waited`` is done (without raising its error), for as long as the
        server keeps answering: ``TimeoutError`` once it said nothing for ``quiet`` seconds
        (counted from the call at the earliest). ``waited`` is never cancelled."""
        since = asyncio.get_running_loop().time()
        while not waited.done():
            await asyncio.wait([waited], timeout=self.left(since, quiet))

    def left(self, since: float, quiet: float) -> float:
        """Seconds a wait begun at loop time ``since`` may still last: ``quiet`` after the
        server last answered (or after ``since``); ``TimeoutError`` when none are left."""
        left = max(self.heard, since) + quiet - asyncio.get_running_loop().time()
        if left <= 0:
            raise TimeoutError
        return left

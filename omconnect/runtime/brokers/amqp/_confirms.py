"""``Confirms``: a producer's publisher confirms, awaited for as long as they keep coming.

A send fails on no progress, not on a total deadline (``send_progress``): ``confirm_timeout``
is how long a producer waits without any confirm while it needs one.
"""

from __future__ import annotations

import asyncio
from typing import Any

from omconnect.runtime.brokers.send_progress import SendProgress


class SendConfirms:
    """The publishes of one send: ``done`` ends once all are confirmed, or at the first that
    fails (with its error)."""

    def __init__(self, confirms: Confirms, count: int) -> None:
        self._confirms = confirms
        self._publishes: list[asyncio.Future[Any]] = []
        self.left = count
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def add(self, publish: asyncio.Future[Any]) -> None:
        """Count ``publish`` (a future that ends with the server's confirm) in this send."""
        self._publishes.append(publish)
        publish.add_done_callback(self._settled)

    def cancel(self) -> None:
        """The send failed: stop waiting for the confirms of its publishes."""
        for publish in self._publishes:
            publish.cancel()
        if self.done.done() and not self.done.cancelled():
            self.done.exception()  # retrieved: the send raises its own error
        self.done.cancel()

    def _settled(self, publish: asyncio.Future[Any]) -> None:
        # One callback per publish, as asyncio.gather would add, that also notes the progress.
        self._confirms.note(publish.get_loop())
        error = None if publish.cancelled() else publish.exception()
        if not publish.cancelled() and error is None:
            self.left -= 1
        if self.done.done():
            return
        if publish.cancelled():
            self.done.cancel()
        elif error is not None:
            self.done.set_exception(error)
        elif self.left == 0:
            self.done.set_result(None)


class Confirms(SendProgress):
    """When the server last answered a publish of this producer (a confirm, a negative
    confirm or a failure of any send), and the waits on that."""

    def expect(self, count: int) -> SendConfirms:
        """A new send of ``count`` publishes."""
        return SendConfirms(self, count)

"""What a connection waits for from the server, and the publishes it feeds paho meanwhile.

``Replies`` maps the packet id of each publish, subscribe and unsubscribe to the group of
packets it belongs to (one ``publish`` call, one subscribe) and resolves the group's future
on the event loop once every packet has its acknowledgement: one cross-thread call per group,
not per packet. An acknowledgement can come (on paho's network thread) before its packet id
was bound (on the event loop): it waits in ``early``.

``PublishFeed`` hands messages to paho a window at a time. paho sends at most its
``max_inflight_messages`` (the server's receive maximum) and queues the rest, but its packet
ids are 16 bits and it refuses a publish whose id is still in use: a send of 100,000
messages cannot be handed over at once. So paho holds at most ``budget`` messages; the
network thread asks the event loop for more (``call_soon_threadsafe``) when half of them
were acknowledged. Messages are handed over in the order they were added.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(eq=False)
class ReplyGroup:
    """The reason codes of a group of packets, in order, and the future that gets them."""

    future: asyncio.Future[list[int]]
    results: list[int]
    remaining: int


class Replies:
    """Acknowledgements by packet id, delivered per group."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._lock = threading.Lock()
        self._open: set[ReplyGroup] = set()
        self._waiting: dict[int, tuple[ReplyGroup, int]] = {}
        self._early: dict[int, int] = {}
        self._failed: Exception | None = None

    def group(self, size: int) -> ReplyGroup:
        """A new group of ``size`` packets (on the event loop); failed at once when the
        connection already failed."""
        group = ReplyGroup(self.loop.create_future(), [0] * size, size)
        with self._lock:
            failed = self._failed
            if failed is None and size:
                self._open.add(group)
        if failed is not None:
            group.future.set_exception(failed)
        elif not size:
            group.future.set_result([])
        return group

    def bind(self, mid: int, group: ReplyGroup, index: int) -> None:
        """Packet ``mid`` is packet ``index`` of ``group`` (on the event loop)."""
        with self._lock:
            reason = self._early.pop(mid, None)
            if reason is None:
                self._waiting[mid] = (group, index)
                return
        self._record(group, index, reason)

    def answer(self, mid: int, reason: int) -> None:
        """The server acknowledged packet ``mid`` (on the network thread)."""
        with self._lock:
            entry = self._waiting.pop(mid, None)
            if entry is None:
                self._early[mid] = reason
                return
        self._record(*entry, reason)

    def _record(self, group: ReplyGroup, index: int, reason: int) -> None:
        with self._lock:
            group.results[index] = reason
            group.remaining -= 1
            if group.remaining:
                return
            self._open.discard(group)
        call_soon(self.loop, settle, group.future, group.results, None)

    def fail(self, error: Exception) -> None:
        """Fail every open group, and every group made from now on (from any thread)."""
        with self._lock:
            self._failed = error
            groups = list(self._open)
            self._open.clear()
            self._waiting.clear()
            self._early.clear()
        for group in groups:
            call_soon(self.loop, settle, group.future, None, error)


class PublishFeed:
    """Messages not handed to paho yet, in order; ``send`` hands one over and returns its
    packet id (raising when paho refuses)."""

    def __init__(self, replies: Replies, budget: int, send: Callable[[Any], int]) -> None:
        self._replies = replies
        self._budget = budget
        self._send = send
        self._queue: deque[tuple[Any, ReplyGroup, int]] = deque()
        self._lock = threading.Lock()
        self._in_paho = 0
        self._wake_pending = False

    def add(self, messages: Sequence[Any]) -> asyncio.Future[list[int]]:
        """Queue ``messages`` and hand paho what fits (on the event loop): a future of their
        acknowledgements' reason codes."""
        group = self._replies.group(len(messages))
        if not group.future.done():
            self._queue.extend((message, group, i) for i, message in enumerate(messages))
            self.pump()
        return group.future

    def pump(self) -> None:
        """Hand paho messages until it holds ``budget`` (on the event loop)."""
        with self._lock:
            self._wake_pending = False
        while self._queue:
            with self._lock:
                if self._in_paho >= self._budget:
                    return
                self._in_paho += 1
            message, group, index = self._queue.popleft()
            try:
                mid = self._send(message)
            except Exception as error:
                self._queue.clear()
                self._replies.fail(error)
                return
            self._replies.bind(mid, group, index)

    def acknowledged(self) -> None:
        """paho holds one message fewer (on the network thread): ask for more when it holds
        half its budget and more are waiting."""
        with self._lock:
            self._in_paho -= 1
            if self._wake_pending or not self._queue or self._in_paho > self._budget // 2:
                return
            self._wake_pending = True
        call_soon(self._replies.loop, self.pump)

    def clear(self) -> None:
        """Forget what waits (the connection is gone; its groups failed)."""
        self._queue.clear()


def settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    """Resolve ``future`` unless it is done (cancelled, or failed with the connection)."""
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


def call_soon(loop: asyncio.AbstractEventLoop, callback: Callable[..., None], *args: Any) -> None:
    """``callback(*args)`` on ``loop`` from another thread; nothing once the loop closed (a
    connection outliving the test or command that made it)."""
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(callback, *args)

"""``Membership``: what a consumer-group member owns, kept up to date by librdkafka's rebalance
callbacks, and where it starts reading what it is given.

librdkafka calls ``on_assign`` / ``on_revoke`` / ``on_lost`` from inside ``consume``, on the
thread that polls. The member's ``RebalanceListener`` is a coroutine on the event loop; the
callback runs it there and waits for it (the loop is free: it awaits the poll's thread), so the
listener is awaited inside ``Consumer.poll`` as the contract says, revocations first. While it
runs, the consumer's own librdkafka calls (a commit in ``on_partitions_revoked``) are made on
that same thread (``call_inside``): librdkafka holds a commit from another thread until the
rebalance callback returns, which would deadlock.

Where a partition starts when it is assigned, first match wins: an offset given to ``seek``
before the member owned it; the member's own position when the same rebalance took the
partition away and gave it back (the range assignor is eager: every rebalance revokes
everything first, and nobody else can have read it in between); for the first assignment of a
``start="latest"`` member, the partition's end when the consumer subscribed (so messages
published after the first poll are read, however long the join takes); else the group's
committed offset, else ``auto.offset.reset``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import queue
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from confluent_kafka import Consumer as LibrdkafkaConsumer
from confluent_kafka import TopicPartition as KafkaPartition

from omconnect.runtime.brokers.base import RebalanceListener, TopicPartition
from omconnect.runtime.brokers.kafka._fetched import FetchedRecords

log = logging.getLogger("omconnect.broker.kafka")

_BEGINNING = -2

T = TypeVar("T")
_Call = tuple[Callable[[], Any], "concurrent.futures.Future[Any]"]


class Membership:
    """The partitions a member owns and the starts of the ones it will get.

    Attributes:
        paused: the partitions the member pauses (owned or not).
        seeks: where partitions not owned yet start once assigned (``Consumer.seek``).
        fetched: records librdkafka handed over that no poll returned yet.
        latest: the partitions' ends when a ``start="latest"`` member subscribed.
        loop: the event loop the listener runs on (the polling loop).
        owned: the partitions assigned to the member now (replaced, never changed in place:
            other tasks read it while a poll's thread runs the callbacks).
        revoking: the partitions being revoked while the listener runs (commits of them
            are this member's last word on them and are allowed).
        unfetched: assigned partitions no fetch response has come for yet (librdkafka
            starts fetching each at its own moment after an assignment).
        assigned_once: whether the group has given the member an assignment yet.
    """

    def __init__(
        self,
        client: LibrdkafkaConsumer,
        group: str,
        listener: RebalanceListener | None,
        listener_timeout: float,
        committed_timeout: float,
    ) -> None:
        self.owned: frozenset[TopicPartition] = frozenset()
        self.revoking: frozenset[TopicPartition] = frozenset()
        self.paused: frozenset[TopicPartition] = frozenset()
        self.unfetched: frozenset[TopicPartition] = frozenset()
        self.assigned_once = False
        self.closing = False
        self.loop: asyncio.AbstractEventLoop | None = None
        self.seeks: dict[TopicPartition, int] = {}
        self.fetched = FetchedRecords()
        self.latest: dict[TopicPartition, int] | None = None
        self._client = client
        self._group = group
        self._listener = listener
        self._listener_timeout = listener_timeout
        self._committed_timeout = committed_timeout
        self._kept: dict[TopicPartition, int] = {}
        self._inbox: queue.SimpleQueue[_Call | None] | None = None
        self._inbox_lock = threading.Lock()

    def callbacks(self) -> dict[str, Callable[[LibrdkafkaConsumer, list[KafkaPartition]], None]]:
        """The keyword arguments of ``subscribe``."""
        return {
            "on_assign": self._on_assign,
            "on_revoke": self._on_revoke,
            "on_lost": self._on_lost,
        }

    def _on_assign(self, client: LibrdkafkaConsumer, partitions: list[KafkaPartition]) -> None:
        given = [(p.topic, p.partition) for p in partitions]
        starts = self._starts(given)
        for partition, tp in zip(partitions, given, strict=True):
            if tp in starts:
                partition.offset = starts[tp]
        client.assign(partitions)
        paused = [p for p, tp in zip(partitions, given, strict=True) if tp in self.paused]
        if paused:
            client.pause(paused)
        self.owned = frozenset(given)
        self.unfetched = frozenset(given)
        self._kept = {}
        self.assigned_once = True
        log.debug("consumer group %r: assigned %s", self._group, sorted(given))
        if self._listener is not None and not self.closing:
            self._await(self._listener.on_partitions_assigned(frozenset(given)))

    def _starts(self, given: list[TopicPartition]) -> dict[TopicPartition, int]:
        starts: dict[TopicPartition, int] = {}
        for tp in given:
            if tp in self.seeks:
                starts[tp] = self.seeks.pop(tp)
            elif tp in self._kept:
                starts[tp] = self._kept[tp]
        rest = [tp for tp in given if tp not in starts]
        if rest and self.latest is not None and not self.assigned_once:
            committed = self._client.committed(
                [KafkaPartition(*tp) for tp in rest], timeout=self._committed_timeout
            )
            for found in committed:
                if found.offset < 0:
                    tp = (found.topic, found.partition)
                    starts[tp] = self.latest.get(tp, _BEGINNING)
        return starts

    def _on_revoke(self, client: LibrdkafkaConsumer, partitions: list[KafkaPartition]) -> None:
        taken = frozenset((p.topic, p.partition) for p in partitions)
        kept = {(p.topic, p.partition): p.offset for p in client.position(partitions)}
        # librdkafka's position is past the records fetched but not returned yet.
        kept.update(self.fetched.drop(taken))
        self._kept = {tp: offset for tp, offset in kept.items() if offset >= 0}
        self._revoke(taken)

    def _on_lost(self, client: LibrdkafkaConsumer, partitions: list[KafkaPartition]) -> None:
        self._kept = {}  # the group gave them to others meanwhile: start where they committed
        self.fetched.drop((p.topic, p.partition) for p in partitions)
        self._revoke(frozenset((p.topic, p.partition) for p in partitions))

    def _revoke(self, taken: frozenset[TopicPartition]) -> None:
        log.debug("consumer group %r: revoked %s", self._group, sorted(taken))
        try:
            if self._listener is not None and not self.closing and taken:
                self.revoking = taken
                self._await(self._listener.on_partitions_revoked(taken))
        finally:
            self.revoking = frozenset()
            self.owned = self.owned - taken

    def call_inside(self, function: Callable[[], T]) -> concurrent.futures.Future[T] | None:
        """Run ``function`` on the thread that runs the listener, if one runs now; None
        otherwise (then the caller runs it itself)."""
        result: concurrent.futures.Future[T] = concurrent.futures.Future()
        with self._inbox_lock:
            if self._inbox is None:
                return None
            self._inbox.put((function, result))
        return result

    def _await(self, coroutine: Coroutine[Any, Any, None]) -> None:
        """Run a listener coroutine on the loop and wait for it, on the poll's thread, making
        the librdkafka calls it asks for (``call_inside``) meanwhile."""
        loop = self.loop
        if loop is None or loop.is_closed():
            coroutine.close()
            return
        inbox: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        with self._inbox_lock:
            self._inbox = inbox
        try:
            running = asyncio.run_coroutine_threadsafe(coroutine, loop)
            running.add_done_callback(lambda _: inbox.put(None))
            while (call := inbox.get(timeout=self._listener_timeout)) is not None:
                _make(call)
        finally:
            with self._inbox_lock:
                self._inbox = None
            while not inbox.empty():  # calls that came with the listener's end
                if (call := inbox.get_nowait()) is not None:
                    _make(call)
        running.result(timeout=0)


def _make(call: _Call) -> None:
    function, result = call
    try:
        result.set_result(function())
    except BaseException as error:  # handed to the caller on the loop
        result.set_exception(error)

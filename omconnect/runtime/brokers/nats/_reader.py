"""``PartitionReader``: reads one partition stream from a position through a pull consumer.

The position is the reader's own (the next offset it returns), not the group's: a reader is
an ephemeral JetStream pull consumer (no acks, its state in memory) created at the position,
and seeking makes a new one. Messages are asked for while ``poll`` runs, at most what the
poll may return, so a reader holds back at most one poll's worth it has not returned yet (a
topic trimmed meanwhile is read from its new start, not from a stale prefetch): first what
is there (a ``no_wait`` request, answered at once), and if nothing is, what arrives while the
poll waits (a request with an expiry).

The pull requests are JetStream's (``CONSUMER.MSG.NEXT`` with a batch size, answered on an
inbox with the messages, then a ``404``/``408`` status when there are fewer), sent and
received through nats-py; nats-py's own ``fetch`` waits for each message with two asyncio
tasks, which caps a reader at some 15,000 messages a second, where a subscription callback
appending to a buffer is several times faster.

The server forgets an ephemeral consumer that went unused for ``INACTIVE_THRESHOLD`` seconds
(a partition paused that long) and all of them when it restarts; a request to it is then
simply not answered. A reader whose request went unanswered asks whether its consumer still
exists and makes it again at its position if not.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections import deque
from typing import Any

import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import DEFAULT_PREFIX, AckPolicy, ConsumerConfig, DeliverPolicy

from omconnect.runtime.brokers.base import ConsumedBatch, ConsumerStart, TopicPartition
from omconnect.runtime.brokers.nats._connection import describe
from omconnect.runtime.brokers.nats._message_codec import decode_messages

log = logging.getLogger("omconnect.broker.nats")

INACTIVE_THRESHOLD = 300.0
# How long a ``no_wait`` request may take to be answered (the server answers at once).
_ANSWER_GRACE = 1.0
# How long after its expiry a waiting request may still bring messages (they are on their
# way). Its ``408`` is not waited for: the server does not always send one after a request
# that brought messages, and a reader that waited for it asked for nothing more until a
# second grace ran out, holding back what arrived meanwhile (p99 over 1 s at 5,000 msgs/s).
_LATE = 0.05
_ENDED = ("404", "408", "409")


class PartitionReader:
    """Reads ``tp`` (the stream ``stream``) from ``position`` on; a position of None starts
    where a new group member starts (``start``). ``arrived`` is set whenever messages came
    or a request ended (shared by the readers of one consumer, which waits on it)."""

    def __init__(
        self,
        client: Client,
        js: JetStreamContext,
        tp: TopicPartition,
        stream: str,
        position: int | None,
        arrived: asyncio.Event,
        start: ConsumerStart = "earliest",
    ) -> None:
        self.tp = tp
        self.position = position
        self._client = client
        self._js = js
        self._stream = stream
        self._start = start
        self._arrived = arrived
        self._consumer: str | None = None
        self._inbox = ""
        self._sub: Any = None
        self._buffer: deque[Msg] = deque()
        self._left = 0  # messages the open request may still bring
        self._until = 0.0  # when the open request brings nothing more (monotonic)
        self._answered = True
        self._broken = False

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def take(self, budget: int) -> ConsumedBatch | None:
        """Up to ``budget`` fetched messages, moving the position past them."""
        if not self._buffer or budget < 1:
            return None
        taken = [self._buffer.popleft() for _ in range(min(budget, len(self._buffer)))]
        messages = decode_messages(taken)
        offsets = messages.offsets
        assert offsets is not None, "decoded batches have offsets"
        self.position = int(offsets[len(messages) - 1].as_py()) + 1
        return ConsumedBatch(self.tp[0], self.tp[1], messages)

    @property
    def requesting(self) -> bool:
        """Whether a request of this reader may still bring messages."""
        return self._left > 0 and time.monotonic() < self._until

    async def request(self, batch: int, wait: float | None) -> None:
        """Ask for up to ``batch`` messages: the ones there now (``wait`` None: the server
        answers at once, ending with a status when it has fewer), or the ones arriving within
        ``wait`` seconds; unless a request is open already. Failures (disconnected, a consumer
        to make again) are retried by the next request: the poll gets fewer messages or none."""
        if self.requesting:
            return
        try:
            if self._consumer is not None and not self._answered:
                await self._check_consumer()
            if self._consumer is None or self._broken:
                await self._open()
            if wait is None:
                asked: dict[str, object] = {"batch": batch, "no_wait": True}
                over = _ANSWER_GRACE
            else:
                expires = max(wait, 0.01)
                asked = {"batch": batch, "expires": int(expires * 1e9)}
                over = expires + _LATE
            self._left, self._until, self._answered = batch, time.monotonic() + over, False
            await self._client.publish(
                f"{DEFAULT_PREFIX}.CONSUMER.MSG.NEXT.{self._stream}.{self._consumer}",
                json.dumps(asked).encode(),
                reply=self._inbox,
            )
        except (nats.errors.Error, OSError, TimeoutError) as exc:
            log.debug("NATS reader of %s: %s", self.tp, describe(exc))
            self._left, self._broken = 0, True

    async def _on_message(self, msg: Msg) -> None:
        if msg.reply and msg.reply.startswith("$JS.ACK."):
            self._buffer.append(msg)
            self._left -= 1
            self._answered = True
            self._arrived.set()
            return
        status = msg.headers.get("Status") if msg.headers else None
        if status in _ENDED:
            self._left, self._answered = 0, True
            if status == "409" and "deleted" in str(msg.headers).lower():
                self._broken = True
            self._arrived.set()

    async def _open(self) -> None:
        await self._drop_consumer()
        self._buffer.clear()
        state = (await self._js.stream_info(self._stream)).state
        first, high_water = max(state.first_seq - 1, 0), state.last_seq
        if self.position is None or self.position > high_water:
            # No position yet, or one beyond the log (a recreated stream): start as a new
            # member does rather than wait for offsets that would be new, other messages.
            self.position = first if self._start == "earliest" else high_water
        elif self.position < first:
            self.position = first  # trimmed away: read on from the new start
        name = f"omc{uuid.uuid4().hex}"
        config = ConsumerConfig(
            name=name,
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=self.position + 1,
            ack_policy=AckPolicy.NONE,
            inactive_threshold=INACTIVE_THRESHOLD,
            mem_storage=True,
            num_replicas=1,
        )
        self._inbox = self._client.new_inbox()
        self._sub = await self._client.subscribe(self._inbox, cb=self._on_message)
        await self._js.add_consumer(self._stream, config)
        self._consumer = name
        self._broken = False
        self._answered = True

    async def _check_consumer(self) -> None:
        """A request went unanswered: make the consumer again if the server forgot it."""
        self._answered = True
        assert self._consumer is not None
        try:
            await self._js.consumer_info(self._stream, self._consumer)
        except nats.js.errors.NotFoundError:
            log.info("NATS reader of %s: its consumer is gone, making it again", self.tp)
            self._broken = True

    async def seek(self, position: int | None) -> None:
        """Read from ``position`` next (None: where a new member starts)."""
        await self.close()
        self.position = position

    async def close(self) -> None:
        """Delete the consumer; what was fetched and not taken is dropped (the position is
        before it)."""
        self._buffer.clear()
        self._left = 0
        await self._drop_consumer()

    async def _drop_consumer(self) -> None:
        sub, self._sub = self._sub, None
        consumer, self._consumer = self._consumer, None
        if sub is not None:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        if consumer is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2):
                    await self._js.delete_consumer(self._stream, consumer)

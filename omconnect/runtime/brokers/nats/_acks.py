"""``AckInbox``: the acknowledgements of a producer's JetStream publishes, one future per send.

Publishing to a stream's subject with a reply subject is how JetStream publishes: the server
answers on the reply subject with a ``PubAck`` (``{"stream": ..., "seq": ...}``, with
``"duplicate": true`` for a message id it stored already, or ``{"error": ...}``). nats-py's
``publish_async`` does this with a future and a semaphore wait (an asyncio task) per message,
which costs more than the publish itself; here every message of a send gets the reply subject
``<inbox>.<send>.<index>`` and one subscription callback fills in the send's sequences, so a
send is one future however many messages it has.

A send waits as long as acknowledgements keep coming (``until_acknowledged``): a large send to
a slow server takes as long as it takes, a stalled or vanished one fails after ``ack_timeout``
seconds without any.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from dataclasses import dataclass, field

import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from omconnect.runtime.brokers.send_progress import SendProgress

_NO_RESPONDERS = "503"


@dataclass
class PendingSend:
    """The acknowledgements of one send: the stream sequence of each message (0 until
    acknowledged) and a future that ends when all came, or at the first error."""

    sequences: list[int]
    left: int
    done: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    published: int = 0


class AckInbox:
    """The reply subjects of one producer and the sends waiting on them."""

    def __init__(self) -> None:
        self._prefix = ""
        self._subscription: Subscription | None = None
        self._sends: dict[int, PendingSend] = {}
        self._numbers = itertools.count()
        # Loop time of the last acknowledgement of any send, the progress a waiting send sees.
        self._progress = SendProgress()
        # Messages published and not acknowledged yet, over every send (``room``).
        self.outstanding = 0
        self._acked = asyncio.Event()

    async def open(self, client: Client) -> None:
        if self._subscription is None:
            self._prefix = client.new_inbox()
            self._subscription = await client.subscribe(f"{self._prefix}.*.*", cb=self._on_ack)

    def expect(self, count: int) -> tuple[int, PendingSend]:
        """A new send of ``count`` messages: its number (for ``reply``) and its state."""
        number = next(self._numbers)
        pending = PendingSend([0] * count, count)
        self._sends[number] = pending
        return number, pending

    def reply(self, send: int, index: int) -> str:
        """The reply subject of message ``index`` of send ``send``."""
        return f"{self._prefix}.{send}.{index}"

    def published(self, pending: PendingSend) -> None:
        """One more message of ``pending`` is out."""
        pending.published += 1
        self.outstanding += 1

    async def room(self, window: int, quiet: float) -> None:
        """Wait until fewer than ``window`` messages are out unacknowledged, for as long as
        acknowledgements keep coming (``TimeoutError`` once none came for ``quiet`` seconds).
        The server sends every acknowledgement to this producer's inbox; with too many
        outstanding, it finds the connection a slow consumer and drops them (1M messages of
        twenty 50,000-message sends at once lost acknowledgements for good)."""
        since = asyncio.get_running_loop().time()
        while self.outstanding >= window:
            self._acked.clear()
            left = self._progress.left(since, quiet)  # TimeoutError: the server said nothing
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(left):
                    await self._acked.wait()

    def forget(self, send: int) -> None:
        """Stop waiting for a send (done, failed or given up on)."""
        pending = self._sends.pop(send, None)
        if pending is not None:
            self.outstanding -= pending.published - (len(pending.sequences) - pending.left)
            self._acked.set()

    async def until_acknowledged(self, pending: PendingSend, quiet: float) -> None:
        """Wait until every message of ``pending`` is acknowledged or it failed (raising its
        error), for as long as acknowledgements of this producer's sends keep coming
        (``SendProgress``: the server answers in order): ``TimeoutError`` once none came for
        ``quiet`` seconds. ``pending.done`` is never cancelled."""
        await self._progress.wait(pending.done, quiet)
        pending.done.result()

    @property
    def waiting(self) -> list[asyncio.Future[None]]:
        """The futures of every send still waiting for acknowledgements."""
        return [pending.done for pending in self._sends.values() if not pending.done.done()]

    async def _on_ack(self, msg: Msg) -> None:
        self._progress.note(asyncio.get_running_loop())
        _, send, index = msg.subject.rsplit(".", 2)
        pending = self._sends.get(int(send))
        if pending is None or pending.done.done():
            return
        if msg.headers and msg.headers.get("Status") == _NO_RESPONDERS:
            pending.done.set_exception(nats.js.errors.NoStreamResponseError())
            return
        try:
            answer = json.loads(msg.data)
        except ValueError:
            pending.done.set_exception(nats.js.errors.Error(f"bad PubAck {msg.data[:80]!r}"))
            return
        if "error" in answer:
            pending.done.set_exception(nats.js.errors.APIError.from_error(answer["error"]))
            return
        at = int(index)
        if pending.sequences[at] == 0:
            pending.sequences[at] = int(answer["seq"])
            pending.left -= 1
            self.outstanding -= 1
            self._acked.set()
            if pending.left == 0:
                pending.done.set_result(None)

    async def close(self) -> None:
        for pending in self._sends.values():
            if not pending.done.done():
                pending.done.cancel()
        self._sends.clear()
        if self._subscription is not None:
            subscription, self._subscription = self._subscription, None
            await subscription.unsubscribe()

"""The catalog: a stream queue listing the topics and consumer groups declared under a prefix.

AMQP has no way to list exchanges or queues (the management plugin's HTTP API has, but it
may be absent and needs other credentials), so the driver writes down what it declares: one
message per new topic or group in the stream ``<prefix or omconnect>:catalog``, body the
name, header ``om-kind`` ``topic`` or ``group``. A stream keeps its messages when they are
read, so every reader reads it all. A stream has no end a reader is told about, so a reader
first appends a marker of its own and reads from the first message until that marker.

Stream queues need RabbitMQ 3.9 or newer with the ``stream_queue`` feature flag; where the
stream cannot be declared the catalog holds what this process declared, and says so once.
"""

from __future__ import annotations

import asyncio
import logging
import uuid

import aio_pika
import aiormq.exceptions
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage

from omconnect.runtime.brokers.amqp._connection import (
    AmqpConnection,
    broker_errors,
    close_channel,
    describe,
)
from omconnect.runtime.brokers.base import BrokerError

log = logging.getLogger("omconnect.broker.amqp")

KIND = "om-kind"
TOPIC = "topic"
GROUP = "group"
_MARKER = "marker"
# Catalog messages a reader holds unacknowledged (a stream consumer needs a prefetch).
_READ_PREFETCH = 1000


class Catalog:
    """Records declared names in the catalog stream (or, without streams, in this process).

    ``create`` false (read-only commands): reading does not declare the stream; where there is
    none, nothing was declared under the prefix.
    """

    def __init__(self, connection: AmqpConnection, create: bool = True) -> None:
        self._connection = connection
        self._create = create
        self._channel: AbstractChannel | None = None
        self._available: bool | None = None
        self._local: dict[str, set[str]] = {TOPIC: set(), GROUP: set()}

    async def record(self, kind: str, name: str) -> None:
        """Write down that ``name`` (a ``TOPIC`` or ``GROUP``) was declared.

        Raises:
            BrokerError: the server cannot be reached or refused.
        """
        self._local[kind].add(name)
        if await self._stream(create=True):
            await self._append(kind, name.encode())

    async def read(self) -> dict[str, set[str]]:
        """Every name recorded, by kind: all of the stream's, or this process's without one.

        Raises:
            BrokerError: the server cannot be reached or refused, or the stream is not read
                to its end within ``confirm_timeout``.
        """
        found = {kind: set(names) for kind, names in self._local.items()}
        if not await self._stream(create=self._create):
            return found
        marker = uuid.uuid4().hex.encode()
        await self._append(_MARKER, marker)
        reader = await self._connection.channel()
        done = asyncio.get_running_loop().create_future()

        async def on_message(message: AbstractIncomingMessage) -> None:
            await message.ack()
            kind = message.headers.get(KIND)
            if kind in found:
                found[str(kind)].add(message.body.decode())
            elif kind == _MARKER and message.body == marker and not done.done():
                done.set_result(None)

        timeout = self._connection.options.confirm_timeout
        try:
            async with asyncio.timeout(timeout):
                async with broker_errors(self._connection, "reading the topic catalog"):
                    await reader.set_qos(prefetch_count=_READ_PREFETCH)
                    queue = await reader.get_queue(self._connection.names.catalog, ensure=False)
                    await queue.consume(on_message, arguments={"x-stream-offset": "first"})
                    await done
        except TimeoutError:
            raise BrokerError(
                f"RabbitMQ {self._connection.display}: the topic catalog "
                f"{self._connection.names.catalog!r} was not read to its end within "
                f"{timeout:g} s (confirm_timeout)"
            ) from None
        finally:
            await close_channel(reader)
        return found

    async def _stream(self, create: bool) -> bool:
        """Whether the catalog stream is there, declaring it (once) if ``create``."""
        if self._available is not None:
            return self._available
        channel = await self._connection.channel()
        name = self._connection.names.catalog
        try:
            async with broker_errors(self._connection, "declaring the topic catalog"):
                try:
                    await channel.declare_queue(
                        name,
                        durable=True,
                        passive=not create,
                        arguments={"x-queue-type": "stream"},
                    )
                    self._available = True
                except aiormq.exceptions.ChannelNotFoundEntity:
                    return False  # not declared yet, and not to be declared now
                except aiormq.exceptions.ChannelClosed as exc:
                    self._available = False
                    log.warning(
                        "RabbitMQ %s: cannot declare the catalog stream %r (%s): topics list "
                        "shows only the topics this process declared (stream queues need "
                        "RabbitMQ 3.9 or newer)",
                        self._connection.display,
                        name,
                        describe(exc),
                    )
        finally:
            await close_channel(channel)
        return self._available

    async def _append(self, kind: str, body: bytes) -> None:
        if self._channel is None or self._channel.is_closed:
            self._channel = await self._connection.channel(confirms=True)
        message = aio_pika.Message(
            body, headers={KIND: kind}, delivery_mode=aio_pika.DeliveryMode.PERSISTENT
        )
        async with broker_errors(self._connection, "writing the topic catalog"):
            async with asyncio.timeout(self._connection.options.confirm_timeout):
                await self._channel.default_exchange.publish(
                    message, routing_key=self._connection.names.catalog, mandatory=False
                )

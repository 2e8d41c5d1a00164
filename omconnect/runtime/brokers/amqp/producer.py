"""``AmqpProducer``: publishes message batches to topics' exchanges with publisher confirms."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import Any, cast

import aiormq
import aiormq.exceptions
from aio_pika.abc import AbstractChannel

from omconnect.runtime.brokers.amqp._confirms import Confirms
from omconnect.runtime.brokers.amqp._connection import (
    CLIENT_ERRORS,
    AmqpConnection,
    close_channel,
    describe,
)
from omconnect.runtime.brokers.amqp._message_codec import encode_rows
from omconnect.runtime.brokers.amqp._topology import Topology
from omconnect.runtime.brokers.base import BrokerError, Producer, SendResult
from omconnect.schemas.message_batch import MessageBatch

# Publishes of a producer waiting for their confirm at most: the client handles each confirm
# by scanning every waiting publish, so a bounded window keeps large sends linear.
MAX_UNCONFIRMED = 1000


class AmqpProducer(Producer):
    """Publishes through a channel of its own in publisher-confirm mode.

    A send publishes every message (persistent, its topic's name as the routing key) without
    waiting for the previous one's confirm, and returns once RabbitMQ confirmed them all: a
    confirm comes once every queue the message was routed to has it (written to disk for
    persistent messages in durable queues; on a quorum queue, by a majority of its replicas).
    A message no group's queue is bound to is confirmed and dropped: a queue keeps what was
    published after its group subscribed. Concurrent sends publish one after the other, so
    each queue stores them in call order, while their confirms are awaited together.

    A send waits as long as confirms keep coming (``_confirms``): a large send to a slow
    server is not cut short. One that fails (a negative confirm, no confirm for
    ``confirm_timeout`` seconds while it waits for one, a lost connection) raises
    ``BrokerError``; some of its messages may be stored, and nothing of it is published
    again behind later sends. The channel is then dropped, and the next send opens another.

    ``SendResult.first_offset`` numbers the messages this producer published, from 0: a queue
    has no offsets, and a consumer numbers what it reads on its own.
    """

    def __init__(self, connection: AmqpConnection, topology: Topology) -> None:
        self._connection = connection
        self._topology = topology
        self._channel: AbstractChannel | None = None
        self._order = asyncio.Lock()
        self._unconfirmed: deque[asyncio.Task[Any]] = deque()
        self._confirms = Confirms()
        self._sent = 0
        self._closed = False

    async def send(
        self, topic: str, messages: MessageBatch, partition: int | None = None
    ) -> list[SendResult]:
        """Publish ``messages`` to ``topic`` (declared if new); returns once every message
        is confirmed.

        Raises:
            ValueError: a partition other than 0 (amqp:// topics have one), or a bad topic.
            BrokerError: a message was refused, no confirm came for ``confirm_timeout``
                seconds while some were missing, or the server cannot be reached; some
                messages may be stored.
        """
        if self._closed:
            raise BrokerError("the producer is closed")
        if partition not in (None, 0):
            raise ValueError(
                f"topic {topic!r} has one partition (amqp:// topics are not partitioned), "
                f"not partition {partition}"
            )
        if len(messages) == 0:
            return []
        exchange = await self._topology.ensure_topic(topic)
        rows = encode_rows(messages)
        timeout = self._connection.options.confirm_timeout
        confirms = self._confirms.expect(len(rows))
        try:
            async with self._order:
                channel = await self._open()
                # The client's channel: its publish can skip waiting for each write.
                raw = cast(aiormq.Channel, await channel.get_underlay_channel())
                for body, properties in rows:
                    publish = asyncio.ensure_future(
                        raw.basic_publish(
                            body,
                            exchange=exchange,
                            routing_key=topic,
                            properties=properties,
                            wait=False,
                        )
                    )
                    confirms.add(publish)
                    await self._bound_unconfirmed(publish, timeout)
                first = self._sent
                self._sent += len(rows)
            await self._confirms.wait(confirms.done, timeout)
            confirms.done.result()
        except BaseException as exc:
            unconfirmed = confirms.left
            confirms.cancel()
            await self._drop_channel()
            if isinstance(exc, TimeoutError):
                raise BrokerError(
                    f"RabbitMQ {self._connection.display}: {unconfirmed} of {len(rows)} "
                    f"messages to topic {topic!r} were not confirmed: no confirm for "
                    f"{timeout:g} s (confirm_timeout)"
                ) from None
            if isinstance(exc, aiormq.exceptions.ChannelNotFoundEntity):
                self._topology.forget(topic)
            if isinstance(exc, CLIENT_ERRORS):
                raise BrokerError(self._failure(topic, exc)) from None
            raise
        return [SendResult(topic, 0, first, len(rows))]

    async def _bound_unconfirmed(self, publish: asyncio.Task[Any], timeout: float) -> None:
        """Count ``publish`` among this producer's unconfirmed ones, waiting for the oldest
        while there are ``MAX_UNCONFIRMED`` (their failures are their own sends'), for as
        long as confirms come at least every ``timeout`` seconds (``TimeoutError``)."""
        unconfirmed = self._unconfirmed
        unconfirmed.append(publish)
        while unconfirmed and (unconfirmed[0].done() or len(unconfirmed) > MAX_UNCONFIRMED):
            if not unconfirmed[0].done():
                await self._confirms.wait(unconfirmed[0], timeout)
            unconfirmed.popleft()

    def _failure(self, topic: str, error: BaseException) -> str:
        where = f"RabbitMQ {self._connection.display}"
        if isinstance(error, aiormq.exceptions.DeliveryError):
            return (
                f"{where} refused messages to topic {topic!r} (a negative confirm: a queue "
                "bound to it may be full with overflow reject-publish, or unavailable)"
            )
        if isinstance(error, aiormq.exceptions.ChannelNotFoundEntity):
            return (
                f"{where}: the exchange of topic {topic!r} is gone ({describe(error)}); the "
                "next send declares it again"
            )
        return f"{where}: publishing to topic {topic!r} failed: {describe(error)}"

    async def _open(self) -> AbstractChannel:
        if self._channel is None or self._channel.is_closed:
            self._channel = await self._connection.channel(confirms=True)
        return self._channel

    async def _drop_channel(self) -> None:
        channel, self._channel = self._channel, None
        if channel is not None:
            # A server that stopped confirming may not answer the close either.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._connection.options.confirm_timeout):
                    await close_channel(channel)

    async def flush(self) -> None:
        """Wait until every send so far is confirmed (or failed)."""
        if self._unconfirmed:
            await asyncio.wait(list(self._unconfirmed))

    async def close(self) -> None:
        """Close the producer's channel: sends still waiting for confirms fail."""
        self._closed = True
        await self._drop_channel()

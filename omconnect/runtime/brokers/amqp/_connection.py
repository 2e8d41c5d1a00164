"""One AMQP connection per broker: opened on first use, again after it was lost, bounded in
time, and every failure told in one line that says what was tried and what to check.

aio-pika's robust connection restores channels, consumers and declarations by itself after a
reconnect, but it cannot restore what matters here: publishes waiting for confirms and the
delivery tags of unacknowledged messages die with their channel. So the connection is a plain
one, and the producer and consumers notice a lost channel themselves: a send fails (the
runtime sends again), a consumer opens a new channel on its next poll (the server has put its
unacknowledged messages back in the queue).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import re
from collections.abc import AsyncIterator
from typing import Any

import aio_pika
import aiormq.exceptions
from aio_pika.abc import AbstractChannel, AbstractConnection

from omconnect.runtime.brokers.amqp._naming import Names
from omconnect.runtime.brokers.amqp._options import AmqpOptions, QueueType
from omconnect.runtime.brokers.base import BrokerError
from omconnect.runtime.brokers.server_connection import ServerConnection

log = logging.getLogger("omconnect.broker.amqp")

# The first RabbitMQ with quorum queues.
QUORUM_VERSION = (3, 8)
# What the client's own errors are made of, besides the server's channel and connection errors.
CLIENT_ERRORS = (aiormq.exceptions.AMQPError, aiormq.exceptions.ChannelInvalidStateError, OSError)


def _not_a_failed_connect(record: logging.LogRecord) -> bool:
    """Drop the client's own log line for a connection it could not make: the driver reports
    that failure in its one-line error, which says what to check."""
    return not str(record.msg).startswith("error when creating transport")


logging.getLogger("aiormq.connection").addFilter(_not_a_failed_connect)


class AmqpConnection(ServerConnection[AbstractConnection]):
    """The connection, and the names and queue type, of one broker."""

    server = "RabbitMQ"

    def __init__(self, options: AmqpOptions) -> None:
        super().__init__(options.display)
        self.options = options
        self.names = Names(options.prefix)
        self.queue_type: QueueType = options.queue_type or "quorum"

    async def channel(self, *, confirms: bool = False) -> AbstractChannel:
        """A new channel (in publisher-confirm mode with ``confirms``), connecting first if
        there is no open connection.

        Raises:
            BrokerError: the server cannot be reached, refuses the login or the vhost, or
                refuses the channel.
        """
        connection = await self._connected()
        async with broker_errors(self, "opening a channel"):
            return await connection.channel(publisher_confirms=confirms, on_return_raises=False)

    def _usable(self, connection: AbstractConnection | None) -> bool:
        """Whether ``connection`` is open. aio-pika learns that its client's connection closed
        a moment after the client does (a callback), so the client is asked as well."""
        if connection is None or connection.is_closed or connection.transport is None:
            return False
        return not connection.transport.connection.is_closed

    async def _connect(self) -> AbstractConnection:
        o = self.options
        try:
            async with asyncio.timeout(o.connect_timeout):
                connection = await aio_pika.connect(
                    host=o.host,
                    port=o.port,
                    login=o.username,
                    password=o.password,
                    virtualhost=o.vhost,
                    ssl=o.ssl,
                    timeout=o.connect_timeout,
                    client_properties={"connection_name": "omconnect"},
                )
        except (TimeoutError, *CLIENT_ERRORS) as exc:
            raise BrokerError(_connect_failure(o, exc)) from None
        if o.queue_type is None:
            version = _server_version(connection)
            self.queue_type = (
                "quorum" if version is None or version >= QUORUM_VERSION else "classic"
            )
        connection.close_callbacks.add(self._on_lost)
        return connection

    def _on_lost(self, _: Any, reason: BaseException | None) -> None:
        if not self._closed:
            shown = f" ({describe(reason)})" if reason is not None else ""
            log.warning(
                "lost the connection to RabbitMQ at %s%s; reconnecting on next use",
                self.display,
                shown,
            )

    async def close(self) -> None:
        """Close the connection (and every channel on it); idempotent."""
        connection = self._closing()
        if connection is not None and not connection.is_closed:
            with contextlib.suppress(*CLIENT_ERRORS, TimeoutError):
                async with asyncio.timeout(5):
                    await connection.close()


@contextlib.asynccontextmanager
async def broker_errors(connection: AmqpConnection, doing: str) -> AsyncIterator[None]:
    """Turn the client's errors inside into a one-line ``BrokerError`` about ``doing``."""
    try:
        yield
    except CLIENT_ERRORS as exc:
        raise BrokerError(
            f"RabbitMQ {connection.display}: {doing} failed: {describe(exc)}{_advice(exc)}"
        ) from None


async def close_channel(channel: AbstractChannel) -> None:
    """Close ``channel`` unless it is closed already (by the server, or with its connection);
    what was unacknowledged on it goes back to its queues."""
    if not channel.is_closed:
        with contextlib.suppress(*CLIENT_ERRORS, TimeoutError):
            await channel.close()


def describe(error: BaseException) -> str:
    """A short text for a client error (the server's reply text for channel errors)."""
    if isinstance(error, ConnectionRefusedError) or getattr(error, "errno", None) == (
        errno.ECONNREFUSED
    ):
        return "connection refused"
    if isinstance(error, TimeoutError):
        return "timed out"
    if isinstance(error, aiormq.exceptions.ChannelInvalidStateError):
        return "the channel is closed (the connection was lost, or the server closed it)"
    text = re.sub(r"^\[Errno -?\d+\] ", "", str(error).strip())
    return " ".join(text.split()) or type(error).__name__


def _advice(error: BaseException) -> str:
    if isinstance(error, aiormq.exceptions.ChannelPreconditionFailed):
        return (
            " (an exchange or queue of that name exists with other settings: delete it, or "
            "choose another ?prefix or ?queue_type)"
        )
    if isinstance(error, aiormq.exceptions.ChannelAccessRefused):
        return " (check the user's configure, write and read permissions on the vhost)"
    return ""


def _connect_failure(options: AmqpOptions, error: BaseException) -> str:
    if isinstance(error, aiormq.exceptions.ProbableAuthenticationError):
        return (
            f"RabbitMQ at {options.display} refused the login of user {options.username!r}: "
            "check the user name and password of the broker URL"
        )
    if isinstance(error, aiormq.exceptions.InvalidFrameError) and "OpenOk" in str(error):
        return (
            f"RabbitMQ at {options.display} refused to open vhost {options.vhost!r}: check "
            f"that it exists and that user {options.username!r} has permissions on it "
            "(rabbitmqctl list_vhosts, list_permissions)"
        )
    return (
        f"cannot connect to the RabbitMQ server at {options.display} within "
        f"{options.connect_timeout:g} s ({describe(error)}): check that RabbitMQ is running "
        "there and that the host and port of the broker URL are right"
    )


def _server_version(connection: AbstractConnection) -> tuple[int, ...] | None:
    properties = connection.transport.connection.server_properties if connection.transport else {}
    try:
        return tuple(int(part) for part in str(properties.get("version", "")).split(".")[:2])
    except ValueError:
        return None

"""One NATS connection per broker: opened on first use, bounded in time, JetStream checked.

nats-py retries a first connection forever when told to reconnect forever (what a worker
wants once it is connected: a server restart must not end a pipeline), so the first connect
runs under ``connect_timeout`` and a failure says what was tried and what to check, in one
line. Once connected the client reconnects without limit, every ``reconnect_wait`` seconds;
publishes made meanwhile are buffered by the client and acknowledged after the reconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StorageType
from nats.js.kv import KeyValue

from omconnect.runtime.brokers.base import BrokerError
from omconnect.runtime.brokers.nats._naming import Naming
from omconnect.runtime.brokers.nats._options import NatsOptions
from omconnect.runtime.brokers.server_connection import ServerConnection

log = logging.getLogger("omconnect.broker.nats")

# A bound on each JetStream API call (stream info, consumer create, key-value get...).
API_TIMEOUT = 5.0


class NatsConnection(ServerConnection[Client]):
    """The client, JetStream context and groups bucket of one broker."""

    server = "NATS"

    def __init__(self, options: NatsOptions) -> None:
        super().__init__(options.display)
        self.options = options
        self.naming = Naming(options.namespace)
        self._js: JetStreamContext | None = None
        self._bucket: KeyValue | None = None
        self._connecting = False
        self._errors: list[Exception] = []

    @property
    def connected(self) -> bool:
        """Whether a client was made (and not closed): what was published may be pending."""
        return self._client is not None and not self._client.is_closed

    async def client(self) -> Client:
        """The connected client (connecting on first use).

        Raises:
            BrokerError: no server answered within ``connect_timeout``, or it has no JetStream.
        """
        return await self._connected()

    async def jetstream(self) -> JetStreamContext:
        if self._js is None:
            client = await self.client()
            self._js = client.jetstream(timeout=API_TIMEOUT)
        return self._js

    async def groups(self, create: bool = True) -> KeyValue | None:
        """The key-value bucket holding the consumer groups (made on first use), or None
        when it does not exist and ``create`` is false (no group ever committed)."""
        if self._bucket is not None:
            return self._bucket
        js = await self.jetstream()
        name = self.naming.groups_bucket
        try:
            self._bucket = await js.key_value(name)
        except nats.js.errors.BucketNotFoundError:
            if not create:
                return None
            config = KeyValueConfig(
                bucket=name,
                description="omconnect consumer groups: members, partition owners, offsets",
                history=1,
                storage=StorageType.MEMORY
                if self.options.storage == "memory"
                else StorageType.FILE,
                replicas=self.options.replicas,
            )
            try:
                self._bucket = await js.create_key_value(config)
            except nats.js.errors.BadRequestError:
                self._bucket = await js.key_value(name)  # made by another process meanwhile
        return self._bucket

    async def _connect(self) -> Client:
        client = Client()
        timeout = self.options.connect_timeout
        self._connecting = True
        try:
            async with asyncio.timeout(timeout):
                await client.connect(
                    servers=list(self.options.servers),
                    name="omconnect",
                    connect_timeout=max(1, min(2, int(timeout))),
                    reconnect_time_wait=self.options.reconnect_wait,  # type: ignore[arg-type]
                    max_reconnect_attempts=-1,
                    error_cb=self._on_error,
                    disconnected_cb=self._on_disconnected,
                    reconnected_cb=self._on_reconnected,
                )
        except (TimeoutError, OSError, nats.errors.Error) as exc:
            with contextlib.suppress(Exception):
                await client.close()
            reason = describe(self._errors[-1] if self._errors else exc)
            raise BrokerError(
                f"cannot connect to the NATS server at {self.display} within {timeout:g} s "
                f"({reason}): check that nats-server is running there with JetStream "
                "(nats-server -js) and that the host, port and credentials of the broker URL "
                "are right"
            ) from None
        finally:
            self._connecting = False
            self._errors.clear()
        try:
            await client.jetstream(timeout=API_TIMEOUT).account_info()
        except (nats.errors.Error, TimeoutError) as exc:
            await client.close()
            raise BrokerError(
                f"the NATS server at {self.display} answers but JetStream is not available "
                f"({describe(exc)}): start it with JetStream enabled (nats-server -js, or a "
                "jetstream {} block in its configuration) and give this account access to it"
            ) from None
        return client

    async def _on_error(self, error: Exception) -> None:
        if self._connecting:
            self._errors.append(error)
        else:
            log.warning("NATS %s: %s", self.display, describe(error))

    async def _on_disconnected(self) -> None:
        if not self._closed:
            log.warning("disconnected from the NATS server %s; reconnecting", self.display)

    async def _on_reconnected(self) -> None:
        log.info("reconnected to the NATS server %s", self.display)

    async def close(self) -> None:
        """Flush what is buffered and close the connection; idempotent."""
        client = self._closing()
        self._js = None
        self._bucket = None
        if client is not None and not client.is_closed:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2):
                    await client.flush()
            await client.close()


def describe(error: BaseException) -> str:
    """A short text for a nats-py error (their ``str`` is sometimes empty)."""
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, (TimeoutError, nats.errors.TimeoutError)):
        return "timed out"
    if isinstance(error, nats.js.errors.APIError) and error.description:
        return str(error.description)
    text = str(error).removeprefix("nats: ").strip()
    return text or type(error).__name__

"""What the connections of the server drivers (amqp, nats, redis) share: one client per
broker, made on first use by one caller while the others wait for it, made again when it was
lost, never again once the broker closed."""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from typing import ClassVar, Generic, TypeVar

from omconnect.runtime.brokers.base import BrokerError

ClientT = TypeVar("ClientT")


class ServerConnection(ABC, Generic[ClientT]):
    """The client of one broker's server; ``display`` says where it is (without
    credentials) and ``server`` what it is, for messages."""

    server: ClassVar[str]

    def __init__(self, display: str) -> None:
        self.display = display
        self._client: ClientT | None = None
        self._lock = asyncio.Lock()
        self._closed = False

    async def _connected(self) -> ClientT:
        """The client, connecting first when there is none (or it is no longer ``_usable``).

        Raises:
            BrokerError: the broker is closed, or connecting failed.
        """
        if not self._usable(self._client):
            async with self._lock:
                if not self._usable(self._client):
                    if self._closed:
                        raise BrokerError(f"the {self.server} broker {self.display} is closed")
                    self._client = await self._connect()
        assert self._client is not None
        return self._client

    def _usable(self, client: ClientT | None) -> bool:
        return client is not None

    @abstractmethod
    async def _connect(self) -> ClientT:
        """A new client, connected within the URL's ``connect_timeout``, or a one-line
        ``BrokerError`` saying what was tried and what to check."""

    def _closing(self) -> ClientT | None:
        """Mark the connection closed for good; the client to close, if one was made."""
        self._closed = True
        client, self._client = self._client, None
        return client

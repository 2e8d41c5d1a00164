"""One redis-py client per broker: made on first use, checked within ``connect_timeout``.

redis-py retries a failed command ten times with a growing backoff by default; here it
retries none (a retried append could land behind a later one, and a server that is not
there must be reported within seconds), so every failure reaches the caller at once and
says, in one line, what was tried and what to check. The client reconnects by itself on the
next command once the server is back.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

import redis.asyncio as redis_asyncio
import redis.exceptions as redis_errors
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript

from omconnect.runtime.brokers.base import BrokerError
from omconnect.runtime.brokers.redis import _scripts
from omconnect.runtime.brokers.redis._keys import KeyNames
from omconnect.runtime.brokers.redis._options import RedisOptions
from omconnect.runtime.brokers.server_connection import ServerConnection

MINIMUM_VERSION = (7, 0)


class ServerUnavailable(BrokerError):
    """The server stopped answering after the broker had connected (a restart, a network
    cut): the operation may or may not have been applied."""


class Scripts:
    """The driver's Lua scripts, loaded on first use (and again after a server restart)."""

    def __init__(self, client: redis_asyncio.Redis) -> None:
        self.append: AsyncScript = client.register_script(_scripts.APPEND)
        self.read: AsyncScript = client.register_script(_scripts.READ)
        self.high_waters: AsyncScript = client.register_script(_scripts.HIGH_WATERS)
        self.seek: AsyncScript = client.register_script(_scripts.SEEK)
        self.heartbeat: AsyncScript = client.register_script(_scripts.HEARTBEAT)


class RedisConnection(ServerConnection[redis_asyncio.Redis]):
    """The client, scripts and key names of one broker."""

    server = "Redis"

    def __init__(self, options: RedisOptions) -> None:
        super().__init__(options.display)
        self.options = options
        self.keys = KeyNames(options.prefix)
        self._scripts: Scripts | None = None

    async def client(self) -> redis_asyncio.Redis:
        """The client, connecting and checking the server on first use.

        Raises:
            BrokerError: nothing answers within ``connect_timeout``, the credentials are
                refused, or the server is older than Redis 7.0.
        """
        return await self._connected()

    async def scripts(self) -> Scripts:
        if self._scripts is None:
            self._scripts = Scripts(await self.client())
        return self._scripts

    async def _connect(self) -> redis_asyncio.Redis:
        o = self.options
        client = redis_asyncio.Redis(
            host=o.host,
            port=o.port,
            db=o.db,
            username=o.username,
            password=o.password,
            ssl=o.ssl,
            socket_connect_timeout=o.connect_timeout,
            socket_timeout=o.timeout,
            retry=Retry(NoBackoff(), 0),
            protocol=2,
        )
        try:
            async with asyncio.timeout(o.connect_timeout + 1):
                await client.ping()
                version = await _server_version(client)
        except (redis_errors.RedisError, OSError, TimeoutError) as exc:
            await client.aclose()
            raise BrokerError(
                f"cannot connect to the Redis server at {self.display} within "
                f"{o.connect_timeout:g} s ({describe(exc)}): {_advice(exc)}"
            ) from None
        if version is not None and version < MINIMUM_VERSION:
            await client.aclose()
            shown = ".".join(map(str, version))
            raise BrokerError(
                f"the Redis server at {self.display} is version {shown}: the redis:// broker "
                "needs Redis 7.0 or newer (XADD with 0-* ids, XAUTOCLAIM)"
            )
        return client

    async def close(self) -> None:
        """Close the client's connections; idempotent."""
        client = self._closing()
        self._scripts = None
        if client is not None:
            with contextlib.suppress(Exception):
                await client.aclose()


async def _server_version(client: redis_asyncio.Redis) -> tuple[int, ...] | None:
    try:
        info = await client.info("server")
    except redis_errors.ResponseError:  # INFO refused to this user: let the commands tell
        return None
    text = str(info.get("redis_version", ""))
    try:
        return tuple(int(part) for part in text.split(".")[:2])
    except ValueError:
        return None


def describe(error: BaseException) -> str:
    """A short text for a redis-py error (their text is sometimes empty or multi-line, and
    names the socket error only by number)."""
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cause, (TimeoutError, redis_errors.TimeoutError)):
            return "timed out"
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror.lower()
        cause = cause.__cause__ or cause.__context__
    text = " ".join(str(error).split())
    return text or type(error).__name__


def _advice(error: BaseException) -> str:
    if isinstance(error, redis_errors.AuthenticationError) or "NOAUTH" in str(error):
        return (
            "check the user and password of the broker URL "
            "(redis://USER:PASSWORD@host:6379, or redis://:PASSWORD@host:6379)"
        )
    return (
        "check that redis-server is running there (redis-server --port 6379) and that the "
        "host, port and database of the broker URL are right"
    )


ScriptCall = tuple[Sequence[str], Sequence[Any]]


async def call_script(
    client: redis_asyncio.Redis, script: AsyncScript, calls: Sequence[ScriptCall]
) -> list[Any]:
    """Run ``script`` once per ``(keys, args)`` of ``calls``, in order and in one pipeline
    (one round trip), loading it first when the server lost it (a restart): the replies.

    Raises:
        redis.exceptions.ResponseError: the first call that failed (the others ran).
    """
    replies = await _pipelined(client, script, calls)
    missing = [
        i for i, reply in enumerate(replies) if isinstance(reply, redis_errors.NoScriptError)
    ]
    if missing:
        script.sha = await client.script_load(script.script)
        again = await _pipelined(client, script, [calls[i] for i in missing])
        for i, reply in zip(missing, again, strict=True):
            replies[i] = reply
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply
    return replies


async def _pipelined(
    client: redis_asyncio.Redis, script: AsyncScript, calls: Sequence[ScriptCall]
) -> list[Any]:
    pipe = client.pipeline(transaction=False)
    for keys, args in calls:
        pipe.evalsha(script.sha, len(keys), *keys, *args)
    return list(await pipe.execute(raise_on_error=False))


@contextlib.asynccontextmanager
async def broker_errors(connection: RedisConnection, action: str) -> AsyncIterator[None]:
    """Turn the redis-py errors of ``action`` ("appending to orders") into a one-line
    ``BrokerError`` naming the server."""
    try:
        yield
    except BrokerError:
        raise
    except (redis_errors.ConnectionError, redis_errors.TimeoutError, OSError) as exc:
        raise ServerUnavailable(
            f"Redis server {connection.display} went away while {action} ({describe(exc)}); "
            "the client reconnects on the next call"
        ) from None
    except redis_errors.RedisError as exc:
        raise BrokerError(
            f"Redis server {connection.display} refused {action}: {describe(exc)}"
        ) from None

"""The options of a ``redis://`` URL, checked once when the broker is opened."""

from __future__ import annotations

import re
from dataclasses import dataclass

from omconnect.runtime.brokers.url import BrokerUrl
from omconnect.runtime.brokers.url_options import (
    BrokerUrlError,
    UrlOptions,
    credentials,
    display,
    host_port,
)

DEFAULT_PORT = 6379
_PREFIX = re.compile(r"[A-Za-z0-9._-]{1,64}")
_SECONDS = {"connect_timeout": 3.0, "timeout": 10.0, "claim_idle": 10.0}
_OTHERS = {"prefix", "ssl"}
KNOWN_OPTIONS = frozenset({*_SECONDS, *_OTHERS})


class RedisUrlError(BrokerUrlError):
    """A ``redis://`` URL that cannot work."""


@dataclass(frozen=True)
class RedisOptions:
    """What a ``redis://`` URL asks for.

    Attributes:
        host: the server's host name or address.
        port: its port.
        db: the logical database (the URL's path, ``/0`` by default).
        username: the ACL user, if any.
        password: the password, if any (never shown).
        prefix: the first part of every key this broker uses (``?prefix=staging`` keeps one
            deployment's topics and groups apart from another's on a shared server).
        connect_timeout: seconds a connection may take before the broker gives up.
        timeout: seconds one command may take (a blocking read waits less than this).
        claim_idle: seconds a group member may stay silent before the others take its
            partitions; its unprocessed entries are claimed (``XAUTOCLAIM``) once they have
            been idle this long.
        ssl: connect with TLS.
    """

    host: str
    port: int = DEFAULT_PORT
    db: int = 0
    username: str | None = None
    password: str | None = None
    prefix: str = "omconnect"
    connect_timeout: float = _SECONDS["connect_timeout"]
    timeout: float = _SECONDS["timeout"]
    claim_idle: float = _SECONDS["claim_idle"]
    ssl: bool = False

    @property
    def display(self) -> str:
        """``host:port/db``, without credentials, for messages."""
        return f"{display(self.host, self.port)}/{self.db}"


def parse_options(url: BrokerUrl) -> RedisOptions:
    """The options of ``redis://[[user]:password@]host[:port][/db][?option=value&...]``.

    Raises:
        RedisUrlError: no host, a bad port or database, an unknown option or a bad value.
    """
    user_password, _, address = url.location.rpartition("@")
    hostport, _, path = address.partition("/")
    host, port = host_port(
        hostport, DEFAULT_PORT, RedisUrlError, "a redis:// URL", "redis://host:6379"
    )
    db = _database(path)
    # As redis-py reads them: redis://:password@host, redis://user:password@host.
    username, password = credentials(user_password)
    options = UrlOptions(url, KNOWN_OPTIONS, RedisUrlError)
    prefix = options.text(
        "prefix", "omconnect", _PREFIX.fullmatch, "1 to 64 letters, digits, '.', '_' or '-'"
    )
    ssl = options.flag("ssl")
    seconds = {name: options.seconds(name, default) for name, default in _SECONDS.items()}
    return RedisOptions(
        host=host,
        port=port,
        db=db,
        username=username,
        password=password,
        prefix=prefix,
        ssl=ssl,
        **seconds,
    )


def _database(path: str) -> int:
    path = path.strip("/")
    if not path:
        return 0
    if not path.isdigit():
        raise RedisUrlError(
            f"the path of a redis:// URL is a database number (redis://host:6379/0), not {path!r}"
        )
    return int(path)

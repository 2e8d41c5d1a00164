"""The options of a ``redis://`` URL, checked once when the broker is opened."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

from omconnect.runtime.brokers.base import BrokerError
from omconnect.runtime.brokers.url import BrokerUrl

DEFAULT_PORT = 6379
_PREFIX = re.compile(r"[A-Za-z0-9._-]{1,64}")
_SECONDS = {"connect_timeout": 3.0, "timeout": 10.0, "claim_idle": 10.0}
_OTHERS = {"prefix", "ssl"}
KNOWN_OPTIONS = frozenset({*_SECONDS, *_OTHERS})


class RedisUrlError(BrokerError, ValueError):
    """A ``redis://`` URL that cannot work: a malformed location, an unknown option or a bad
    value. Both a ``BrokerError`` and the ``ValueError`` that ``open_broker`` promises for
    malformed URLs; the message never repeats the password."""


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
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}/{self.db}"


def parse_options(url: BrokerUrl) -> RedisOptions:
    """The options of ``redis://[[user]:password@]host[:port][/db][?option=value&...]``.

    Raises:
        RedisUrlError: no host, a bad port or database, an unknown option or a bad value.
    """
    credentials, _, address = url.location.rpartition("@")
    hostport, _, path = address.partition("/")
    host, port = _host_port(hostport)
    db = _database(path)
    username, password = _credentials(credentials)
    unknown = sorted(set(url.options) - KNOWN_OPTIONS)
    if unknown:
        raise RedisUrlError(
            f"unknown redis:// option {unknown[0]!r} (known: {', '.join(sorted(KNOWN_OPTIONS))})"
        )
    prefix = url.options.get("prefix", "omconnect")
    if not _PREFIX.fullmatch(prefix):
        raise RedisUrlError(
            f"redis:// option prefix must be 1 to 64 letters, digits, '.', '_' or '-', "
            f"not {prefix!r}"
        )
    ssl = url.options.get("ssl", "false").lower()
    if ssl not in ("true", "false", "1", "0"):
        raise RedisUrlError(f"redis:// option ssl must be true or false, not {ssl!r}")
    seconds = {name: _seconds(url, name, default) for name, default in _SECONDS.items()}
    return RedisOptions(
        host=host,
        port=port,
        db=db,
        username=username,
        password=password,
        prefix=prefix,
        ssl=ssl in ("true", "1"),
        **seconds,
    )


def _host_port(text: str) -> tuple[str, int]:
    if text.startswith("["):  # [IPv6]:port
        host, _, rest = text[1:].partition("]")
        port_text = rest.removeprefix(":")
    else:
        host, _, port_text = text.partition(":")
    if not host:
        raise RedisUrlError("a redis:// URL needs a server: redis://host:6379")
    if not port_text:
        return host, DEFAULT_PORT
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise RedisUrlError(f"the port of a redis:// URL must be 1 to 65535, not {port_text!r}")
    return host, int(port_text)


def _database(path: str) -> int:
    path = path.strip("/")
    if not path:
        return 0
    if not path.isdigit():
        raise RedisUrlError(
            f"the path of a redis:// URL is a database number (redis://host:6379/0), not {path!r}"
        )
    return int(path)


def _credentials(text: str) -> tuple[str | None, str | None]:
    if not text:
        return None, None
    # As redis-py reads it: redis://:password@host, redis://user:password@host.
    user, separator, password = text.partition(":")
    return unquote(user) or None, unquote(password) if separator else None


def _seconds(url: BrokerUrl, option: str, default: float) -> float:
    text = url.options.get(option)
    if text is None:
        return default
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise RedisUrlError(
            f"redis:// option {option} must be a positive number of seconds, not {text!r}"
        )
    return seconds

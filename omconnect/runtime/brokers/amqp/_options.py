"""The options of an ``amqp://`` URL, checked once when the broker is opened."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import unquote

from omconnect.runtime.brokers.base import BrokerError
from omconnect.runtime.brokers.url import BrokerUrl

DEFAULT_PORT = 5672
# basic.qos carries the prefetch count as an unsigned short.
MAX_PREFETCH = 65535
_PREFIX = re.compile(r"[A-Za-z0-9_-]{1,64}")
_SECONDS = {"connect_timeout": 3.0, "confirm_timeout": 30.0}
_OTHERS = {"prefix", "queue_type", "prefetch", "ssl"}
KNOWN_OPTIONS = frozenset({*_SECONDS, *_OTHERS})

QueueType = Literal["quorum", "classic"]


class AmqpUrlError(BrokerError, ValueError):
    """An ``amqp://`` URL that cannot work: a malformed location, an unknown option or a bad
    value. Both a ``BrokerError`` and the ``ValueError`` that ``open_broker`` promises for
    malformed URLs; the message never repeats the password."""


@dataclass(frozen=True)
class AmqpOptions:
    """What an ``amqp://`` URL asks for.

    Attributes:
        host: the server's host name or address.
        port: its port.
        vhost: the virtual host (the URL's path, percent-decoded; ``/`` when there is none).
        username: the user (RabbitMQ's ``guest`` when the URL names none).
        password: its password (never shown).
        prefix: put before every exchange and queue name (``?prefix=staging`` keeps one
            deployment's topics and groups apart from another's on a shared vhost); empty:
            exchanges are named exactly after their topics, queues after their groups.
        queue_type: the type of the groups' queues; None picks quorum queues on servers that
            have them (RabbitMQ 3.8 and newer), else classic ones.
        prefetch: the most messages a consumer holds unacknowledged (basic.qos).
        connect_timeout: seconds connecting (TCP, TLS, login, vhost) may take.
        confirm_timeout: seconds a send waits for the server's publisher confirms.
        ssl: connect with TLS.
    """

    host: str
    port: int = DEFAULT_PORT
    vhost: str = "/"
    username: str = "guest"
    password: str = "guest"
    prefix: str = ""
    queue_type: QueueType | None = None
    prefetch: int = 50_000
    connect_timeout: float = _SECONDS["connect_timeout"]
    confirm_timeout: float = _SECONDS["confirm_timeout"]
    ssl: bool = False

    @property
    def display(self) -> str:
        """``host:port``, without credentials, for messages."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def parse_options(url: BrokerUrl) -> AmqpOptions:
    """The options of ``amqp://[user[:password]@]host[:port][/vhost][?option=value&...]``.

    Raises:
        AmqpUrlError: no host, a bad port, an unknown option or a bad value.
    """
    credentials, at, address = url.location.rpartition("@")
    hostport, _, path = address.partition("/")
    host, port = _host_port(hostport)
    unknown = sorted(set(url.options) - KNOWN_OPTIONS)
    if unknown:
        raise AmqpUrlError(
            f"unknown amqp:// option {unknown[0]!r} (known: {', '.join(sorted(KNOWN_OPTIONS))})"
        )
    prefix = url.options.get("prefix", "")
    if prefix and not _PREFIX.fullmatch(prefix):
        raise AmqpUrlError(
            f"amqp:// option prefix must be 1 to 64 letters, digits, '_' or '-', not {prefix!r}"
        )
    queue_type = url.options.get("queue_type")
    if queue_type not in (None, "quorum", "classic"):
        raise AmqpUrlError(
            f"amqp:// option queue_type must be 'quorum' or 'classic', not {queue_type!r}"
        )
    ssl = url.options.get("ssl", "false").lower()
    if ssl not in ("true", "false", "1", "0"):
        raise AmqpUrlError(f"amqp:// option ssl must be true or false, not {ssl!r}")
    username, password = ("guest", "guest") if not at else _credentials(credentials)
    return AmqpOptions(
        host=host,
        port=port,
        vhost=unquote(path) or "/",
        username=username,
        password=password,
        prefix=prefix,
        queue_type=queue_type,  # type: ignore[arg-type]  # checked just above
        prefetch=_prefetch(url),
        ssl=ssl in ("true", "1"),
        **{name: _seconds(url, name, default) for name, default in _SECONDS.items()},
    )


def _host_port(text: str) -> tuple[str, int]:
    if text.startswith("["):  # [IPv6]:port
        host, _, rest = text[1:].partition("]")
        port_text = rest.removeprefix(":")
    else:
        host, _, port_text = text.partition(":")
    if not host:
        raise AmqpUrlError("an amqp:// URL needs a server: amqp://user:password@host:5672/vhost")
    if not port_text:
        return host, DEFAULT_PORT
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise AmqpUrlError(f"the port of an amqp:// URL must be 1 to 65535, not {port_text!r}")
    return host, int(port_text)


def _credentials(text: str) -> tuple[str, str]:
    user, _, password = text.partition(":")
    return unquote(user), unquote(password)


def _prefetch(url: BrokerUrl) -> int:
    text = url.options.get("prefetch", str(AmqpOptions.prefetch))
    if not text.isdigit() or not 1 <= int(text) <= MAX_PREFETCH:
        raise AmqpUrlError(f"amqp:// option prefetch must be 1 to {MAX_PREFETCH}, not {text!r}")
    return int(text)


def _seconds(url: BrokerUrl, option: str, default: float) -> float:
    text = url.options.get(option)
    if text is None:
        return default
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise AmqpUrlError(
            f"amqp:// option {option} must be a positive number of seconds, not {text!r}"
        )
    return seconds

"""The options of an ``amqp://`` URL, checked once when the broker is opened."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import unquote

from omconnect.runtime.brokers.url import BrokerUrl
from omconnect.runtime.brokers.url_options import (
    BrokerUrlError,
    UrlOptions,
    credentials,
    display,
    host_port,
)

DEFAULT_PORT = 5672
# basic.qos carries the prefetch count as an unsigned short.
MAX_PREFETCH = 65535
_PREFIX = re.compile(r"[A-Za-z0-9_-]{0,64}")  # empty: no prefix
_SECONDS = {"connect_timeout": 3.0, "confirm_timeout": 30.0}
_OTHERS = {"prefix", "queue_type", "prefetch", "ssl"}
KNOWN_OPTIONS = frozenset({*_SECONDS, *_OTHERS})

QueueType = Literal["quorum", "classic"]


class AmqpUrlError(BrokerUrlError):
    """An ``amqp://`` URL that cannot work."""


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
        confirm_timeout: seconds a send waits without any publisher confirm from the server
            before it fails (a send whose confirms keep coming waits as long as they do),
            and the most a write to or read of the topic catalog takes.
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
        return display(self.host, self.port)


def parse_options(url: BrokerUrl) -> AmqpOptions:
    """The options of ``amqp://[user[:password]@]host[:port][/vhost][?option=value&...]``.

    Raises:
        AmqpUrlError: no host, a bad port, an unknown option or a bad value.
    """
    user_password, at, address = url.location.rpartition("@")
    hostport, _, path = address.partition("/")
    example = "amqp://user:password@host:5672/vhost"
    host, port = host_port(hostport, DEFAULT_PORT, AmqpUrlError, "an amqp:// URL", example)
    options = UrlOptions(url, KNOWN_OPTIONS, AmqpUrlError)
    prefix = options.text("prefix", "", _PREFIX.fullmatch, "1 to 64 letters, digits, '_' or '-'")
    queue_type = options.choice("queue_type", ("quorum", "classic"), None)
    ssl = options.flag("ssl")
    username, password = credentials(user_password) if at else ("guest", "guest")
    return AmqpOptions(
        host=host,
        port=port,
        vhost=unquote(path) or "/",
        username=username or "",
        password=password or "",
        prefix=prefix,
        queue_type=queue_type,  # type: ignore[arg-type]  # one of QueueType
        prefetch=options.integer("prefetch", AmqpOptions.prefetch, 1, MAX_PREFETCH),
        ssl=ssl,
        **{name: options.seconds(name, default) for name, default in _SECONDS.items()},
    )

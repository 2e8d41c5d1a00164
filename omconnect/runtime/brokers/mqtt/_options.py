"""The options of an ``mqtt://`` URL, checked once when the broker is opened."""

from __future__ import annotations

import re
from dataclasses import dataclass

from omconnect.runtime.brokers.mqtt._naming import plain_text
from omconnect.runtime.brokers.url import BrokerUrl
from omconnect.runtime.brokers.url_options import (
    BrokerUrlError,
    UrlOptions,
    credentials,
    display,
    host_port,
)

DEFAULT_PORT = 1883
_SECONDS = {
    "connect_timeout": 3.0,
    "keepalive": 30.0,
    "session_expiry": 3600.0,
    "ack_timeout": 30.0,
}
_OTHERS = {"prefix", "client_id", "receive_maximum", "tls"}
KNOWN_OPTIONS = frozenset({*_SECONDS, *_OTHERS})
# Levels of a topic prefix: no wildcards, no empty level, not a server topic ($SYS, $share).
_PREFIX = re.compile(r"[^/+#$][^/+#]*(?:/[^/+#]+)*")


class MqttUrlError(BrokerUrlError):
    """An ``mqtt://`` URL that cannot work."""


@dataclass(frozen=True)
class MqttOptions:
    """What an ``mqtt://`` URL asks for.

    Attributes:
        host: the broker's host name or address.
        port: its port.
        username: the user name, if any.
        password: the password, if any (never shown).
        prefix: the topic levels every MQTT topic of this broker starts with
            (``omconnect``: topic ``orders`` is ``omconnect/orders``); ``?prefix=staging``
            keeps one deployment's topics, groups and sessions apart from another's.
        client_id: what every MQTT client id of this broker starts with (default: the
            prefix); an ACL can grant access by it.
        connect_timeout: seconds a connection may take before the broker gives up.
        keepalive: seconds between keep-alive pings; a connection silent for 1.5 times this
            is dead, to the client and to the server.
        session_expiry: seconds the server keeps a consumer's session (its subscriptions and
            unacknowledged messages) after it went away.
        ack_timeout: seconds a send waits without any acknowledgement from the server
            before it fails (a send whose acknowledgements keep coming waits as long as they
            do), and the most a catalog read waits for its answer.
        receive_maximum: how many unacknowledged messages a consumer may hold; the server
            sends no more until some are acknowledged.
        tls: connect with TLS, checking the server's certificate against the system's CAs.
    """

    host: str
    port: int = DEFAULT_PORT
    username: str | None = None
    password: str | None = None
    prefix: str = "omconnect"
    client_id: str = "omconnect"
    connect_timeout: float = _SECONDS["connect_timeout"]
    keepalive: float = _SECONDS["keepalive"]
    session_expiry: float = _SECONDS["session_expiry"]
    ack_timeout: float = _SECONDS["ack_timeout"]
    receive_maximum: int = 65535
    tls: bool = False

    @property
    def display(self) -> str:
        """``host:port``, without credentials, for messages."""
        return display(self.host, self.port)


def parse_options(url: BrokerUrl) -> MqttOptions:
    """The options of ``mqtt://[user[:password]@]host[:port][?option=value&...]``.

    Raises:
        MqttUrlError: no host, a path, a bad port, an unknown option or a bad value.
    """
    user_password, _, address = url.location.rpartition("@")
    if "/" in address.rstrip("/"):
        raise MqttUrlError(
            "mqtt:// URLs take no path (topics go under the ?prefix=LEVELS option): "
            "mqtt://host:1883?prefix=staging"
        )
    host, port = host_port(
        address.rstrip("/"), DEFAULT_PORT, MqttUrlError, "an mqtt:// URL", "mqtt://host:1883"
    )
    options = UrlOptions(url, KNOWN_OPTIONS, MqttUrlError)
    prefix = options.text(
        "prefix",
        "omconnect",
        lambda text: _PREFIX.fullmatch(text) and plain_text(text),
        "topic levels separated by '/', without '+', '#', empty levels or a leading '$'",
    )
    client_id = options.text(
        "client_id", prefix, lambda text: text and plain_text(text), "printable text"
    )
    tls = options.flag("tls")
    username, password = credentials(user_password)
    seconds = {
        # MQTT carries the keep-alive in a two-byte integer.
        name: options.seconds(name, default, most=65535 if name == "keepalive" else None)
        for name, default in _SECONDS.items()
    }
    return MqttOptions(
        host=host,
        port=port,
        username=username,
        password=password,
        prefix=prefix,
        client_id=client_id,
        receive_maximum=options.integer("receive_maximum", 65535, 1, 65535),
        tls=tls,
        **seconds,
    )

"""The options of an ``mqtt://`` URL, checked once when the broker is opened."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

from omconnect.runtime.brokers.base import BrokerError
from omconnect.runtime.brokers.mqtt._naming import check_text
from omconnect.runtime.brokers.url import BrokerUrl

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


class MqttUrlError(BrokerError, ValueError):
    """An ``mqtt://`` URL that cannot work: a malformed location, an unknown option or a bad
    value. Both a ``BrokerError`` and the ``ValueError`` that ``open_broker`` promises for
    malformed URLs; the message never repeats the password."""


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
        ack_timeout: seconds a send waits for the server's acknowledgements.
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
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def parse_options(url: BrokerUrl) -> MqttOptions:
    """The options of ``mqtt://[user[:password]@]host[:port][?option=value&...]``.

    Raises:
        MqttUrlError: no host, a path, a bad port, an unknown option or a bad value.
    """
    credentials, _, address = url.location.rpartition("@")
    if "/" in address.rstrip("/"):
        raise MqttUrlError(
            "mqtt:// URLs take no path (topics go under the ?prefix=LEVELS option): "
            "mqtt://host:1883?prefix=staging"
        )
    host, port = _host_port(address.rstrip("/"))
    unknown = sorted(set(url.options) - KNOWN_OPTIONS)
    if unknown:
        raise MqttUrlError(
            f"unknown mqtt:// option {unknown[0]!r} (known: {', '.join(sorted(KNOWN_OPTIONS))})"
        )
    prefix = url.options.get("prefix", "omconnect")
    if not _PREFIX.fullmatch(prefix) or not _is_text(prefix):
        raise MqttUrlError(
            "mqtt:// option prefix must be topic levels separated by '/', without '+', '#', "
            f"empty levels or a leading '$', not {prefix!r}"
        )
    client_id = url.options.get("client_id", prefix)
    if not client_id or not _is_text(client_id):
        raise MqttUrlError(f"mqtt:// option client_id must be printable text, not {client_id!r}")
    tls = url.options.get("tls", "false").lower()
    if tls not in ("true", "false", "1", "0"):
        raise MqttUrlError(f"mqtt:// option tls must be true or false, not {tls!r}")
    username, password = _credentials(credentials)
    seconds = {name: _seconds(url, name, default) for name, default in _SECONDS.items()}
    return MqttOptions(
        host=host,
        port=port,
        username=username,
        password=password,
        prefix=prefix,
        client_id=client_id,
        receive_maximum=_receive_maximum(url),
        tls=tls in ("true", "1"),
        **seconds,
    )


def _host_port(text: str) -> tuple[str, int]:
    if text.startswith("["):  # [IPv6]:port
        host, _, rest = text[1:].partition("]")
        port_text = rest.removeprefix(":")
    else:
        host, _, port_text = text.partition(":")
    if not host:
        raise MqttUrlError("an mqtt:// URL needs a server: mqtt://host:1883")
    if not port_text:
        return host, DEFAULT_PORT
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise MqttUrlError(f"the port of an mqtt:// URL must be 1 to 65535, not {port_text!r}")
    return host, int(port_text)


def _credentials(text: str) -> tuple[str | None, str | None]:
    if not text:
        return None, None
    user, separator, password = text.partition(":")
    return unquote(user) or None, unquote(password) if separator else None


def _is_text(text: str) -> bool:
    try:
        check_text(text, "option")
    except ValueError:
        return False
    return True


def _seconds(url: BrokerUrl, option: str, default: float) -> float:
    text = url.options.get(option)
    if text is None:
        return default
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not seconds > 0 or (option == "keepalive" and seconds > 65535):
        raise MqttUrlError(
            f"mqtt:// option {option} must be a positive number of seconds, not {text!r}"
        )
    return seconds


def _receive_maximum(url: BrokerUrl) -> int:
    text = url.options.get("receive_maximum", "65535")
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise MqttUrlError(f"mqtt:// option receive_maximum must be 1 to 65535, not {text!r}")
    return int(text)

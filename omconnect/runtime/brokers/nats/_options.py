"""The options of a ``nats://`` URL, checked once when the broker is opened."""

from __future__ import annotations

import re
from dataclasses import dataclass

from omconnect.runtime.brokers.url import BrokerUrl

_NAMESPACE = re.compile(r"[A-Za-z0-9-]{1,32}")
_SECONDS = {
    "connect_timeout": 3.0,
    "session_timeout": 10.0,
    "ack_timeout": 30.0,
    "duplicate_window": 120.0,
    "reconnect_wait": 1.0,
}
_OTHERS = {"namespace", "replicas", "storage"}
KNOWN_OPTIONS = frozenset({*_SECONDS, *_OTHERS})


@dataclass(frozen=True)
class NatsOptions:
    """What a ``nats://`` URL asks for.

    Attributes:
        servers: ``nats://[user:password@]host:port`` for every server of the location.
        display: the servers without credentials, for messages.
        namespace: keeps this deployment's streams, subjects and groups apart from another's
            on the same server (``?namespace=staging``); empty for none.
        connect_timeout: seconds the first connection may take before the broker gives up.
        session_timeout: seconds a group member may stay silent before the others take its
            partitions (and read its uncommitted messages again).
        ack_timeout: seconds a send waits for the server's acknowledgements.
        duplicate_window: seconds a topic's streams remember message ids to drop re-sends.
        reconnect_wait: seconds between reconnection attempts once connected.
        replicas: stream replicas of topics created here (a clustered server).
        storage: ``file`` (default) or ``memory`` streams.
    """

    servers: tuple[str, ...]
    display: str
    namespace: str = ""
    connect_timeout: float = _SECONDS["connect_timeout"]
    session_timeout: float = _SECONDS["session_timeout"]
    ack_timeout: float = _SECONDS["ack_timeout"]
    duplicate_window: float = _SECONDS["duplicate_window"]
    reconnect_wait: float = _SECONDS["reconnect_wait"]
    replicas: int = 1
    storage: str = "file"


def parse_options(url: BrokerUrl) -> NatsOptions:
    """The options of ``nats://[user:password@]host[:port][,host2[:port2]...][?option=...]``.

    Raises:
        ValueError: no host, a path in the location, an unknown option or a bad value (the
            message never repeats the location, which may hold a password).
    """
    location = url.location
    if "/" in location.rstrip("/"):
        raise ValueError(
            "nats:// URLs take no path (a namespace is the ?namespace=NAME option): "
            "nats://host:4222?namespace=staging"
        )
    location = location.rstrip("/")
    credentials, _, hosts = location.rpartition("@")
    if not hosts:
        raise ValueError("a nats:// URL needs a server: nats://host:4222")
    servers, shown = [], []
    for host in hosts.split(","):
        if not host.strip():
            raise ValueError("a nats:// URL lists servers separated by commas, one was empty")
        address = host.strip() if ":" in host else f"{host.strip()}:4222"
        shown.append(address)
        servers.append(f"nats://{credentials}@{address}" if credentials else f"nats://{address}")
    unknown = sorted(set(url.options) - KNOWN_OPTIONS)
    if unknown:
        raise ValueError(
            f"unknown nats:// option {unknown[0]!r} (known: {', '.join(sorted(KNOWN_OPTIONS))})"
        )
    namespace = url.options.get("namespace", "")
    if namespace and not _NAMESPACE.fullmatch(namespace):
        raise ValueError(
            f"nats:// option namespace must be 1 to 32 letters, digits or '-', not {namespace!r}"
        )
    storage = url.options.get("storage", "file")
    if storage not in ("file", "memory"):
        raise ValueError(f"nats:// option storage must be 'file' or 'memory', not {storage!r}")
    seconds = {name: _seconds(url, name, default) for name, default in _SECONDS.items()}
    return NatsOptions(
        servers=tuple(servers),
        display=",".join(shown),
        namespace=namespace,
        replicas=_replicas(url),
        storage=storage,
        **seconds,
    )


def _seconds(url: BrokerUrl, option: str, default: float) -> float:
    text = url.options.get(option)
    if text is None:
        return default
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise ValueError(
            f"nats:// option {option} must be a positive number of seconds, not {text!r}"
        )
    return seconds


def _replicas(url: BrokerUrl) -> int:
    text = url.options.get("replicas", "1")
    if not text.isdigit() or not 1 <= int(text) <= 5:
        raise ValueError(f"nats:// option replicas must be 1 to 5, not {text!r}")
    return int(text)

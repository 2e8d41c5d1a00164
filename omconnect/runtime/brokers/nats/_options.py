"""The options of a ``nats://`` URL, checked once when the broker is opened."""

from __future__ import annotations

import re
from dataclasses import dataclass

from omconnect.runtime.brokers.url import BrokerUrl
from omconnect.runtime.brokers.url_options import UrlOptions

_NAMESPACE = re.compile(r"[A-Za-z0-9-]{0,32}")  # empty: none
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
        ack_timeout: seconds a send waits without any acknowledgement from the server
            before it fails; a send whose acknowledgements keep coming waits as long as
            they do.
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
    options = UrlOptions(url, KNOWN_OPTIONS)
    namespace = options.text(
        "namespace", "", _NAMESPACE.fullmatch, "1 to 32 letters, digits or '-'"
    )
    storage = options.choice("storage", ("file", "memory"), "file")
    seconds = {name: options.seconds(name, default) for name, default in _SECONDS.items()}
    return NatsOptions(
        servers=tuple(servers),
        display=",".join(shown),
        namespace=namespace,
        replicas=options.integer("replicas", 1, 1, 5),
        storage=storage,
        **seconds,
    )

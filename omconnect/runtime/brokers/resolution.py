"""``open_broker``: from a URL to a broker driver, importing the driver only when used."""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any, cast

from omconnect.runtime.brokers.base import Broker
from omconnect.runtime.brokers.url import BrokerUrl, parse_broker_url

# scheme -> "module:function" taking a BrokerUrl; imported lazily so a driver's client
# library is needed only by pipelines that use it.
_DRIVERS: dict[str, str] = {
    "amqp": "omconnect.runtime.brokers.amqp:open_amqp_broker",
    "embedded": "omconnect.runtime.brokers.embedded:open_embedded_broker",
    "kafka": "omconnect.runtime.brokers.kafka:open_kafka_broker",
    "mqtt": "omconnect.runtime.brokers.mqtt:open_mqtt_broker",
    "nats": "omconnect.runtime.brokers.nats:open_nats_broker",
    "redis": "omconnect.runtime.brokers.redis:open_redis_broker",
}


class UnsupportedBrokerError(ValueError):
    """No driver can open this URL: its scheme is unknown."""

    def __init__(self, scheme: str, message: str) -> None:
        super().__init__(message)
        self.scheme = scheme


def open_broker(url: str, *, create: bool = True) -> Broker:
    """The broker for ``url`` (``embedded://.omconnect``, ``oms:kafka://host:9092``, ...).

    Opening does no I/O; the first producer, consumer or admin call connects. Read-only
    commands pass ``create=False``: a driver that would create the broker's storage (the
    embedded log) refuses instead when it does not exist yet. Every driver's opener takes
    the parsed URL and this ``create`` keyword.

    Raises:
        UnsupportedBrokerError: the scheme is unknown.
        BrokerNotFoundError: ``create`` is false and there is no such broker.
        ValueError: the URL is malformed or has an unknown option.
    """
    parsed = parse_broker_url(url)
    target = _DRIVERS.get(parsed.scheme)
    if target is None:
        raise _unsupported(parsed)
    module_name, _, function_name = target.partition(":")
    module = importlib.import_module(module_name)
    opener = cast(Callable[..., Broker], getattr(module, function_name))
    return opener(parsed, create=create)


def supported_schemes() -> list[str]:
    """The URL schemes ``open_broker`` can open in this installation."""
    return sorted(_DRIVERS)


def _unsupported(url: BrokerUrl) -> UnsupportedBrokerError:
    # Name only the scheme: the rest of the URL may carry credentials.
    known = ", ".join(f"{s}://" for s in sorted(_DRIVERS))
    return UnsupportedBrokerError(
        url.scheme, f"unknown broker scheme {url.scheme}:// (known: {known})"
    )


@contextlib.contextmanager
def client_library(scheme: str, client: str, extra: str, *modules: str) -> Iterator[None]:
    """Where a driver imports what needs its client library (``client``, the modules
    ``modules``): when that is not installed, the one-line ``UnsupportedBrokerError`` that
    says which ``omconnect[extra]`` installs it."""
    try:
        yield
    except ModuleNotFoundError as missing:
        if missing.name is None or not missing.name.startswith(modules):
            raise
        raise UnsupportedBrokerError(
            scheme, f"the {scheme}:// driver needs {client}: install the omconnect[{extra}] extra"
        ) from None


def lazy_exports(package: str, modules: Mapping[str, str]) -> Callable[[str], Any]:
    """The module ``__getattr__`` of a driver package whose public classes (name -> module of
    the package, in ``modules``) are imported on first use, so that the package imports
    without the driver's client library."""

    def __getattr__(name: str) -> Any:
        module = modules.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{module}"), name)

    return __getattr__

"""The embedded broker: a durable log on SQLite, the default when no broker server is set."""

from omconnect.runtime.brokers.embedded.broker import LOG_FILE_NAME, EmbeddedBroker
from omconnect.runtime.brokers.embedded.consumer import EmbeddedConsumer
from omconnect.runtime.brokers.embedded.producer import EmbeddedProducer
from omconnect.runtime.brokers.url import BrokerUrl

__all__ = [
    "LOG_FILE_NAME",
    "EmbeddedBroker",
    "EmbeddedConsumer",
    "EmbeddedProducer",
    "open_embedded_broker",
]

_OPTIONS = {"sync", "compression", "busy_timeout"}


def open_embedded_broker(url: BrokerUrl) -> EmbeddedBroker:
    """The broker of ``embedded://PATH[?sync=normal|full&compression=lz4|zstd|none]``.

    ``PATH`` is a directory, relative to the current directory unless it starts with ``/``
    (``embedded:///var/lib/omconnect``); the log is ``PATH/broker.sqlite``.
    """
    if not url.location:
        raise ValueError(
            f"{url.text}: the embedded broker needs a directory, e.g. embedded://.omconnect"
        )
    unknown = sorted(set(url.options) - _OPTIONS)
    if unknown:
        raise ValueError(
            f"{url.text}: unknown embedded broker option {unknown[0]!r} "
            f"(known: {', '.join(sorted(_OPTIONS))})"
        )
    return EmbeddedBroker(
        url.location,
        sync=url.options.get("sync", "full"),
        compression=url.options.get("compression", "lz4"),
        busy_timeout=float(url.options.get("busy_timeout", 30.0)),
        url=url.text,
    )

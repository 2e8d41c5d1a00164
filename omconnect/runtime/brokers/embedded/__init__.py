"""The embedded broker: a durable log on SQLite, the default when no broker server is set."""

from pathlib import Path

from omconnect.runtime.brokers.base import BrokerNotFoundError
from omconnect.runtime.brokers.embedded.broker import LOG_FILE_NAME, EmbeddedBroker
from omconnect.runtime.brokers.embedded.consumer import EmbeddedConsumer
from omconnect.runtime.brokers.embedded.producer import EmbeddedProducer
from omconnect.runtime.brokers.url import BrokerUrl
from omconnect.runtime.brokers.url_options import UrlOptions

__all__ = [
    "LOG_FILE_NAME",
    "EmbeddedBroker",
    "EmbeddedConsumer",
    "EmbeddedProducer",
    "open_embedded_broker",
]

_OPTIONS = {"sync", "compression", "busy_timeout", "session_timeout", "transaction_timeout"}


def open_embedded_broker(url: BrokerUrl, *, create: bool = True) -> EmbeddedBroker:
    """The broker of ``embedded://PATH[?sync=normal|full&compression=lz4|zstd|none]``.

    ``PATH`` is a directory, relative to the current directory unless it starts with ``/``
    (``embedded:///var/lib/omconnect``); the log is ``PATH/broker.sqlite``. Other options:
    ``busy_timeout`` (seconds a write waits for another process's lock, default 30),
    ``session_timeout`` (seconds a consumer group member may miss heartbeats, default 10) and
    ``transaction_timeout`` (seconds a producer transaction may stay open, default 60).

    With ``create=False`` (read-only commands) a directory without a log raises
    ``BrokerNotFoundError`` instead of creating it.
    """
    if not url.location:
        raise ValueError(
            f"{url.text}: the embedded broker needs a directory, e.g. embedded://.omconnect"
        )
    if not create and not (Path(url.location) / LOG_FILE_NAME).is_file():
        raise BrokerNotFoundError(
            f"{url.text}: there is no embedded broker in {url.location} (no {LOG_FILE_NAME}: "
            "nothing was published there yet)"
        )
    options = UrlOptions(url, _OPTIONS, subject="embedded broker", context=f"{url.text}: ")
    return EmbeddedBroker(
        url.location,
        sync=url.options.get("sync", "full"),
        compression=url.options.get("compression", "lz4"),
        busy_timeout=options.seconds("busy_timeout", 30.0),
        url=url.text,
        session_timeout=options.seconds("session_timeout", 10.0),
        transaction_timeout=options.seconds("transaction_timeout", 60.0),
    )

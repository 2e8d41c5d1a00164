"""Offset stores that live in the pipeline's broker (``offsets: broker``): a compacted topic on
``kafka://`` (``kafka_topic.KafkaTopicOffsetStore``), a key-value bucket on ``nats://``
(``nats_kv.NatsKvOffsetStore``). The other brokers have none: the embedded one already lives
beside the ``state:`` directory, and AMQP, MQTT and Redis Streams offer no place users of
those brokers would look for positions.

Each store module imports its client (confluent-kafka, nats-py: extras) and is imported here
only when its broker is named.
"""

from __future__ import annotations

from collections.abc import Callable

from omconnect.runtime.brokers import parse_broker_url
from omconnect.runtime.state.offsets.base import OffsetStore

__all__ = [
    "BROKER_OFFSET_STORES",
    "broker_offsets_refusal",
    "open_broker_offset_store",
    "open_existing_broker_offset_store",
]

BROKER_OFFSET_STORES = {"kafka": "a compacted topic", "nats": "a key-value bucket"}
"""The brokers that can hold source positions, and where they keep them."""


class BrokerOffsetsUnavailableError(NotImplementedError):
    """``offsets: broker`` on a broker without an offset store, or whose client is not
    installed (``backends`` raises it as ``StateUnavailableError``)."""


def broker_offsets_refusal(scheme: str) -> str:
    """Why ``offsets: broker`` cannot be used with a ``scheme://`` broker, in one line."""
    where = " or ".join(f"{name}:// ({kept})" for name, kept in BROKER_OFFSET_STORES.items())
    return (
        f"offsets: broker needs a broker that stores offsets, {where}; {scheme}:// has none "
        "(use offsets: state)"
    )


def open_broker_offset_store(broker: str, name: str | None = None) -> OffsetStore:
    """The offset store in the broker of ``broker`` (a pipeline's ``broker:`` URL), its topic or
    bucket created when missing.

    Args:
        broker: the broker URL.
        name: the topic (Kafka) or bucket (NATS); default ``__omconnect-offsets``,
            ``omconnect-offsets[-<namespace>]``.

    Raises:
        BrokerOffsetsUnavailableError: the broker has no offset store, or its client is not
            installed.
        ValueError: the URL is malformed.
        OffsetStoreError: the broker cannot be reached, or refuses.
    """
    store = _opener(broker)(broker, name, True)
    assert store is not None
    return store


def open_existing_broker_offset_store(broker: str, name: str | None = None) -> OffsetStore | None:
    """As ``open_broker_offset_store``, but None when the topic or bucket does not exist:
    nothing is created."""
    return _opener(broker)(broker, name, False)


_Opener = Callable[[str, "str | None", bool], "OffsetStore | None"]


def _kafka(broker: str, name: str | None, create: bool) -> OffsetStore | None:
    from omconnect.runtime.state.offsets.kafka_topic import (
        DEFAULT_TOPIC,
        KafkaTopicOffsetStore,
        offsets_topic_exists,
    )

    topic = name or DEFAULT_TOPIC
    if not create and not offsets_topic_exists(broker, topic):
        return None
    return KafkaTopicOffsetStore(broker, topic)


def _nats(broker: str, name: str | None, create: bool) -> OffsetStore | None:
    from omconnect.runtime.state.offsets.nats_kv import NatsKvOffsetStore

    try:
        return NatsKvOffsetStore(broker, name, create=create)
    except LookupError:
        return None


_OPENERS: dict[str, tuple[_Opener, str, str]] = {
    # scheme: (opener, the client's import name, the extra that installs it)
    "kafka": (_kafka, "confluent_kafka", "kafka"),
    "nats": (_nats, "nats", "nats"),
}


def _opener(broker: str) -> _Opener:
    """The opener of ``broker``'s scheme, which fails with one line when its client is
    missing.

    Raises:
        BrokerOffsetsUnavailableError: a broker without an offset store.
        ValueError: ``broker`` is no broker URL.
    """
    scheme = parse_broker_url(broker).scheme
    if scheme not in _OPENERS:
        raise BrokerOffsetsUnavailableError(broker_offsets_refusal(scheme))
    opener, module, extra = _OPENERS[scheme]

    def open_with_client(url: str, name: str | None, create: bool) -> OffsetStore | None:
        try:
            return opener(url, name, create)
        except ModuleNotFoundError as missing:
            if (missing.name or "").split(".")[0] != module:
                raise
            raise BrokerOffsetsUnavailableError(
                f"offsets: broker on {scheme}:// needs the {module} client; install it with "
                f"pip install 'omconnect[{extra}]'"
            ) from None

    return open_with_client

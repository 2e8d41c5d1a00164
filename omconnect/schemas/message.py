"""The OpenMessaging 1.0 message, and its place in a row of a ``MessageBatch``.

A ``Message`` is the spec's ``header``, ``extensionHeader``, ``properties`` and ``data`` with
snake_case names. On a broker it travels as one row of a ``MessageBatch``:

- ``data`` is the ``value`` column, ``extension_header.message_key`` the ``key`` column and
  ``header.born_timestamp`` the ``timestamp`` column (epoch ms);
- ``header.destination`` is the topic and ``extension_header.partition`` the partition: the
  broker side knows both, so neither is written into the row;
- every other header and extension header field that is set goes in the ``headers`` map as
  ``oms.<name>`` (UTF-8 text; integers in decimal), except ``qos`` when it is the default 0;
- properties go in the ``headers`` map under their own names, so the ``oms.`` prefix is
  reserved and refused for properties.

This is the single-message view, for tails, dead letters and tests; bulk paths keep batches.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from omconnect.schemas.message_batch import MessageBatch

HEADER_PREFIX = "oms."

_HEADER_INTEGERS = ("qos",)
_HEADER_TEXTS = ("message_id", "born_host", "compression")
_EXTENSION_INTEGERS = ("store_timestamp", "delay_time", "expire_time", "delivery_count", "priority")
_EXTENSION_TEXTS = ("store_host", "correlation_id", "transaction_id", "trace_id")


@dataclass(frozen=True)
class Header:
    """The spec's required header.

    Attributes:
        message_id: unique id of the message (the reader makes ``topic-partition-offset`` up
            for messages that arrive without one).
        destination: the topic.
        born_timestamp: when the producer made the message, epoch milliseconds.
        born_host: the producer's host.
        qos: 0 at-least-once (default), 1 at-most-once, 2 exactly-once.
        compression: the compression of ``data``, if any.
    """

    message_id: str
    destination: str
    born_timestamp: int
    born_host: str
    qos: int = 0
    compression: str | None = None


@dataclass(frozen=True)
class ExtensionHeader:
    """The spec's optional extension header; None means not set.

    ``delay_time`` is milliseconds after birth, ``expire_time`` and ``store_timestamp`` epoch
    milliseconds, ``priority`` 1..10.
    """

    partition: int | None = None
    store_timestamp: int | None = None
    store_host: str | None = None
    message_key: bytes | None = None
    correlation_id: str | None = None
    delay_time: int | None = None
    transaction_id: str | None = None
    expire_time: int | None = None
    trace_id: str | None = None
    delivery_count: int | None = None
    priority: int | None = None


@dataclass(frozen=True)
class Message:
    """One OpenMessaging message.

    Raises:
        ValueError: when a property name starts with ``oms.`` (reserved for header fields).
    """

    header: Header
    extension_header: ExtensionHeader = field(default_factory=ExtensionHeader)
    properties: Mapping[str, bytes] = field(default_factory=dict)
    data: bytes | None = None

    def __post_init__(self) -> None:
        reserved = sorted(k for k in self.properties if k.startswith(HEADER_PREFIX))
        if reserved:
            raise ValueError(f"property names {reserved} use the reserved prefix {HEADER_PREFIX!r}")

    def batch_headers(self) -> dict[str, bytes]:
        """The ``headers`` map of this message's batch row: its properties and fields."""
        headers = dict(self.properties)
        _put(headers, self.header, _HEADER_TEXTS + _HEADER_INTEGERS)
        _put(headers, self.extension_header, _EXTENSION_TEXTS + _EXTENSION_INTEGERS)
        if self.header.qos == 0:
            del headers[HEADER_PREFIX + "qos"]
        return headers

    @classmethod
    def from_batch_row(
        cls, batch: MessageBatch, row: int, topic: str, partition: int | None
    ) -> Message:
        """The message in ``row`` of ``batch``, read from ``partition`` of ``topic``.

        Headers named ``oms.*`` that are not header fields (written by a newer version) are
        skipped.

        Raises:
            ValueError: when an integer header field does not hold an integer, or the row has
                no ``oms.message_id`` and the batch no offsets to make one from.
        """
        headers = batch.header_dict(row)
        texts = {
            name[len(HEADER_PREFIX) :]: value.decode()
            for name, value in headers.items()
            if name.startswith(HEADER_PREFIX)
        }
        message_id = texts.get("message_id")
        if message_id is None:
            offsets = batch.offsets
            if offsets is None:
                raise ValueError(f"row {row} has no oms.message_id and the batch no offsets")
            message_id = f"{topic}-{partition}-{offsets[row].as_py()}"
        header = Header(
            message_id=message_id,
            destination=topic,
            born_timestamp=batch.timestamps[row].as_py(),
            born_host=texts.get("born_host", ""),
            qos=_integer(texts, "qos") or 0,
            compression=texts.get("compression"),
        )
        extension = ExtensionHeader(
            partition=partition,
            store_timestamp=_integer(texts, "store_timestamp"),
            store_host=texts.get("store_host"),
            message_key=batch.keys[row].as_py(),
            correlation_id=texts.get("correlation_id"),
            delay_time=_integer(texts, "delay_time"),
            transaction_id=texts.get("transaction_id"),
            expire_time=_integer(texts, "expire_time"),
            trace_id=texts.get("trace_id"),
            delivery_count=_integer(texts, "delivery_count"),
            priority=_integer(texts, "priority"),
        )
        properties = {k: v for k, v in headers.items() if not k.startswith(HEADER_PREFIX)}
        return cls(header, extension, properties, batch.values[row].as_py())


def messages_to_batch(messages: Sequence[Message]) -> MessageBatch:
    """One batch row per message, in order (see the module doc for where each field goes).

    Raises:
        ValueError: when the messages are bound for different destinations, since a batch
            belongs to one topic and the destination is not written into rows.
    """
    destinations = sorted({m.header.destination for m in messages})
    if len(destinations) > 1:
        raise ValueError(f"a batch holds messages of one destination, got {destinations}")
    return MessageBatch.build(
        values=[m.data for m in messages],
        keys=[m.extension_header.message_key for m in messages],
        timestamps=np.array([m.header.born_timestamp for m in messages], dtype=np.int64),
        headers=[m.batch_headers() for m in messages],
    )


def _put(
    headers: dict[str, bytes], source: Header | ExtensionHeader, names: tuple[str, ...]
) -> None:
    for name in names:
        value = getattr(source, name)
        if value is not None:
            headers[HEADER_PREFIX + name] = str(value).encode()


def _integer(texts: Mapping[str, str], name: str) -> int | None:
    text = texts.get(name)
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"header {HEADER_PREFIX}{name} is not an integer: {text!r}") from None

"""MQTT 5 PUBLISH properties, packed once into the bytes that go on the wire.

paho takes a message's properties as a ``Properties`` object and packs it when it sends the
message; building and packing one costs about 100 µs, more than everything else a message
costs. ``PackedProperties`` is a ``Properties`` whose bytes were packed here, with plain
byte operations, which paho sends as they are (it only calls ``pack``).
"""

from __future__ import annotations

from collections.abc import Sequence

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

# Property identifiers (MQTT 5.0, section 2.2.2.2).
_PAYLOAD_FORMAT = 0x01
_MESSAGE_EXPIRY = 0x02
_CONTENT_TYPE = 0x03
_RESPONSE_TOPIC = 0x08
_CORRELATION_DATA = 0x09
_USER_PROPERTY = 0x26


class PackedProperties(Properties):
    """PUBLISH properties that are already their wire bytes."""

    packed: bytes

    def __init__(self, packed: bytes) -> None:
        object.__setattr__(self, "packetType", PacketTypes.PUBLISH)
        object.__setattr__(self, "packed", packed)

    def pack(self) -> bytes:
        return self.packed

    def __str__(self) -> str:
        return f"PackedProperties({len(self.packed)} bytes)"


def publish_properties(
    user: Sequence[tuple[str, str]],
    content_type: str | None = None,
    *,
    format_indicator: int | None = None,
    expiry: int | None = None,
    response_topic: str | None = None,
    correlation: bytes | None = None,
) -> PackedProperties:
    """The properties of a PUBLISH: ``user`` properties in order, and the others when given.

    Raises:
        ValueError: a string longer than MQTT allows (65535 bytes).
    """
    parts = []
    if format_indicator is not None:
        parts.append(bytes((_PAYLOAD_FORMAT, format_indicator)))
    if expiry is not None:
        parts.append(bytes((_MESSAGE_EXPIRY,)) + expiry.to_bytes(4, "big"))
    if content_type is not None:
        parts.append(bytes((_CONTENT_TYPE,)) + _string(content_type))
    if response_topic is not None:
        parts.append(bytes((_RESPONSE_TOPIC,)) + _string(response_topic))
    if correlation is not None:
        parts.append(bytes((_CORRELATION_DATA,)) + _binary(correlation))
    user_id = bytes((_USER_PROPERTY,))
    for name, text in user:
        parts.append(user_id + _string(name) + _string(text))
    body = b"".join(parts)
    return PackedProperties(_variable_int(len(body)) + body)


def _string(text: str) -> bytes:
    raw = text.encode()
    if len(raw) > 0xFFFF:
        raise ValueError(
            f"{text[:40]!r}... is {len(raw)} bytes: an MQTT property holds at most 65535 "
            "(keep keys, ids and headers small; put large data in the value)"
        )
    return _binary(raw)


def _binary(raw: bytes) -> bytes:
    return len(raw).to_bytes(2, "big") + raw


def _variable_int(number: int) -> bytes:
    """MQTT's variable byte integer: 7 bits per byte, low bits first."""
    out = bytearray()
    while True:
        number, low = divmod(number, 128)
        out.append(low | (0x80 if number else 0))
        if not number:
            return bytes(out)

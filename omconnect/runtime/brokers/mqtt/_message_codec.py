"""A ``MessageBatch`` row as an MQTT 5 message and back, losslessly.

The value is the payload; everything else travels in MQTT 5 properties. User properties are
ordered, repeatable (name, value) pairs of UTF-8 strings, so they carry the headers map
as it is, in order, duplicates included:

- ``om:time``: the born timestamp in epoch ms (without it, a reader takes the time it
  received the message: messages of other MQTT clients read fine);
- ``om:key`` (text) or ``om:key64`` (base64): the key, absent when null;
- ``om:id`` (text) or ``om:id64`` (base64): the message id (OpenMessaging's
  ``header.message_id``; MQTT has no message id of its own), absent when null;
- ``om:value: null``: a null value (a tombstone), told apart from an empty payload;
- ``om:headers: empty``: an empty headers map, told apart from a null one;
- the headers map in order, every entry under its own name when name and value are text
  MQTT can carry (``oms.born_host``, ``oms.trace_id``, user properties...); any other entry
  (a binary value, text with control characters, a name starting with ``om:``) as
  ``om:entry64: <base64 name>:<base64 value>`` in its place;
- a first header entry ``content-type`` is the MQTT 5 Content Type property instead, so MQTT
  clients find it where they look for it (and one that arrives with a content type reads
  back with it as its first header).

User properties a reader does not know (another client's) come back as header entries, so
nothing an MQTT message carries is dropped. ``om:topic`` names the topic of a message a group
member handed back to its group (``requeue_properties``); it is not a header.

It imports nothing of the broker contract (only ``_naming``'s string check,
``_publish_properties`` and the client-free ``message_rows``), so the future mqtt source
connector can share it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from paho.mqtt.properties import Properties

from omconnect.runtime.brokers.message_rows import (
    Entries,
    ReceivedColumns,
    b64,
    batch_rows,
    escaped_entry,
    header_entry,
    plain_or_none,
    unb64,
)
from omconnect.runtime.brokers.mqtt._naming import plain_text
from omconnect.runtime.brokers.mqtt._publish_properties import (
    PackedProperties,
    publish_properties,
)
from omconnect.schemas.message_batch import MessageBatch

TIME = "om:time"
KEY = "om:key"
KEY_B64 = "om:key64"
ID = "om:id"
ID_B64 = "om:id64"
VALUE = "om:value"
HEADERS = "om:headers"
ENTRY_B64 = "om:entry64"
TOPIC = "om:topic"
CONTENT_TYPE = "content-type"
RESERVED = "om:"


def encode_rows(messages: MessageBatch) -> list[tuple[bytes, PackedProperties]]:
    """The payload and the PUBLISH properties of every message, in order.

    Raises:
        ValueError: a key, id or header longer than an MQTT string can be (64 KiB).
    """
    rows = []
    for key, value, time, entries, message_id in batch_rows(messages):
        content_type = None
        pairs = [(TIME, str(time))]
        if key is not None:
            pairs.append(_text_or_b64(key, KEY, KEY_B64))
        if message_id is not None:
            pairs.append(_text_or_b64(message_id.encode(), ID, ID_B64))
        if value is None:
            pairs.append((VALUE, "null"))
        if entries is not None:
            if not entries:
                pairs.append((HEADERS, "empty"))
            elif entries[0][0] == CONTENT_TYPE and (text := _text(entries[0][1])) is not None:
                content_type = text
                entries = entries[1:]
            for name, raw in entries:
                assert raw is not None, "an MQTT user property cannot carry a null header value"
                text = _text(raw)
                if text is not None and plain_text(name) and not name.startswith(RESERVED):
                    pairs.append((name, text))
                else:
                    pairs.append((ENTRY_B64, escaped_entry(name, raw)))
        rows.append((value if value is not None else b"", publish_properties(pairs, content_type)))
    return rows


def decode_messages(
    received: Sequence[tuple[bytes, Properties | None, int]], offsets: np.ndarray
) -> MessageBatch:
    """A batch of received ``(payload, properties, receive time in epoch ms)``, numbered
    with ``offsets``."""
    columns = ReceivedColumns(len(received))
    for row, (payload, properties, received_ms) in enumerate(received):
        columns.times[row] = received_ms
        columns.values[row] = payload
        entries: Entries = []
        has_map = False  # an empty map is not a null one
        content_type = getattr(properties, "ContentType", None)
        if content_type is not None:
            entries.append((CONTENT_TYPE, content_type.encode()))
        for name, text in getattr(properties, "UserProperty", ()):
            try:
                if name == TIME:
                    columns.times[row] = int(text)
                elif name == KEY:
                    columns.keys[row] = text.encode()
                elif name == KEY_B64:
                    columns.keys[row] = unb64(text)
                elif name == ID:
                    columns.ids[row] = text
                elif name == ID_B64:
                    columns.ids[row] = unb64(text).decode()
                elif name == VALUE and text == "null":
                    columns.values[row] = None
                elif name == HEADERS and text == "empty":
                    has_map = True
                elif name != TOPIC:
                    entries.append(header_entry(name, text, name == ENTRY_B64))
            except (ValueError, UnicodeDecodeError):  # binascii.Error is a ValueError
                # Another client's property that only looks like ours: keep it as a header.
                entries.append((name, text.encode()))
        columns.headers[row] = entries if entries or has_map else None
    return columns.batch(offsets)


def original_topic(properties: Properties | None) -> str | None:
    """The topic a handed-back message was first published to, if it was handed back."""
    for name, text in getattr(properties, "UserProperty", ()):
        if name == TOPIC:
            return str(text)
    return None


def requeue_properties(properties: Properties | None, topic: str) -> PackedProperties:
    """The properties of a received message published again to its group's requeue topic,
    naming its ``topic`` (properties only the server sets, such as subscription ids, stay
    behind)."""
    user = [pair for pair in getattr(properties, "UserProperty", ()) if pair[0] != TOPIC]
    return publish_properties(
        [(TOPIC, topic), *user],
        getattr(properties, "ContentType", None),
        format_indicator=getattr(properties, "PayloadFormatIndicator", None),
        expiry=getattr(properties, "MessageExpiryInterval", None),
        response_topic=getattr(properties, "ResponseTopic", None),
        correlation=getattr(properties, "CorrelationData", None),
    )


def _text_or_b64(raw: bytes, text_name: str, b64_name: str) -> tuple[str, str]:
    text = _text(raw)
    return (text_name, text) if text is not None else (b64_name, b64(raw))


def _text(raw: bytes | None) -> str | None:
    """``raw`` as an MQTT string that comes back byte for byte, or None if it cannot."""
    return plain_or_none(raw, plain_text)

"""A ``MessageBatch`` row as an AMQP message and back, losslessly.

The value is the body; the rest travels in the message's properties and headers table:

- ``message_id``: the message id; an id longer than a short string (255 bytes), or empty,
  goes in the ``om-message-id`` header instead, and a message without an id has
  ``om-message-id: void`` (the client library gives a message without one an id of its own);
- ``timestamp``: the born time in whole seconds, for other clients; the exact epoch
  milliseconds (any 64-bit value) are the ``om-time`` header;
- ``om-key``: the key (text when it is UTF-8, else a byte array), absent when null;
- ``om-null: true``: a null value (a tombstone), told apart from an empty body;
- ``delivery_mode`` 2: persistent;
- the headers map: every entry under its own name in the headers table, its value text when
  it is UTF-8, else a byte array (other clients read ``oms.trace_id``, ``ce_type`` or user
  properties as plain headers), except the first ``content-type`` entry, which is the
  ``content_type`` property, and the first ``oms.correlation_id``, the ``correlation_id``
  property. A table cannot repeat a name, keep order (RabbitMQ sorts it) or hold a null
  value, so ``om-headers`` lists the entries in order: a name for an entry found in the
  table (or in those properties), a ``[name, value]`` pair for one carried in the list
  itself (a repeated name, a null value, a name longer than 255 bytes, or one starting with
  ``om-`` or ``x-``, which are this codec's and RabbitMQ's). An empty list is an empty map;
  no ``om-headers`` a null one.

A message another client published (no ``om-time``) reads back with every entry of its table
as a header (numbers and flags as their text), its ``content_type`` and ``correlation_id``
as those headers, and the time it was read when it has no ``timestamp``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
from aiormq import spec

from omconnect.runtime.brokers.amqp._naming import MAX_NAME_BYTES
from omconnect.runtime.brokers.message_rows import Entries, ReceivedColumns, batch_rows
from omconnect.schemas.message_batch import MessageBatch

MESSAGE_ID = "om-message-id"
TIME = "om-time"
KEY = "om-key"
NULL_VALUE = "om-null"
HEADERS = "om-headers"
PERSISTENT = 2
# Header entries carried as message properties: name -> property.
_AS_PROPERTY = {"content-type": "content_type", "oms.correlation_id": "correlation_id"}
_RESERVED_PREFIXES = ("om-", "x-")
# The latest epoch milliseconds a datetime (year 9999) can hold.
_MAX_DATETIME_MS = 253_402_300_799_999


def encode_rows(messages: MessageBatch) -> list[tuple[bytes, spec.Basic.Properties]]:
    """The body and properties of every message, in order."""
    return [_encode(*row) for row in batch_rows(messages)]


def _encode(
    key: bytes | None,
    value: bytes | None,
    born_ms: int,
    entries: Entries | None,
    message_id: str | None,
) -> tuple[bytes, spec.Basic.Properties]:
    table: dict[str, Any] = {TIME: born_ms}
    properties = spec.Basic.Properties(delivery_mode=PERSISTENT, headers=table)
    if message_id and len(message_id.encode()) <= MAX_NAME_BYTES:
        properties.message_id = message_id
    else:
        table[MESSAGE_ID] = message_id
    if 0 <= born_ms <= _MAX_DATETIME_MS:
        properties.timestamp = datetime.fromtimestamp(born_ms // 1000, tz=UTC)
    if key is not None:
        table[KEY] = _field(key)
    if value is None:
        table[NULL_VALUE] = True
    if entries is not None:
        order: list[Any] = []
        as_properties: set[str] = set()
        for name, raw in entries:
            if raw is None or not _own_name(name) or name in table or name in as_properties:
                order.append([name, None if raw is None else _field(raw)])
                continue
            order.append(name)
            prop = _AS_PROPERTY.get(name)
            text = _short_text(raw) if prop is not None else None
            if prop is not None and text is not None:
                setattr(properties, prop, text)
                as_properties.add(name)
            else:
                table[name] = _field(raw)
        table[HEADERS] = order
    return value if value is not None else b"", properties


def decode_rows(
    received: Sequence[tuple[bytes, spec.Basic.Properties]], first_offset: int
) -> MessageBatch:
    """A batch of the bodies and properties of delivered messages, numbered from
    ``first_offset``."""
    columns = ReceivedColumns(len(received))
    read_ms = int(time.time() * 1000)
    for row, (body, properties) in enumerate(received):
        table: dict[str, Any] = properties.headers or {}
        columns.values[row] = None if table.get(NULL_VALUE) is True else body
        key = table.get(KEY)
        columns.keys[row] = None if key is None else _bytes(key)
        columns.ids[row] = table.get(MESSAGE_ID, properties.message_id)
        born = table.get(TIME)
        if isinstance(born, int) and not isinstance(born, bool):
            columns.times[row] = born
            columns.headers[row] = _own_entries(table, properties)
        else:
            stamp = properties.timestamp
            columns.times[row] = int(stamp.timestamp() * 1000) if stamp is not None else read_ms
            columns.headers[row] = _foreign_entries(table, properties)
    return columns.batch(np.arange(first_offset, first_offset + len(received), dtype=np.int64))


def _own_entries(table: dict[str, Any], properties: spec.Basic.Properties) -> Entries | None:
    order = table.get(HEADERS)
    if not isinstance(order, list):
        return None
    entries: Entries = []
    for item in order:
        if isinstance(item, list):
            name, raw = item
            entries.append((name, None if raw is None else _bytes(raw)))
        elif item in table:
            entries.append((item, _bytes(table[item])))
        else:
            prop = _AS_PROPERTY.get(item)
            entries.append((item, _bytes(getattr(properties, prop)) if prop else None))
    return entries


def _foreign_entries(table: dict[str, Any], properties: spec.Basic.Properties) -> Entries | None:
    entries = [(name, _bytes(raw)) for name, raw in table.items() if not name.startswith("om-")]
    for name, prop in _AS_PROPERTY.items():
        text = getattr(properties, prop)
        if text is not None and name not in table:
            entries.append((name, text.encode()))
    return entries or None


def _own_name(name: str) -> bool:
    """Whether a header entry can be a headers table entry of its own name."""
    return 0 < len(name.encode()) <= MAX_NAME_BYTES and not name.lower().startswith(
        _RESERVED_PREFIXES
    )


def _field(raw: bytes) -> str | bytearray:
    """Bytes as a table value that comes back byte for byte: a long string when they are
    UTF-8 (readable by other clients), else a byte array."""
    try:
        return raw.decode()
    except UnicodeDecodeError:
        return bytearray(raw)


def _short_text(raw: bytes) -> str | None:
    """``raw`` as a short string property value, or None if it cannot be one."""
    if len(raw) > MAX_NAME_BYTES:
        return None
    try:
        return raw.decode()
    except UnicodeDecodeError:
        return None


def _bytes(value: Any) -> bytes | None:
    """A table value as header bytes: text as UTF-8, byte arrays as they are, anything
    another client put there (numbers, flags, timestamps) as its text."""
    if value is None:
        return None
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, bool):
        return b"true" if value else b"false"
    return str(value).encode()

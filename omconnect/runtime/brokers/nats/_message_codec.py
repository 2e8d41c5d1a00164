"""A ``MessageBatch`` row as a NATS message and back, losslessly.

The value is the payload; everything else travels in NATS headers, which are text
(``Name: value`` lines, names RFC 7230 tokens, values trimmed by the client):

- ``Nats-Msg-Id``: the message id, so the stream's duplicate window drops a re-sent message
  (an id that is not plain text goes base64 in ``Om-Id-B64`` and in ``Nats-Msg-Id``);
- ``Om-Time``: the born timestamp in epoch ms (without it, a reader takes the time the stream
  stored the message: messages other NATS clients published read fine);
- ``Om-Key`` (printable text) or ``Om-Key-B64`` (base64): the key, absent when null;
- ``Om-Value: null``: a null value (a tombstone), told apart from an empty one;
- the headers map in order, every entry under its own name when the name is a token and the
  value printable text without surrounding whitespace (``oms.born_host``, ``oms.trace_id``,
  ``content-type``, user properties...); any other entry (a binary value, an odd or repeated
  name, a name starting with ``Nats-`` or ``Om-``, or ``Status`` or ``Description``, which
  clients read as a server status) as ``Om-Hdr-<i>: <base64 name>:<base64 value>``;
  ``Om-Headers: empty`` tells an empty map from a null one.

Headers a reader does not know (another client's, or ``Nats-*`` ones the publisher set) come
back as entries of the map, so nothing a NATS message carries is dropped either way.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np

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
from omconnect.schemas.message_batch import MessageBatch

MSG_ID = "Nats-Msg-Id"
ID_B64 = "Om-Id-B64"
TIME = "Om-Time"
KEY = "Om-Key"
KEY_B64 = "Om-Key-B64"
VALUE = "Om-Value"
HEADERS = "Om-Headers"
ESCAPED = "Om-Hdr-"
_RESERVED = frozenset({MSG_ID, ID_B64, TIME, KEY, KEY_B64, VALUE, HEADERS})
# Names nats-py gives meaning to (a server status) or that JetStream acts on.
_CLIENT_NAMES = ("status", "description", "nats-", "om-")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def encode_rows(messages: MessageBatch) -> list[tuple[bytes, dict[str, str]]]:
    """The payload and headers of every message, in order."""
    rows = []
    for key, value, time, entries, message_id in batch_rows(messages):
        headers: dict[str, str] = {}
        if message_id is not None:
            if _plain(message_id):
                headers[MSG_ID] = message_id
            else:
                headers[MSG_ID] = headers[ID_B64] = b64(message_id.encode())
        headers[TIME] = str(time)
        if key is not None:
            text = plain_or_none(key, _plain)
            if text is not None:
                headers[KEY] = text
            else:
                headers[KEY_B64] = b64(key)
        if value is None:
            headers[VALUE] = "null"
        if entries is not None:
            if not entries:
                headers[HEADERS] = "empty"
            for index, (name, raw) in enumerate(entries):
                assert raw is not None, "a NATS header cannot carry a null header value"
                text = plain_or_none(raw, _plain)
                if text is not None and _own_name(name) and name not in headers:
                    headers[name] = text
                else:
                    headers[f"{ESCAPED}{index}"] = escaped_entry(name, raw)
        rows.append((value if value is not None else b"", headers))
    return rows


def decode_messages(received: Sequence[Any]) -> MessageBatch:
    """A batch of nats-py messages read from one partition stream, with their offsets (the
    stream sequence less one)."""
    columns = ReceivedColumns(len(received))
    offsets = np.zeros(len(received), dtype=np.int64)
    for row, msg in enumerate(received):
        sequence, stored_ns = _ack_fields(msg.reply)
        offsets[row] = sequence - 1
        headers: dict[str, str] = msg.headers or {}
        time = headers.get(TIME)
        columns.times[row] = int(time) if time is not None else stored_ns // 1_000_000
        columns.values[row] = None if headers.get(VALUE) == "null" else msg.data
        key = headers.get(KEY)
        if key is not None:
            columns.keys[row] = key.encode()
        elif (key_b64 := headers.get(KEY_B64)) is not None:
            columns.keys[row] = unb64(key_b64)
        if (id_b64 := headers.get(ID_B64)) is not None:
            columns.ids[row] = unb64(id_b64).decode()
        else:
            columns.ids[row] = headers.get(MSG_ID)
        entries: Entries = [
            header_entry(name, text, name.startswith(ESCAPED))
            for name, text in headers.items()
            if name not in _RESERVED
        ]
        if entries or headers.get(HEADERS) == "empty":
            columns.headers[row] = entries
    return columns.batch(offsets)


def _ack_fields(reply: str) -> tuple[int, int]:
    """The stream sequence and the store time (epoch ns) of a message read from JetStream,
    from its ack subject: ``$JS.ACK.<stream>.<consumer>.<delivered>.<sequence>.<consumer
    sequence>.<time>.<pending>``, or the newer form with a domain and account hash after
    ``$JS.ACK`` and a random token at the end."""
    tokens = reply.split(".")
    at = 5 if len(tokens) == 9 else 7
    return int(tokens[at]), int(tokens[at + 2])


def _own_name(name: str) -> bool:
    """Whether a header entry can travel under its own name."""
    return _TOKEN.fullmatch(name) is not None and not name.lower().startswith(_CLIENT_NAMES)


def _plain(text: str) -> bool:
    return text.isprintable() and text == text.strip()

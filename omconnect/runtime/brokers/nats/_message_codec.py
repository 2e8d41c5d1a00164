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

import base64
import binascii
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from omconnect.schemas.message_batch import HEADERS_TYPE, MessageBatch

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
    keys = messages.keys.to_pylist()
    values = messages.values.to_pylist()
    times = messages.timestamps.to_pylist()
    maps = messages.headers.to_pylist()
    ids = messages.message_ids.to_pylist()
    rows = []
    for key, value, time, entries, message_id in zip(keys, values, times, maps, ids, strict=True):
        headers: dict[str, str] = {}
        if message_id is not None:
            if _plain(message_id):
                headers[MSG_ID] = message_id
            else:
                encoded = _b64(message_id.encode())
                headers[MSG_ID] = headers[ID_B64] = encoded
        headers[TIME] = str(time)
        if key is not None:
            text = _text(key)
            if text is not None:
                headers[KEY] = text
            else:
                headers[KEY_B64] = _b64(key)
        if value is None:
            headers[VALUE] = "null"
        if entries is not None:
            if not entries:
                headers[HEADERS] = "empty"
            for index, (name, raw) in enumerate(entries):
                text = _text(raw)
                if text is not None and _own_name(name) and name not in headers:
                    headers[name] = text
                else:
                    headers[f"{ESCAPED}{index}"] = f"{_b64(name.encode())}:{_b64(raw)}"
        rows.append((value if value is not None else b"", headers))
    return rows


def decode_messages(received: Sequence[Any]) -> MessageBatch:
    """A batch of nats-py messages read from one partition stream, with their offsets (the
    stream sequence less one)."""
    n = len(received)
    keys: list[bytes | None] = [None] * n
    values: list[bytes | None] = [None] * n
    times = np.zeros(n, dtype=np.int64)
    maps: list[list[tuple[str, bytes]] | None] = [None] * n
    ids: list[str | None] = [None] * n
    offsets = np.zeros(n, dtype=np.int64)
    for row, msg in enumerate(received):
        sequence, stored_ns = _ack_fields(msg.reply)
        offsets[row] = sequence - 1
        headers: dict[str, str] = msg.headers or {}
        time = headers.get(TIME)
        times[row] = int(time) if time is not None else stored_ns // 1_000_000
        values[row] = None if headers.get(VALUE) == "null" else msg.data
        key = headers.get(KEY)
        if key is not None:
            keys[row] = key.encode()
        elif (key_b64 := headers.get(KEY_B64)) is not None:
            keys[row] = _unb64(key_b64)
        if (id_b64 := headers.get(ID_B64)) is not None:
            ids[row] = _unb64(id_b64).decode()
        else:
            ids[row] = headers.get(MSG_ID)
        entries = [_entry(name, text) for name, text in headers.items() if name not in _RESERVED]
        if entries or headers.get(HEADERS) == "empty":
            maps[row] = entries
    return MessageBatch.build(
        values,
        keys=keys,
        timestamps=times,
        headers=pa.array(maps, HEADERS_TYPE),
        offsets=offsets,
        message_ids=ids,
    )


def _ack_fields(reply: str) -> tuple[int, int]:
    """The stream sequence and the store time (epoch ns) of a message read from JetStream,
    from its ack subject: ``$JS.ACK.<stream>.<consumer>.<delivered>.<sequence>.<consumer
    sequence>.<time>.<pending>``, or the newer form with a domain and account hash after
    ``$JS.ACK`` and a random token at the end."""
    tokens = reply.split(".")
    at = 5 if len(tokens) == 9 else 7
    return int(tokens[at]), int(tokens[at + 2])


def _entry(name: str, text: str) -> tuple[str, bytes]:
    if name.startswith(ESCAPED):
        encoded_name, _, encoded_value = text.partition(":")
        try:
            return _unb64(encoded_name).decode(), _unb64(encoded_value)
        except (binascii.Error, UnicodeDecodeError):
            pass  # not ours after all: keep it as it came
    return name, text.encode()


def _own_name(name: str) -> bool:
    """Whether a header entry can travel under its own name."""
    return _TOKEN.fullmatch(name) is not None and not name.lower().startswith(_CLIENT_NAMES)


def _text(raw: bytes) -> str | None:
    """``raw`` as a header value that comes back byte for byte, or None if it cannot."""
    try:
        text = raw.decode()
    except UnicodeDecodeError:
        return None
    return text if _plain(text) else None


def _plain(text: str) -> bool:
    return text.isprintable() and text == text.strip()


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _unb64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)

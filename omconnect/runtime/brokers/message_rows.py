"""What the codecs of the drivers that carry a batch as one broker message per row (amqp,
mqtt, nats) share, whatever their client library (it imports none): a batch's rows, the
columns a received batch is built from, and the text form of bytes a text header cannot
carry as they are."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Iterator

import numpy as np
import pyarrow as pa

from omconnect.schemas.message_batch import HEADERS_TYPE, MessageBatch

Entries = list[tuple[str, bytes | None]]
# A message's key, value, born time (epoch ms), headers map (None: no map) and id.
Row = tuple[bytes | None, bytes | None, int, Entries | None, str | None]


def batch_rows(messages: MessageBatch) -> Iterator[Row]:
    """The rows of ``messages``, in order."""
    return zip(
        messages.keys.to_pylist(),
        messages.values.to_pylist(),
        messages.timestamps.to_pylist(),
        messages.headers.to_pylist(),
        messages.message_ids.to_pylist(),
        strict=True,
    )


class ReceivedColumns:
    """The columns of a batch of ``n`` received messages, set row by row (nulls and time 0
    until then), then ``batch``."""

    def __init__(self, n: int) -> None:
        self.keys: list[bytes | None] = [None] * n
        self.values: list[bytes | None] = [None] * n
        self.times = np.zeros(n, dtype=np.int64)
        self.headers: list[Entries | None] = [None] * n
        self.ids: list[str | None] = [None] * n

    def batch(self, offsets: np.ndarray) -> MessageBatch:
        """The messages, numbered with ``offsets``."""
        return MessageBatch.build(
            self.values,
            keys=self.keys,
            timestamps=self.times,
            headers=pa.array(self.headers, HEADERS_TYPE),
            offsets=offsets,
            message_ids=self.ids,
        )


def plain_or_none(raw: bytes | None, plain: Callable[[str], bool]) -> str | None:
    """``raw`` as text that comes back byte for byte (UTF-8 that ``plain`` says travels as it
    is), or None if it cannot (or is null)."""
    if raw is None:
        return None
    try:
        text = raw.decode()
    except UnicodeDecodeError:
        return None
    return text if plain(text) else None


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def unb64(text: str) -> bytes:
    """The bytes of ``b64``'s text.

    Raises:
        binascii.Error: not base64 (a ``ValueError``).
    """
    return base64.b64decode(text, validate=True)


def escaped_entry(name: str, raw: bytes) -> str:
    """A header entry as text: ``<base64 name>:<base64 value>``."""
    return f"{b64(name.encode())}:{b64(raw)}"


def header_entry(name: str, text: str, escaped: bool) -> tuple[str, bytes]:
    """The header entry a received ``name: text`` carries: an ``escaped_entry`` when
    ``escaped`` and it decodes, else ``name`` with ``text`` (another client's) as it came."""
    if escaped:
        encoded_name, _, encoded_value = text.partition(":")
        try:
            return unb64(encoded_name).decode(), unb64(encoded_value)
        except (binascii.Error, UnicodeDecodeError):
            pass  # not ours after all: keep it as it came
    return name, text.encode()

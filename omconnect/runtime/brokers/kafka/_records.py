"""Rows of a ``MessageBatch`` as Kafka records and back, losslessly.

A row's ``key``, ``value`` and ``timestamp`` are the record's key, value and (CreateTime)
timestamp; null and empty keys and values stay apart, as Kafka keeps them. The ``headers`` map
becomes the record headers in order, name for name (the OpenMessaging fields as ``oms.<name>``,
user properties under their own names, duplicates and null values kept). Three reserved
headers carry what a Kafka record has no place for:

* ``oms.message_id``: the row's ``message_id`` (Kafka has no message id);
* ``oms.born_timestamp``: a timestamp Kafka cannot carry (zero or negative: librdkafka
  replaces a zero timestamp by the current time), in decimal;
* ``oms.headers``: with an empty value, on a record whose header map is empty rather than
  null (a record without headers reads back as a null map).

Reading takes them out again, so a row reads back as it was written.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from omconnect.schemas.message_batch import HEADERS_TYPE, MESSAGE_ID_HEADER, MessageBatch

TIMESTAMP_HEADER = "oms.born_timestamp"
EMPTY_HEADERS_HEADER = "oms.headers"
_RESERVED = frozenset({MESSAGE_ID_HEADER, TIMESTAMP_HEADER, EMPTY_HEADERS_HEADER})
_EMPTY_MAP = (EMPTY_HEADERS_HEADER, b"")

Header = tuple[str, bytes | None]


class OutgoingRows:
    """The Python values of a batch's rows, as ``Producer.produce`` takes them.

    Attributes:
        keys: the record keys (None for a null key).
        values: the record values (None for a null value).
        timestamps: record timestamps; 0 asks Kafka for the current time (see ``headers``).
        headers: each record's headers, None for a record without any.
    """

    def __init__(self, messages: MessageBatch) -> None:
        self.keys: list[bytes | None] = messages.keys.to_pylist()
        self.values: list[bytes | None] = messages.values.to_pylist()
        stamps = messages.timestamps.to_numpy(zero_copy_only=False)
        self.headers = _outgoing_headers(messages, stamps)
        self.timestamps: list[int] = np.where(stamps > 0, stamps, 0).tolist()

    def __len__(self) -> int:
        return len(self.values)


def _outgoing_headers(messages: MessageBatch, stamps: np.ndarray) -> list[list[Header] | None]:
    n = len(messages)
    column = messages.headers
    ids = messages.message_ids
    id_values: list[bytes | None] = (
        ids.cast(pa.binary()).to_pylist() if ids.null_count < n else [None] * n
    )
    headers: list[list[Header] | None]
    if column.null_count == n and ids.null_count == n:
        headers = [None] * n
    elif column.null_count == n:
        headers = [None if i is None else [(MESSAGE_ID_HEADER, i)] for i in id_values]
    else:
        # One Python list of pairs for the batch; each row's headers are a slice of it.
        offsets = column.offsets.to_numpy()
        first, last = int(offsets[0]), int(offsets[-1])
        names = column.keys.slice(first, last - first).to_pylist()
        values = column.items.slice(first, last - first).to_pylist()
        pairs: list[Header] = list(zip(names, values, strict=True))
        starts = (offsets[:-1] - first).tolist()
        ends = (offsets[1:] - first).tolist()
        valid = column.is_valid().to_numpy(zero_copy_only=False).tolist()
        headers = [
            (
                None
                if not present and i is None
                else [(MESSAGE_ID_HEADER, i)]
                if not present
                else (pairs[start:end] or [_EMPTY_MAP])
                if i is None
                else [(MESSAGE_ID_HEADER, i), *(pairs[start:end] or [_EMPTY_MAP])]
            )
            for start, end, present, i in zip(starts, ends, valid, id_values, strict=True)
        ]
        if MESSAGE_ID_HEADER in set(names):  # the id column wins over a map entry
            for own, i in zip(headers, id_values, strict=True):
                if own is not None and i is not None:
                    own[1:] = [h for h in own[1:] if h[0] != MESSAGE_ID_HEADER]
    for row in np.flatnonzero(stamps <= 0).tolist():
        carried = (TIMESTAMP_HEADER, str(int(stamps[row])).encode())
        headers[row] = [*(headers[row] or []), carried]
    return headers


def incoming_batch(records: Sequence[Any]) -> MessageBatch:
    """The ``MessageBatch`` of consumed records (``confluent_kafka.Message``), in order, with
    their offsets; records must be of one topic partition and carry no error."""
    keys = [r.key() for r in records]
    values = [r.value() for r in records]
    stamps = np.fromiter((r.timestamp()[1] for r in records), dtype=np.int64, count=len(records))
    offsets = np.fromiter((r.offset() for r in records), dtype=np.int64, count=len(records))
    ids: list[str | None] = [None] * len(records)
    map_offsets = [0]
    names: list[str] = []
    items: list[bytes | None] = []
    nulls = np.ones(len(records), dtype=bool)
    for row, record in enumerate(records):
        pairs = record.headers()
        if pairs:
            present = False
            for name, value in pairs:
                if name in _RESERVED:
                    if name == MESSAGE_ID_HEADER and ids[row] is None and value is not None:
                        ids[row] = value.decode()
                    elif name == TIMESTAMP_HEADER and value is not None:
                        stamps[row] = int(value)
                    elif name == EMPTY_HEADERS_HEADER:
                        present = True
                    continue
                names.append(name)
                items.append(value)
                present = True
            nulls[row] = not present
        map_offsets.append(len(names))
    headers = pa.MapArray.from_arrays(
        pa.array(map_offsets, pa.int32()),
        pa.array(names, pa.string()),
        pa.array(items, pa.binary()),
        type=HEADERS_TYPE,
        mask=pa.array(nulls),
    )
    return MessageBatch.build(
        values=pa.array(values, pa.binary()),
        keys=pa.array(keys, pa.binary()),
        timestamps=stamps,
        headers=headers,
        offsets=offsets,
        message_ids=pa.array(ids, pa.string()),
    )

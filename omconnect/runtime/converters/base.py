"""The converter contract: record batches to message bodies and back, a whole batch at a time.

A converter never fails a whole batch for one bad row: it returns the rows it could not
convert with the reason, and the runtime sends them to the dead letter topic.

Deletes travel as Kafka tombstones: ``encode`` gives a row of ``RecordBatch.tombstones`` a null
value body and its encoded key (its value columns are not looked at, so they may be null
where the schema says not-null); ``decode`` turns a null body with a key back into a
tombstone row: the key decoded, every value column null. A null body is not a failure.

Most formats are the body alone. One that also carries part of a message in its headers
(``cloudevents`` in binary mode: the event attributes) returns them in ``Encoded.headers``,
which the runtime puts before its own headers (``merged_headers``), and reads them back in
``decode_with_headers``, which the runtime calls with every consumed message's headers.
A format whose bodies are one media type (``json``) labels them the same way: a first
``content-type`` header (``content_type_headers``), which each driver carries as its broker's
own content type where it has one (the AMQP ``content_type`` property, the MQTT 5 Content
Type) and as a header elsewhere, and gives back as the first header on consume.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from omconnect.schemas.message_batch import HEADERS_TYPE
from omconnect.schemas.record import RecordBatch
from omconnect.schemas.schema import Schema


@dataclass
class Encoded:
    """Message bodies for each row of a batch (``values``, ``keys`` binary arrays of the
    batch's length), and rows that failed: row index -> error. Failed rows have null bodies.

    ``headers``: message headers the format adds to each row (``map<string, binary>`` of the
    batch's length, null where a row has none), or None; they come before the runtime's own.
    """

    values: pa.BinaryArray
    keys: pa.BinaryArray | None
    failed: dict[int, Exception] = field(default_factory=dict)
    headers: pa.MapArray | None = None


@dataclass(frozen=True)
class DecodedGroup:
    """Decoded messages of one schema.

    Attributes:
        rows: the message row indices, ascending, one per row of ``values``.
        values: the decoded values; all null on tombstone rows.
        schema: the schema of ``values``.
        keys: the decoded keys, one row per row of ``values``, or None.
        tombstones: true where the message had a null body (a delete of its key); None when
            no row of the group is one.
    """

    rows: pa.Int64Array
    values: pa.RecordBatch
    schema: Schema
    keys: pa.RecordBatch | None = None
    tombstones: pa.BooleanArray | None = None


@dataclass
class Decoded:
    """Rows decoded from message bodies, grouped into batches of one schema each.

    ``groups`` are in order of first row; ``failed`` maps message row index -> error for
    bodies that could not be decoded.
    """

    groups: list[DecodedGroup]
    failed: dict[int, Exception] = field(default_factory=dict)


class Converter(ABC):
    """Encodes and decodes bodies of one format (``avro``, ``json``, ``raw`` ...)."""

    name: str
    content_type: str

    @abstractmethod
    def encode(self, topic: str, batch: RecordBatch) -> Encoded: ...

    @abstractmethod
    def decode(
        self, topic: str, values: pa.BinaryArray, keys: pa.BinaryArray | None
    ) -> Decoded: ...

    def decode_with_headers(
        self,
        topic: str,
        values: pa.BinaryArray,
        keys: pa.BinaryArray | None,
        headers: pa.MapArray | None,
    ) -> Decoded:
        """``decode``, given the messages' headers too (``map<string, binary>``, one row per
        message), for a format that reads part of a message from them; the others ignore
        them."""
        return self.decode(topic, values, keys)

    def decoded_form(self, topic: str, batch: RecordBatch) -> DecodedGroup | None:
        """What ``decode`` gives for the bodies ``encode(topic, batch)`` made, when every row
        of ``batch`` was encoded, without decoding them; None when the converter cannot say
        (the runtime then decodes the bodies). See ``runtime/worker/published_batches.py``."""
        return None


def merged_headers(first: pa.MapArray | None, then: pa.MapArray | None) -> pa.MapArray | None:
    """Each row's entries of ``first`` followed by its entries of ``then`` (two header columns
    of one length; a row null in both stays null), gathered with numpy. The names ``first``
    uses are its own: entries of ``then`` with such a name are left out (a record read from
    an MQTT message keeps its ``content-type`` header, which the format's replaces)."""
    if first is None:
        return then
    if then is None:
        return first
    then = _without_names(then, pc.unique(first.keys.cast(pa.string())))
    first_counts, first_starts = map_extents(first)
    then_counts, then_starts = map_extents(then)
    counts = first_counts + then_counts
    offsets = np.zeros(len(counts) + 1, np.int64)
    np.cumsum(counts, out=offsets[1:])
    owner = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
    within = np.arange(int(offsets[-1]), dtype=np.int64) - offsets[:-1][owner]
    # Pool: every entry of ``first``'s child, then every entry of ``then``'s.
    from_first = within < first_counts[owner]
    take = np.where(
        from_first,
        first_starts[owner] + within,
        len(first.keys) + then_starts[owner] + within - first_counts[owner],
    )
    indices = pa.array(take)
    names = pa.concat_arrays([first.keys.cast(pa.string()), then.keys.cast(pa.string())])
    items = pa.concat_arrays([first.items.cast(pa.binary()), then.items.cast(pa.binary())])
    mask = None
    if first.null_count or then.null_count:
        valid = first.is_valid().to_numpy(zero_copy_only=False)
        valid = valid | then.is_valid().to_numpy(zero_copy_only=False)
        mask = pa.array(~valid) if not valid.all() else None
    return pa.MapArray.from_arrays(
        pa.array(offsets.astype(np.int32)),
        names.take(indices),
        items.take(indices),
        type=HEADERS_TYPE,
        mask=mask,
    )


CONTENT_TYPE = "content-type"
"""The header a message's content type travels in (the drivers' name for it)."""


def content_type_headers(content_type: str, rows: np.ndarray) -> pa.MapArray:
    """A ``content-type: <content_type>`` header on each row where the mask ``rows`` is
    true (a row with a body), and no headers (null) on the others, built with numpy."""
    counts = rows.astype(np.int32)
    offsets = np.zeros(len(counts) + 1, np.int32)
    np.cumsum(counts, out=offsets[1:])
    present = int(offsets[-1])
    names = pa.array([CONTENT_TYPE], pa.string()).take(pa.array(np.zeros(present, np.int64)))
    values = pa.array([content_type.encode()], pa.binary()).take(
        pa.array(np.zeros(present, np.int64))
    )
    mask = None if rows.all() else pa.array(~rows)
    return pa.MapArray.from_arrays(pa.array(offsets), names, values, type=HEADERS_TYPE, mask=mask)


def _without_names(column: pa.MapArray, names: pa.Array) -> pa.MapArray:
    """``column`` without its entries named one of ``names``."""
    counts, starts = map_extents(column)
    if not len(names) or not counts.any():
        return column
    offsets = np.zeros(len(counts) + 1, np.int64)
    np.cumsum(counts, out=offsets[1:])
    owner = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
    positions = pa.array(starts[owner] + np.arange(int(offsets[-1])) - offsets[:-1][owner])
    named = pc.is_in(column.keys.cast(pa.string()).take(positions), value_set=names)
    keep = ~named.to_numpy(zero_copy_only=False)
    if keep.all():
        return column
    kept = np.zeros(len(counts) + 1, np.int32)
    np.cumsum(np.bincount(owner[keep], minlength=len(counts)), out=kept[1:])
    chosen = positions.filter(pa.array(keep))
    return pa.MapArray.from_arrays(
        pa.array(kept),
        column.keys.take(chosen),
        column.items.take(chosen),
        type=column.type,
        mask=pc.is_null(column) if column.null_count else None,
    )


def map_extents(column: pa.MapArray) -> tuple[np.ndarray, np.ndarray]:
    """Entries per row (0 for null rows) and where each row's entries start in the child
    (``keys``/``items`` of a sliced map are its whole child, so the offsets stay absolute)."""
    offsets = column.offsets.to_numpy().astype(np.int64)
    counts = np.diff(offsets)
    if column.null_count:
        counts = np.where(column.is_valid().to_numpy(zero_copy_only=False), counts, 0)
    return counts, offsets[:-1]

"""The converter contract: record batches to message bodies and back, a whole batch at a time.

A converter never fails a whole batch for one bad row: it returns the rows it could not
convert with the reason, and the runtime sends them to the dead letter topic.

Deletes travel as Kafka tombstones: ``encode`` gives a row of ``RecordBatch.tombstones`` a null
value body and its encoded key (its value columns are not looked at, so they may be null
where the schema says not-null); ``decode`` turns a null body with a key back into a
tombstone row: the key decoded, every value column null. A null body is not a failure.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import pyarrow as pa

from omconnect.schemas.record import RecordBatch
from omconnect.schemas.schema import Schema


@dataclass
class Encoded:
    """Message bodies for each row of a batch (``values``, ``keys`` binary arrays of the
    batch's length), and rows that failed: row index -> error. Failed rows have null bodies."""

    values: pa.BinaryArray
    keys: pa.BinaryArray | None
    failed: dict[int, Exception] = field(default_factory=dict)


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

    def decoded_form(self, topic: str, batch: RecordBatch) -> DecodedGroup | None:
        """What ``decode`` gives for the bodies ``encode(topic, batch)`` made, when every row
        of ``batch`` was encoded, without decoding them; None when the converter cannot say
        (the runtime then decodes the bodies). See ``runtime/worker/published_batches.py``."""
        return None

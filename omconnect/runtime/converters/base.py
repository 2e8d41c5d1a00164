"""The converter contract: record batches to message bodies and back, a whole batch at a time.

A converter never fails a whole batch for one bad row: it returns the rows it could not
convert with the reason, and the runtime sends them to the dead letter topic.
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


@dataclass
class Decoded:
    """Rows decoded from message bodies, grouped into batches of one schema each.

    ``groups`` holds (message row indices, values, schema, keys) in order of first row;
    ``failed`` maps message row index -> error for bodies that could not be decoded.
    """

    groups: list[tuple[pa.Int64Array, pa.RecordBatch, Schema, pa.RecordBatch | None]]
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

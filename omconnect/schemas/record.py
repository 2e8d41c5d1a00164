"""Records and record batches: what sources emit and sinks receive.

``Record`` mirrors OpenMessaging Connect's ``ConnectRecord``. ``RecordBatch`` is the unit of
work everywhere: an Arrow record batch of values (and optionally keys) with one schema and the
source positions it covers. Single records are the slow path.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from omconnect.schemas.schema import Schema


@dataclass(frozen=True)
class Position:
    """Where a source is: ``partition`` names a stream of the source (a file, a table, a
    replication slot), ``offset`` is how far into it. Both are JSON-able dicts, opaque to the
    runtime, which only stores and returns them."""

    partition: Mapping[str, Any]
    offset: Mapping[str, Any]


@dataclass(frozen=True)
class PositionMark:
    """Rows ``[.., end_row)`` of a batch bring ``position.partition`` to ``position.offset``.

    A batch carries one mark per source partition it advances, or more (one per transaction
    or per event) when a source can resume in the middle of what the batch holds.
    """

    end_row: int
    position: Position


@dataclass
class Record:
    """One record: the slow path, for sources that produce a handful of values at a time."""

    value: Mapping[str, Any] | None
    schema: Schema
    position: Position | None = None
    key: Mapping[str, Any] | None = None
    key_schema: Schema | None = None
    timestamp: int | None = None
    headers: dict[str, bytes] = field(default_factory=dict)
    stream: str | None = None


@dataclass
class RecordBatch:
    """Rows of one schema as an Arrow record batch, with the positions they cover.

    Attributes:
        values: the rows; column names and types follow ``schema``.
        schema: the omconnect schema of ``values``.
        marks: positions reached inside this batch, ordered by ``end_row``.
        keys: explicit keys, one row per value row; when None, the key is the schema's
            ``key_fields`` columns of ``values``.
        key_schema: the schema of ``keys``.
        timestamps: per-row event time in epoch milliseconds (int64), or None for "now".
        headers: headers shared by every row, added to each message.
        stream: the source stream the rows come from (``schema.table`` for databases); the
            runtime publishes to ``<topic>.<stream>`` when it is set.
    """

    values: pa.RecordBatch
    schema: Schema
    marks: tuple[PositionMark, ...] = ()
    keys: pa.RecordBatch | None = None
    key_schema: Schema | None = None
    timestamps: pa.Array | None = None
    headers: dict[str, bytes] = field(default_factory=dict)
    stream: str | None = None

    @property
    def num_rows(self) -> int:
        return self.values.num_rows

    @property
    def nbytes(self) -> int:
        return self.values.nbytes + (self.keys.nbytes if self.keys is not None else 0)

    @property
    def positions(self) -> list[Position]:
        """The last position reached for each source partition, in first-seen order."""
        last: dict[str, Position] = {}
        for mark in self.marks:
            last[partition_id(mark.position.partition)] = mark.position
        return list(last.values())

    def key_columns(self) -> pa.RecordBatch | None:
        """The key of every row: ``keys`` if given, else the schema's key fields."""
        if self.keys is not None:
            return self.keys
        if self.schema.key_fields:
            return self.values.select(list(self.schema.key_fields))
        return None

    def position_of(self, row: int) -> Position | None:
        """The position covering ``row``: the first mark that ends after it."""
        for mark in self.marks:
            if mark.end_row > row:
                return mark.position
        return self.marks[-1].position if self.marks else None

    def filter(self, mask: pa.BooleanArray | pa.ChunkedArray) -> RecordBatch:
        """Keep the rows where ``mask`` is true; marks keep covering the rows they did."""
        if isinstance(mask, pa.ChunkedArray):
            mask = mask.combine_chunks()
        mask = pc.fill_null(mask, False)
        kept_before = pc.cumulative_sum(pc.cast(mask, pa.int64())).to_numpy()
        marks = tuple(
            replace(m, end_row=int(kept_before[m.end_row - 1]) if m.end_row > 0 else 0)
            for m in self.marks
        )
        return replace(
            self,
            values=self.values.filter(mask),
            keys=self.keys.filter(mask) if self.keys is not None else None,
            timestamps=self.timestamps.filter(mask) if self.timestamps is not None else None,
            marks=marks,
        )

    def slice(self, offset: int, length: int) -> RecordBatch:
        """Rows ``[offset, offset + length)``; marks are kept only for that range."""
        end = offset + length
        marks = tuple(
            replace(m, end_row=m.end_row - offset) for m in self.marks if offset < m.end_row <= end
        )
        return replace(
            self,
            values=self.values.slice(offset, length),
            keys=self.keys.slice(offset, length) if self.keys is not None else None,
            timestamps=(
                self.timestamps.slice(offset, length) if self.timestamps is not None else None
            ),
            marks=marks,
        )

    def with_values(self, values: pa.RecordBatch, schema: Schema) -> RecordBatch:
        """The same rows, positions and keys with other value columns (for transforms)."""
        if values.num_rows != self.num_rows:
            raise ValueError("with_values keeps the row count; use filter() to drop rows")
        return replace(self, values=values, schema=schema)

    @classmethod
    def from_records(cls, records: Sequence[Record]) -> list[RecordBatch]:
        """Group records into batches of one schema and stream each (the slow path)."""
        from omconnect.schemas.arrow import rows_to_arrow

        batches: list[RecordBatch] = []
        start = 0
        while start < len(records):
            head = records[start]
            end = start + 1
            while (
                end < len(records)
                and records[end].schema == head.schema
                and records[end].stream == head.stream
            ):
                end += 1
            group = records[start:end]
            values = rows_to_arrow([dict(r.value or {}) for r in group], head.schema)
            keys = None
            if head.key_schema is not None:
                keys = rows_to_arrow([dict(r.key or {}) for r in group], head.key_schema)
            timestamps = None
            if any(r.timestamp is not None for r in group):
                timestamps = pa.array([r.timestamp for r in group], pa.int64())
            marks = tuple(
                PositionMark(i + 1, r.position) for i, r in enumerate(group) if r.position
            )
            batches.append(
                cls(
                    values=values,
                    schema=head.schema,
                    marks=marks,
                    keys=keys,
                    key_schema=head.key_schema,
                    timestamps=timestamps,
                    headers=dict(head.headers),
                    stream=head.stream,
                )
            )
            start = end
        return batches


def partition_id(partition: Mapping[str, Any]) -> str:
    """A stable string for a partition dict: how offsets are keyed in storage."""
    return json.dumps(partition, sort_keys=True, separators=(",", ":"), default=str)

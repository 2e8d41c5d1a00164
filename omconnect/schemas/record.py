"""Records and record batches: what sources emit and sinks receive.

``Record`` mirrors OpenMessaging Connect's ``ConnectRecord``. ``RecordBatch`` is the unit of
work everywhere: an Arrow record batch of values (and optionally keys) with one schema and the
source positions it covers. Single records are the slow path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from omconnect.schemas.message_batch import HEADERS_TYPE
from omconnect.schemas.message_ids import MessageIdRuns
from omconnect.schemas.position_codec import encode_position_value
from omconnect.schemas.schema import Schema


@dataclass(frozen=True)
class Position:
    """Where a source is: ``partition`` names a stream of the source (a file, a table, a
    replication slot), ``offset`` is how far into it. Both are dicts of JSON values,
    datetimes, dates, times, decimals, bytes and UUIDs (see ``position_codec``), opaque to the
    runtime, which only stores and returns them, losslessly."""

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
    """One record: the slow path, for sources that produce a handful of values at a time.

    Attributes:
        value: the row; None makes the record a delete (tombstone) of ``key``.
        schema: the schema of ``value``.
        position: where the source is once this record is delivered.
        key: the message key; required for a delete. When ``key_schema`` is None the key is
            the schema's ``key_fields`` of ``value``.
        key_schema: the schema of ``key``.
        timestamp: event time in epoch milliseconds, or None for "now".
        headers: headers of this record's message.
        stream: the source stream (see ``RecordBatch.stream``).
        message_id: a stable message id (see ``RecordBatch.message_ids``).
        topic: an absolute topic for this record (see ``RecordBatch.topic``).
    """

    value: Mapping[str, Any] | None
    schema: Schema
    position: Position | None = None
    key: Mapping[str, Any] | None = None
    key_schema: Schema | None = None
    timestamp: int | None = None
    headers: dict[str, bytes] = field(default_factory=dict)
    stream: str | None = None
    message_id: str | None = None
    topic: str | None = None


_UNSET: Any = object()


@dataclass(init=False)
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
        tombstones: per-row deletes: where true the row has a key and no value (its value
            columns are null, but for the key fields when the key is taken from them; they
            may be null even where the schema says not-null); it travels as a message with a
            null body, as Kafka tombstones do, and reaches sinks as a delete of that key.
            None: no row is a delete. ``delete_mask()`` gives it as a numpy mask.
        row_headers: per-row headers (``map<string, binary>``, one entry per row, null for
            none), added to ``headers`` for that row's message.
        message_ids: per-row stable message ids (a ``pa.StringArray``), sent as
            ``oms.message_id``; when None the runtime derives them from the positions, so a
            redelivered row carries the same id. Given as strings or as ``MessageIdRuns``
            (what the runtime derives); read, always strings (runs are built into strings on
            the first read; ``carried_message_ids`` gives them as carried).
        topic: an absolute topic for these rows (heartbeat topics), instead of the pipeline's
            ``<topic>[.<stream>]``. On sink batches: the topic they were read from.
        partition: on sink batches, the topic partition they were read from.
    """

    values: pa.RecordBatch
    schema: Schema
    marks: tuple[PositionMark, ...] = ()
    keys: pa.RecordBatch | None = None
    key_schema: Schema | None = None
    timestamps: pa.Array | None = None
    headers: dict[str, bytes] = field(default_factory=dict)
    stream: str | None = None
    tombstones: pa.BooleanArray | None = None
    row_headers: pa.MapArray | None = None
    topic: str | None = None
    partition: int | None = None
    # The ids as carried (``message_ids`` is the property that reads them as strings).
    _ids: pa.StringArray | MessageIdRuns | None = field(default=None, repr=False)

    def __init__(
        self,
        values: pa.RecordBatch,
        schema: Schema,
        marks: tuple[PositionMark, ...] = (),
        keys: pa.RecordBatch | None = None,
        key_schema: Schema | None = None,
        timestamps: pa.Array | None = None,
        headers: dict[str, bytes] | None = None,
        stream: str | None = None,
        tombstones: pa.BooleanArray | None = None,
        row_headers: pa.MapArray | None = None,
        message_ids: pa.StringArray | MessageIdRuns | None = _UNSET,
        topic: str | None = None,
        partition: int | None = None,
        _ids: pa.StringArray | MessageIdRuns | None = None,
    ) -> None:
        # ``dataclasses.replace`` passes the carried ids as ``_ids``; ``message_ids`` wins.
        self.values = values
        self.schema = schema
        self.marks = marks
        self.keys = keys
        self.key_schema = key_schema
        self.timestamps = timestamps
        self.headers = {} if headers is None else headers
        self.stream = stream
        self.tombstones = tombstones
        self.row_headers = row_headers
        self.topic = topic
        self.partition = partition
        self._ids = None
        for name in ("tombstones", "row_headers"):
            self._check_length(name, getattr(self, name))
        self.message_ids = _ids if message_ids is _UNSET else message_ids

    def _check_length(self, name: str, column: Any) -> None:
        if column is not None and len(column) != self.values.num_rows:
            raise ValueError(
                f"RecordBatch.{name} has {len(column)} entries for {self.values.num_rows} rows"
            )

    @property
    def message_ids(self) -> pa.StringArray | None:
        """Per-row message ids as strings (see the class docstring)."""
        ids = self._ids
        return ids.to_array() if isinstance(ids, MessageIdRuns) else ids

    @message_ids.setter
    def message_ids(self, ids: pa.StringArray | MessageIdRuns | None) -> None:
        self._check_length("message_ids", ids)
        self._ids = ids

    @property
    def carried_message_ids(self) -> pa.StringArray | MessageIdRuns | None:
        """The ids as the batch carries them: strings, runs or None (reading it builds no
        strings)."""
        return self._ids

    @property
    def num_rows(self) -> int:
        return self.values.num_rows

    @property
    def nbytes(self) -> int:
        """The bytes of every column the batch holds (what back-pressure counts)."""
        columns = (self.keys, self.timestamps, self.tombstones, self.row_headers, self._ids)
        return self.values.nbytes + sum(c.nbytes for c in columns if c is not None)

    @property
    def positions(self) -> list[Position]:
        """The last position reached for each source partition, in first-seen order."""
        last: dict[str, Position] = {}
        ids: dict[int, str] = {}  # a source marks its rows with one partition dict, mostly
        for mark in self.marks:
            partition = mark.position.partition
            pid = ids.get(id(partition))
            if pid is None:
                pid = ids[id(partition)] = partition_id(partition)
            last[pid] = mark.position
        return list(last.values())

    def delete_mask(self) -> npt.NDArray[np.bool_]:
        """True for each row that is a delete (tombstone); all False without ``tombstones``."""
        if self.tombstones is None:
            return np.zeros(self.num_rows, dtype=np.bool_)
        filled = pc.fill_null(self.tombstones, False)
        return np.asarray(filled.to_numpy(zero_copy_only=False), dtype=np.bool_)

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
        """Keep the rows where ``mask`` is true, with their keys, timestamps, tombstone flags,
        headers and message ids; marks keep covering the rows they did."""
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
            tombstones=self.tombstones.filter(mask) if self.tombstones is not None else None,
            row_headers=self.row_headers.filter(mask) if self.row_headers is not None else None,
            _ids=self._ids.filter(mask) if self._ids is not None else None,
            marks=marks,
        )

    def slice(self, offset: int, length: int) -> RecordBatch:
        """Rows ``[offset, offset + length)`` with their per-row columns; marks are kept only
        for that range."""
        end = offset + length
        marks = tuple(
            replace(m, end_row=m.end_row - offset) for m in self.marks if offset < m.end_row <= end
        )

        def cut(column: Any) -> Any:
            return column.slice(offset, length) if column is not None else None

        return replace(
            self,
            values=self.values.slice(offset, length),
            keys=cut(self.keys),
            timestamps=cut(self.timestamps),
            tombstones=cut(self.tombstones),
            row_headers=cut(self.row_headers),
            _ids=cut(self._ids),
            marks=marks,
        )

    def with_values(self, values: pa.RecordBatch, schema: Schema) -> RecordBatch:
        """The same rows, positions, keys and per-row columns (tombstones, headers, message
        ids, timestamps) with other value columns (for transforms)."""
        if values.num_rows != self.num_rows:
            raise ValueError("with_values keeps the row count; use filter() to drop rows")
        return replace(self, values=values, schema=schema)

    @classmethod
    def concat(cls, batches: Sequence[RecordBatch]) -> RecordBatch:
        """Join batches of one schema, key schema, stream, topic and shared headers, in order.

        Marks are shifted to the joined row numbers. Tombstone flags and row headers of
        batches without them are filled (no delete, no headers).

        Raises:
            ValueError: no batches; the batches differ in one of the above; or some have
                explicit keys, timestamps or message ids and others do not.
        """
        if not batches:
            raise ValueError("RecordBatch.concat needs at least one batch")
        head = batches[0]
        if len(batches) == 1:
            return head
        for attribute in ("schema", "key_schema", "stream", "topic", "partition", "headers"):
            if any(getattr(b, attribute) != getattr(head, attribute) for b in batches):
                raise ValueError(f"RecordBatch.concat: the batches differ in {attribute}")
        for attribute in ("keys", "timestamps", "_ids"):
            given = [getattr(b, attribute) is not None for b in batches]
            if any(given) and not all(given):
                raise ValueError(
                    f"RecordBatch.concat: some batches have {attribute.strip('_')} and others "
                    "do not"
                )
        marks: list[PositionMark] = []
        start = 0
        for b in batches:
            marks.extend(replace(m, end_row=m.end_row + start) for m in b.marks)
            start += b.num_rows
        tombstones = None
        if any(b.tombstones is not None for b in batches):
            tombstones = pa.concat_arrays([pa.array(b.delete_mask(), pa.bool_()) for b in batches])
        row_headers = None
        if any(b.row_headers is not None for b in batches):
            row_headers = pa.concat_arrays(
                [
                    b.row_headers
                    if b.row_headers is not None
                    else pa.nulls(b.num_rows, HEADERS_TYPE)
                    for b in batches
                ]
            )
        return replace(
            head,
            values=_concat_batches([b.values for b in batches]),
            keys=_concat_batches([b.keys for b in batches if b.keys is not None])
            if head.keys is not None
            else None,
            timestamps=pa.concat_arrays([b.timestamps for b in batches])
            if head.timestamps is not None
            else None,
            _ids=_concat_ids([b._ids for b in batches]) if head._ids is not None else None,
            tombstones=tombstones,
            row_headers=row_headers,
            marks=tuple(marks),
        )

    @classmethod
    def from_records(cls, records: Sequence[Record]) -> list[RecordBatch]:
        """Group consecutive records of one schema, stream, topic and key schema into batches
        (the slow path).

        A record whose ``value`` is None becomes a delete (a tombstone row: null value
        columns, its key kept in ``keys``). Each record's headers become its row's
        ``row_headers``; message ids and timestamps are kept per row.

        Raises:
            ValueError: a delete has no ``key``, or no key schema to hold it (neither
                ``key_schema`` nor the schema's ``key_fields``).
        """
        batches: list[RecordBatch] = []
        start = 0
        while start < len(records):
            head = records[start]
            end = start + 1
            while end < len(records) and _same_group(records[end], head):
                end += 1
            batches.append(cls._from_group(records[start:end], start))
            start = end
        return batches

    @classmethod
    def _from_group(cls, group: Sequence[Record], first: int) -> RecordBatch:
        from omconnect.schemas.arrow import rows_to_arrow

        head = group[0]
        deletes = [r.value is None for r in group]
        key_schema = head.key_schema
        if any(deletes) and key_schema is None:
            key_schema = head.schema.key_schema()
        for number, (record, delete) in enumerate(zip(group, deletes, strict=True)):
            if delete and record.key is None:
                raise ValueError(
                    f"record {first + number}: value=None makes it a delete (tombstone) of its "
                    "key, so Record.key is required"
                )
            if delete and key_schema is None:
                raise ValueError(
                    f"record {first + number}: a delete (value=None) needs a key schema: set "
                    f"Record.key_schema or key_fields on schema {head.schema.name!r}"
                )
        values = rows_to_arrow([dict(r.value or {}) for r in group], head.schema)
        keys = None
        if key_schema is not None:
            keys = rows_to_arrow([_key_row(r, key_schema) for r in group], key_schema)
        timestamps = None
        if any(r.timestamp is not None for r in group):
            timestamps = pa.array([r.timestamp for r in group], pa.int64())
        row_headers = None
        if any(r.headers for r in group):
            row_headers = pa.array(
                [list(r.headers.items()) if r.headers else None for r in group], HEADERS_TYPE
            )
        message_ids = None
        if any(r.message_id is not None for r in group):
            message_ids = pa.array([r.message_id for r in group], pa.string())
        marks = tuple(PositionMark(i + 1, r.position) for i, r in enumerate(group) if r.position)
        return cls(
            values=values,
            schema=head.schema,
            marks=marks,
            keys=keys,
            key_schema=key_schema,
            timestamps=timestamps,
            stream=head.stream,
            tombstones=pa.array(deletes, pa.bool_()) if any(deletes) else None,
            row_headers=row_headers,
            message_ids=message_ids,
            topic=head.topic,
        )


def _same_group(record: Record, head: Record) -> bool:
    return (
        record.schema == head.schema
        and record.stream == head.stream
        and record.topic == head.topic
        and record.key_schema == head.key_schema
    )


def _key_row(record: Record, key_schema: Schema) -> dict[str, Any]:
    """The key of ``record`` as a row of ``key_schema``: ``Record.key`` when given, else the
    key fields of its value."""
    if record.key is not None:
        return dict(record.key)
    value = record.value or {}
    return {name: value.get(name) for name in key_schema.names}


def _concat_ids(
    parts: Sequence[pa.StringArray | MessageIdRuns | None],
) -> pa.StringArray | MessageIdRuns:
    """Runs when every part is runs, else strings."""
    runs = [p for p in parts if isinstance(p, MessageIdRuns)]
    if len(runs) == len(parts):
        return MessageIdRuns.concat(runs)
    return pa.concat_arrays(
        [p.to_array() if isinstance(p, MessageIdRuns) else p for p in parts if p is not None]
    )


def _concat_batches(batches: list[pa.RecordBatch]) -> pa.RecordBatch:
    joined = pa.Table.from_batches(batches).combine_chunks().to_batches()
    return joined[0] if joined else batches[0]


def partition_id(partition: Mapping[str, Any]) -> str:
    """A stable string for a partition dict: how offsets are keyed in storage.

    Canonical tagged JSON (see ``position_codec``): plain JSON values give the same id as
    before tags existed.

    Raises:
        TypeError: a value a position cannot hold.
    """
    return encode_position_value(partition)

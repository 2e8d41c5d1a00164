"""Reading one pass over a file as record batches of one schema, each ending in a position mark.

The first block of a file fixes its schema; later blocks are cast to it, so every batch of a
file has the same columns and types. A pass over a file that grew starts with the types its
first pass found (``known_types``). Each batch ends with the mark ``{"file": name}`` -> the
offset the pass's ``offset_at`` gives for the rows read so far (see ``_file_position``); the
pass's last batch gets the offset of its end.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from typing import Any

import pyarrow as pa

from omconnect.connectors.api import (
    ConfigError,
    ConnectorError,
    Position,
    PositionMark,
    RecordBatch,
)
from omconnect.connectors.files._file_store import StoredFile
from omconnect.schemas.arrow import from_arrow_schema, to_arrow_schema
from omconnect.schemas.schema import Schema

OffsetAt = Callable[[int, bool], dict[str, Any]]
"""The offset of a pass after ``rows`` rows of the file; the second argument says whether the
pass read to its end."""


class FileCursor:
    """One pass over a file: batches of at most ``batch_size`` rows.

    Args:
        file: the file and its partition string.
        blocks: the format reader's record batches of the pass.
        start_offset: the offset the pass starts from (None: the file's first pass).
        start_row: rows of the file delivered before the first row of ``blocks``.
        offset_at: the offset after a number of rows of the file.
        batch_size: the most rows per batch.
        schema_name: the name given to the file's schema.
        key_fields: the configured key columns; each must be a column of the file.
        known_types: the Arrow schema of the file's first block, when an earlier pass read it.
        inferred_types: whether the format's types are inferred from its text (csv, jsonl),
            so that a column null in every row of the first block says nothing of its type.

    Attributes:
        error: why the pass ended early (the reader failed, a block did not fit the file's
            types, a key column is missing: ``ConfigError``), once ``next_batch`` returned
            None; None when it read to its end.
        first_types: the Arrow schema of the file's first block, once known.
    """

    def __init__(
        self,
        file: StoredFile,
        blocks: Iterator[pa.RecordBatch],
        *,
        start_offset: Mapping[str, Any] | None,
        start_row: int,
        offset_at: OffsetAt,
        batch_size: int,
        schema_name: str,
        key_fields: Sequence[str],
        known_types: pa.Schema | None = None,
        inferred_types: bool = True,
    ) -> None:
        self.file = file
        self._inferred_types = inferred_types
        self.error: ConnectorError | None = None
        self.first_types: pa.Schema | None = None
        self._start_offset = dict(start_offset) if start_offset is not None else None
        self._offset_at = offset_at
        self._rows_fetched = start_row
        self._rows_emitted = start_row
        self._emitted_any = False
        self._schema_name = schema_name
        self._key_fields = tuple(key_fields)
        self._schema: Schema | None = None
        self._arrow_schema: pa.Schema | None = None
        if known_types is not None:
            try:
                self._fix_schema(known_types)
            except ConnectorError as err:
                self.error = err
        self._pieces = _rebatch((self._conform(block) for block in blocks), batch_size)
        # One batch of lookahead tells whether the batch being returned is the pass's last.
        self._ahead = self._fetch()

    @property
    def partition(self) -> dict[str, str]:
        return {"file": self.file.name}

    @property
    def rows(self) -> int:
        """Rows of the file delivered once every batch returned so far is."""
        return self._rows_emitted

    def next_batch(self) -> RecordBatch | None:
        """The next batch of the pass, or None at its end (see ``error``).

        A pass that reached its end without a row but moved the position (blank lines, bad
        records only, an offset of an earlier version upgraded) ends with a batch of no rows
        that carries the new position.
        """
        current = self._ahead
        if current is None:
            if self.error is None and not self._emitted_any:
                self._emitted_any = True
                offset = self._offset_at(self._rows_emitted, True)
                if offset != self._start_offset:
                    return position_only(self.file.name, offset, self._schema_name)
            return None
        self._ahead = self._fetch()
        values = current
        self._rows_emitted += values.num_rows
        self._emitted_any = True
        at_end = self._ahead is None and self.error is None
        offset = self._offset_at(self._rows_emitted, at_end)
        assert self._schema is not None
        mark = PositionMark(values.num_rows, Position(self.partition, offset))
        return RecordBatch(values=values, schema=self._schema, marks=(mark,), stream=None)

    def _fetch(self) -> pa.RecordBatch | None:
        if self.error is not None:
            return None
        try:
            piece = next(self._pieces, None)
        except ConnectorError as err:
            self.error = err
            return None
        except Exception as err:  # any reader failure: name the file and where it happened
            what = (
                "cannot read the file"
                if self._rows_fetched == 0
                else f"cannot read the rows after row {self._rows_fetched}"
            )
            self.error = ConnectorError(f"{self.file.name}: {what}: {err}")
            self.error.__cause__ = err
            return None
        if piece is not None:
            self._rows_fetched += piece.num_rows
        return piece

    def _conform(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        """``batch`` with the file's schema (fixed by the first batch)."""
        if self._arrow_schema is None:
            self._fix_schema(batch.schema)
        target = self._arrow_schema
        assert target is not None
        if batch.schema.equals(target, check_metadata=False):
            return batch
        if batch.schema.names != target.names:
            batch = self._with_columns_of(batch, target)
        try:
            return batch.cast(target)
        except (pa.ArrowException, ValueError) as err:
            raise ConnectorError(
                f"{self.file.name}: rows after row {self._rows_emitted} do not fit the types "
                f"of the file's first rows: {err}"
            ) from err

    def _with_columns_of(self, batch: pa.RecordBatch, target: pa.Schema) -> pa.RecordBatch:
        """``batch`` with the columns of ``target`` in its order: a column it lacks (a JSON
        field absent from every line of a block) is null. A column ``target`` does not have
        is an error."""
        extra = [name for name in batch.schema.names if name not in target.names]
        if extra:
            raise ConnectorError(
                f"{self.file.name}: columns changed within the file after row "
                f"{self._rows_emitted}: {batch.schema.names} instead of {target.names}"
            )
        columns = [
            batch.column(field.name)
            if field.name in batch.schema.names
            else pa.nulls(batch.num_rows, field.type)
            for field in target
        ]
        return pa.RecordBatch.from_arrays(columns, names=target.names)

    def _fix_schema(self, first: pa.Schema) -> None:
        self.first_types = first
        self._schema = self._schema_of(first)
        self._arrow_schema = to_arrow_schema(self._schema)

    def _schema_of(self, arrow: pa.Schema) -> Schema:
        missing = [k for k in self._key_fields if k not in arrow.names]
        if missing:
            raise ConfigError(
                f"{self.file.name}: key column {missing[0]!r} is not in the file "
                f"(columns: {', '.join(arrow.names)})",
                key="key",
            )
        # In a format whose types are inferred, a column that is null in every row of the
        # first block has Arrow's null type for want of a value: read it as strings. A format
        # that declares its types (Parquet, Avro) means the null type.
        fields = [
            f.with_type(pa.string()) if self._inferred_types and pa.types.is_null(f.type) else f
            for f in arrow
        ]
        try:
            schema = from_arrow_schema(
                pa.schema(fields, metadata=arrow.metadata), self._schema_name, self._key_fields
            )
        except (TypeError, ValueError) as err:
            raise ConnectorError(f"{self.file.name}: unsupported column type: {err}") from err
        if self._key_fields and schema.key_fields != self._key_fields:
            schema = replace(schema, key_fields=self._key_fields)
        return schema


def position_only(file_name: str, offset: Mapping[str, Any], schema_name: str) -> RecordBatch:
    """A batch of no rows that moves the position of ``file_name`` to ``offset`` (a file
    dead-lettered, skipped or read without a row): the runtime commits it like any other."""
    schema = Schema(schema_name, ())
    values = pa.RecordBatch.from_pylist([], schema=pa.schema([]))
    mark = PositionMark(0, Position({"file": file_name}, dict(offset)))
    return RecordBatch(values=values, schema=schema, marks=(mark,), stream=None)


def _rebatch(blocks: Iterator[pa.RecordBatch], batch_size: int) -> Iterator[pa.RecordBatch]:
    """The rows of ``blocks`` (of one schema) as batches of ``batch_size`` rows, the last one
    shorter. Readers use small blocks so that their read-ahead stays small in memory; small
    blocks are joined here, large ones sliced without copies."""
    held: list[pa.RecordBatch] = []
    rows = 0
    try:
        for block in blocks:
            start = 0
            while start < block.num_rows:
                take = min(batch_size - rows, block.num_rows - start)
                held.append(block.slice(start, take))
                rows += take
                start += take
                if rows == batch_size:
                    yield _joined(held)
                    held, rows = [], 0
    except Exception:
        # The rows read before a failure are still delivered (and committed) before it.
        if held:
            yield _joined(held)
        raise
    if held:
        yield _joined(held)


def _joined(pieces: list[pa.RecordBatch]) -> pa.RecordBatch:
    if len(pieces) == 1:
        return pieces[0]
    return pa.Table.from_batches(pieces).combine_chunks().to_batches()[0]

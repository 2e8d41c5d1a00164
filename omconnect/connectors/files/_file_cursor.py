"""Reading one file as record batches of one schema, each ending in a position mark.

The first block of a file fixes its schema; later blocks are cast to it, so every batch of a
file has the same columns and types. Each batch ends with the mark ``{"file": name}`` ->
``{"row": rows read so far}``; the file's last batch also says ``"complete": true`` so that a
later run does not reopen the file at all.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace

import pyarrow as pa

from omconnect.connectors.api import (
    ConfigError,
    ConnectorError,
    Position,
    PositionMark,
    RecordBatch,
)
from omconnect.connectors.files._glob import MatchedFile
from omconnect.schemas.arrow import from_arrow_schema, to_arrow_schema
from omconnect.schemas.schema import Schema


class FileCursor:
    """Batches of one file from ``start_row`` on, at most ``batch_size`` rows each.

    Args:
        file: the file and its partition string.
        blocks: the format reader's record batches, starting at ``start_row``.
        start_row: rows of the file already delivered (skipped by the reader).
        batch_size: the most rows per batch.
        schema_name: the name given to the file's schema.
        key_fields: the configured key columns; each must be a column of the file.
    """

    def __init__(
        self,
        file: MatchedFile,
        blocks: Iterator[pa.RecordBatch],
        start_row: int,
        batch_size: int,
        schema_name: str,
        key_fields: Sequence[str],
    ) -> None:
        self.file = file
        self._pieces = _rebatch((self._conform(block) for block in blocks), batch_size)
        self._rows_fetched = start_row
        self._rows_emitted = start_row
        self._schema_name = schema_name
        self._key_fields = tuple(key_fields)
        self._schema: Schema | None = None
        self._arrow_schema: pa.Schema | None = None
        self._error: ConnectorError | None = None
        # One batch of lookahead tells whether the batch being returned is the file's last.
        self._ahead = self._fetch()

    @property
    def partition(self) -> dict[str, str]:
        return {"file": self.file.name}

    def next_batch(self) -> RecordBatch | None:
        """The next batch of the file, or None at its end.

        Raises:
            ConnectorError: the file cannot be parsed (naming the file and the row), its
                types change, or a key column is missing (``ConfigError``).
        """
        current = self._ahead
        if current is None:
            if self._error is not None:
                raise self._error
            return None
        self._ahead = self._fetch()
        values = current
        self._rows_emitted += values.num_rows
        offset: dict[str, int | bool] = {"row": self._rows_emitted}
        if self._ahead is None and self._error is None:
            offset["complete"] = True
        assert self._schema is not None
        mark = PositionMark(values.num_rows, Position(self.partition, offset))
        return RecordBatch(values=values, schema=self._schema, marks=(mark,), stream=None)

    def _fetch(self) -> pa.RecordBatch | None:
        if self._error is not None:
            return None
        try:
            piece = next(self._pieces, None)
        except ConnectorError as err:
            self._error = err
            return None
        except Exception as err:  # any reader failure: name the file and where it happened
            self._error = ConnectorError(
                f"{self.file.name}: cannot read the rows after row {self._rows_fetched}: {err}"
            )
            return None
        if piece is not None:
            self._rows_fetched += piece.num_rows
        return piece

    def _conform(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        """``batch`` with the file's schema (fixed by the first batch)."""
        if self._arrow_schema is None:
            self._schema = self._schema_of(batch.schema)
            self._arrow_schema = to_arrow_schema(self._schema)
        target = self._arrow_schema
        if batch.schema.equals(target, check_metadata=False):
            return batch
        if batch.schema.names != target.names:
            raise ConnectorError(
                f"{self.file.name}: columns changed within the file after row "
                f"{self._rows_emitted}: {batch.schema.names} instead of {target.names}"
            )
        try:
            return batch.cast(target)
        except (pa.ArrowException, ValueError) as err:
            raise ConnectorError(
                f"{self.file.name}: rows after row {self._rows_emitted} do not fit the types "
                f"of the file's first rows: {err}"
            ) from err

    def _schema_of(self, arrow: pa.Schema) -> Schema:
        missing = [k for k in self._key_fields if k not in arrow.names]
        if missing:
            raise ConfigError(
                f"{self.file.name}: key column {missing[0]!r} is not in the file "
                f"(columns: {', '.join(arrow.names)})",
                key="key",
            )
        # A column that is null in every row of the first block has Arrow's null type, which
        # no schema type matches: read it as strings.
        fields = [f.with_type(pa.string()) if pa.types.is_null(f.type) else f for f in arrow]
        try:
            schema = from_arrow_schema(
                pa.schema(fields, metadata=arrow.metadata), self._schema_name, self._key_fields
            )
        except (TypeError, ValueError) as err:
            raise ConnectorError(f"{self.file.name}: unsupported column type: {err}") from err
        if self._key_fields and schema.key_fields != self._key_fields:
            schema = replace(schema, key_fields=self._key_fields)
        return schema


def _rebatch(blocks: Iterator[pa.RecordBatch], batch_size: int) -> Iterator[pa.RecordBatch]:
    """The rows of ``blocks`` (of one schema) as batches of ``batch_size`` rows, the last one
    shorter. Readers use small blocks so that their read-ahead stays small in memory; small
    blocks are joined here, large ones sliced without copies."""
    held: list[pa.RecordBatch] = []
    rows = 0
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
    if held:
        yield _joined(held)


def _joined(pieces: list[pa.RecordBatch]) -> pa.RecordBatch:
    if len(pieces) == 1:
        return pieces[0]
    return pa.Table.from_batches(pieces).combine_chunks().to_batches()[0]


def skip_rows(blocks: Iterator[pa.RecordBatch], count: int) -> Iterator[pa.RecordBatch]:
    """``blocks`` without their first ``count`` rows: whole blocks are dropped by their row
    counts and only the block holding row ``count`` is sliced."""
    remaining = count
    for block in blocks:
        if remaining >= block.num_rows:
            remaining -= block.num_rows
            continue
        yield block.slice(remaining) if remaining else block
        remaining = 0

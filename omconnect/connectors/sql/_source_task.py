"""The reading task of the ``sql`` source: its tables one after the other, a chunk per poll.

On start the task reflects its tables and reads each one's committed offset. A snapshot
table is read chunk by chunk until a chunk comes back short (its position then says
``done``, and later runs skip it). An incremental table is read in *passes*: chunks until one
comes back short, then (running continuously) again after ``poll_interval``. Before each pass
the table is reflected again, so a column added meanwhile gives a new schema version (or a
refusal, per ``schema_evolution``). Under ``run --once`` ``poll`` returns None once every
table's snapshot or first pass is done; running continuously, a caught-up task waits
``_IDLE_WAIT_SECONDS`` per empty poll until a table's next pass is due.

A ``query:`` is read the same way, as the one "table" ``query`` whose ``TableInfo`` is the
query's reflected result as a subquery. A snapshot of a query without ``key`` has no range to
chunk by: it is one statement whose Arrow batches are emitted as the driver streams them (a
stopped run reads the query again from the start).

Faults: a lost connection, a server restarting and a lock held by another session are
``RetriableError`` (``_database.classify``), which the runtime answers by calling the same
method again, with backoff, until ``errors.retry_timeout``. ``start`` may be called again on
a task whose ``start`` failed (it lets go of what the failed one opened). A read that failed
so drops its reader (the connection of the database's fast path): the next ``poll`` opens a
new one and reads the same chunk again, from the position of the last chunk emitted (its key
position in a snapshot, its cursor and keys in an incremental pass), so nothing is lost and
nothing is emitted twice. A query streamed without ``key`` has no such position: it is read
again from its start, as after a stopped run.

A row holding a value that does not fit its column's type (see ``_arrow_reads``) is a bad
row: it goes to the dead letter topic (``ErrorReporter.report_raw``: the row as JSON text, the
reason, and where: table, key values and column) and the chunk's other rows are emitted, under
a position that covers the whole chunk (the runtime delivers a report before it commits the
positions after it). When the first bad row of a chunk comes after good ones, those good rows
are emitted first, under the position of the last of them, and the rest of the chunk at the
next poll, after the report: under ``errors.tolerance: none`` the report fails the task there,
and what is committed covers exactly the rows delivered. A value that does not fit in a key or
cursor column stops the read (its row cannot be skipped: the position would need the value).

SQLAlchemy and the Arrow drivers are imported when a task starts, not with this module: every
``omconnect`` command imports the plugin modules, and most pipelines never touch a database.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from omconnect.connectors.api import (
    ConnectorError,
    ConnectorSpec,
    PollResult,
    Position,
    PositionMark,
    RecordBatch,
    RetriableError,
    SourceTask,
    TaskContext,
)
from omconnect.connectors.sql._source_schema import (
    INCREMENTAL,
    SNAPSHOT,
    EmittedShape,
    decide_shape,
)
from omconnect.schemas.arrow import to_arrow_field
from omconnect.schemas.schema import Schema

if TYPE_CHECKING:
    from omconnect.connectors.sql._arrow_reads import ArrowReader, BadRows
    from omconnect.connectors.sql._database import Database, TableInfo, TableName
    from omconnect.connectors.sql.source import SqlSourceSpec

# How long an idle continuous poll waits before returning None.
_IDLE_WAIT_SECONDS = 0.5


@dataclass
class _Chunk:
    """Rows read by one statement (or one streamed part), on their way to be emitted.

    Attributes:
        values: every row read, conformed (a value that did not fit is null).
        bad: the rows of ``values`` that hold a value that did not fit (None: no such row).
        done: whether the read (the snapshot, or the pass) ends with these rows.
    """

    values: pa.RecordBatch
    bad: BadRows | None
    done: bool


@dataclass
class _TableRead:
    """Where the task is in one table; ``held`` is the rest of a chunk whose good rows
    before its first bad row were emitted alone (emitted at the next poll)."""

    name: TableName
    key: tuple[str, ...]
    offset: dict[str, Any] | None
    info: TableInfo | None = None
    shape: EmittedShape | None = None
    in_pass: bool = False
    done_this_run: bool = False
    next_pass_at: float = 0.0
    schema: Schema | None = field(default=None, repr=False)
    is_query: bool = False
    parts: Iterator[pa.RecordBatch] | None = field(default=None, repr=False)
    held: _Chunk | None = field(default=None, repr=False)

    @property
    def partition(self) -> dict[str, Any]:
        return {"query": self.name.name} if self.is_query else {"table": str(self.name)}

    @property
    def schema_name(self) -> str:
        return self.name.name if self.is_query else f"{self.name.schema}_{self.name.name}"

    def close_parts(self) -> None:
        close = getattr(self.parts, "close", None)
        if close is not None:
            close()
        self.parts = None


class SqlSourceTask(SourceTask):
    """Reads its share of the ``sql`` source's tables (see the module docstring)."""

    def __init__(self) -> None:
        self._database: Database | None = None
        self._reader: ArrowReader | None = None
        self._tables: list[_TableRead] = []

    def start(self, config: ConnectorSpec, context: TaskContext) -> None:
        from omconnect.connectors.sql._database import Database

        self.stop()  # what an earlier, failed start opened
        self.config: SqlSourceSpec = config  # type: ignore[assignment]
        self.context = context
        self._database = Database.open(self.config.url.get_secret_value())
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> None:
        from omconnect.connectors.sql._database import QUERY
        from omconnect.connectors.sql.source import check_table

        database = self.database
        self._row_values = database.dialect != "mysql"
        if self.config.query is not None:
            key = check_table(self._reflect(QUERY, True), self.config)
            self._tables.append(_TableRead(QUERY, key, None, is_query=True))
        else:
            for name in database.resolve_tables(self.config.tables):
                key = check_table(database.reflect(name), self.config)
                self._tables.append(_TableRead(name, key, None))
        for read in self._tables:
            offset = self.context.offsets.get(read.partition)
            read.offset = dict(offset) if offset is not None else None
            self._check_mode(read)
        self._current = 0
        self._open_reader()

    def poll(self) -> PollResult:
        for _ in range(2 * len(self._tables) + 1):
            read = self._tables[self._current]
            if self._ready(read):
                batch = self._read_chunk(read)
                if batch is not None:
                    return batch
                continue
            self._current = (self._current + 1) % len(self._tables)
        if not self.context.once:
            time.sleep(_IDLE_WAIT_SECONDS)
        return None

    def stop(self) -> None:
        for read in self._tables:
            read.close_parts()
        self._tables = []
        self._close_reader()
        if self._database is not None:
            self._database.close()
            self._database = None

    def _open_reader(self) -> ArrowReader:
        """The reader of the database's fast path, opened when there is none (at start, and
        after a read that failed with a retriable error dropped it)."""
        from omconnect.connectors.sql._arrow_reads import open_reader

        assert self._database is not None
        if self._reader is None:
            self._reader = open_reader(self._database)
        return self._reader

    def _close_reader(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            with suppress(Exception):  # a connection that broke has nothing left to close
                reader.close()

    @contextmanager
    def _reading(self, name: TableName) -> Iterator[ArrowReader]:
        """The reader, for one read of ``name``: a driver error inside becomes the translated
        one; a retriable one also drops the reader, so that the poll retried reads again on a
        new connection (see the module docstring)."""
        database = self.database
        reader = self._open_reader()
        try:
            with database.errors(name):
                try:
                    yield reader
                except ConnectorError:
                    raise
                except Exception as error:  # ADBC and ConnectorX raise their own error types
                    raise database.translate(error, name) from None
        except RetriableError:
            self._close_reader()
            raise

    @property
    def database(self) -> Database:
        assert self._database is not None, "the task is not started"
        return self._database

    def _check_mode(self, read: _TableRead) -> None:
        stored = (read.offset or {}).get("mode")
        if stored is not None and stored != self.config.mode:
            raise ConnectorError(
                f"table {read.name} was read in mode {stored} and the pipeline now says "
                f"{self.config.mode}: reset its offsets (`omconnect offsets reset`) to start "
                "over in the new mode"
            )

    def _ready(self, read: _TableRead) -> bool:
        """Whether ``read`` has a chunk to read now (starting a pass when one is due)."""
        if read.in_pass:
            return True
        if read.done_this_run and self.context.once:
            return False
        if self.config.mode == SNAPSHOT and (read.offset or {}).get("done"):
            read.done_this_run = True
            return False
        if time.monotonic() < read.next_pass_at:
            return False
        self._begin_pass(read)
        return True

    def _reflect(self, name: TableName, is_query: bool) -> TableInfo:
        if is_query:
            assert self.config.query is not None
            return self.database.reflect_query(self.config.query, name)
        return self.database.reflect(name)

    def _begin_pass(self, read: _TableRead) -> None:
        info = self._reflect(read.name, read.is_query)
        stored = (read.offset or {}).get("schema")
        shape = decide_shape(str(read.name), info.fields, stored, self.config.schema_evolution)
        if read.shape is not None and shape.version != read.shape.version:
            self.context.logger.info(
                "table %s changed: schema version %d", read.name, shape.version
            )
        read.info, read.shape, read.in_pass = info, shape, True
        read.schema = Schema(
            name=read.schema_name,
            fields=shape.fields,
            version=shape.version,
            key_fields=read.key,
        )

    def _end_pass(self, read: _TableRead) -> None:
        read.in_pass = False
        read.done_this_run = True
        read.next_pass_at = time.monotonic() + self.config.poll_interval

    def _read_chunk(self, read: _TableRead) -> RecordBatch | None:
        from omconnect.connectors.sql._incremental import incremental_chunk, upper_bound
        from omconnect.connectors.sql._snapshot import snapshot_chunk

        info, shape, schema = read.info, read.shape, read.schema
        assert info is not None and shape is not None and schema is not None
        if read.held is not None:
            return self._deliver(read, read.held, schema)
        table = info.table
        reader = self._open_reader()
        selected = [reader.select_column(table.c[f.name], f) for f in shape.fields]
        key_columns = [table.c[k] for k in read.key]
        offset = read.offset or {}
        chunk = self.config.chunk_size
        if self.config.mode == SNAPSHOT and not read.key:
            return self._stream_batch(read, selected, shape, schema)
        if self.config.mode == SNAPSHOT:
            statement = snapshot_chunk(
                table, selected, key_columns, offset.get("after"), chunk, self._row_values
            )
            limit = chunk
        else:
            delivered = offset.get("keys") or []
            limit = chunk + len(delivered)
            cursor = [table.c[c] for c in self.config.cursor]
            first_type = (
                schema.type_of(self.config.cursor[0]) if self._emits_cursor(schema) else None
            )
            upper = None
            if first_type is not None:
                upper = upper_bound(
                    table, cursor[0], first_type, self.config.lag, self.database.dialect
                )
            statement = incremental_chunk(
                table,
                selected,
                cursor,
                key_columns,
                offset.get("cursor"),
                limit,
                upper,
                self._row_values,
                offset.get("after_key"),
            )
        values, bad = self._fetch(statement, shape, read)
        rows = _Chunk(values, bad, done=values.num_rows < limit)
        if self.config.mode == SNAPSHOT:
            return self._deliver(read, rows, schema)
        return self._incremental_batch(read, rows, schema)

    def _stream_batch(
        self, read: _TableRead, selected: list[Any], shape: EmittedShape, schema: Schema
    ) -> RecordBatch | None:
        """The next batch of a snapshot read in one streamed statement (a query without
        ``key``): no position to resume from but the start, until the last batch."""
        import sqlalchemy as sa

        from omconnect.connectors.sql._arrow_reads import conform_rows
        from omconnect.connectors.sql._snapshot import snapshot_offset

        assert read.info is not None
        with self._reading(read.name) as reader:
            try:
                if read.parts is None:
                    statement = sa.select(*selected).select_from(read.info.table)
                    read.parts = iter(reader.read(statement))
                raw = next(read.parts, None)
                while raw is not None and raw.num_rows == 0:
                    raw = next(read.parts, None)
            except Exception:
                read.close_parts()  # its cursor before its connection; the next poll starts over
                raise
        if raw is None:
            read.close_parts()
            self._end_pass(read)
            new_offset = {**snapshot_offset(None, True), "schema": shape.record()}
            return self._emit(read, _empty(shape), schema, new_offset)
        values, bad = conform_rows(raw, shape.fields, str(read.name), read.partition)
        return self._deliver(read, _Chunk(values, bad, done=False), schema)

    def _emits_cursor(self, schema: Schema) -> bool:
        return all(c in schema.names for c in self.config.cursor)

    def _fetch(
        self, statement: Any, shape: EmittedShape, read: _TableRead
    ) -> tuple[pa.RecordBatch, BadRows | None]:
        """The rows of ``statement``, conformed (every row), and the bad ones among them."""
        from omconnect.connectors.sql._arrow_reads import conform_rows

        name = read.name
        with self._reading(name) as reader:
            parts = list(reader.read(statement))
        parts = [p for p in parts if p.num_rows]
        if not parts:
            return _empty(shape), None
        raw = pa.Table.from_batches(parts).combine_chunks().to_batches()[0]
        positions = list(read.key)
        if self.config.mode == INCREMENTAL:
            positions += self.config.cursor
        return conform_rows(raw, shape.fields, str(name), read.partition, read.key, positions)

    def _incremental_batch(
        self, read: _TableRead, chunk: _Chunk, schema: Schema
    ) -> RecordBatch | None:
        """``chunk`` without the rows at the last cursor value that were delivered already
        (read again by the closed range), then delivered."""
        from omconnect.connectors.sql._incremental import boundary_mask

        offset = read.offset or {}
        last_cursor = offset.get("cursor")
        delivered = offset.get("keys") or []
        if last_cursor is not None and self._emits_cursor(schema):
            key_schema = schema.key_schema()
            assert key_schema is not None
            mask = boundary_mask(
                chunk.values, self.config.cursor, last_cursor, delivered, key_schema
            )
            if mask is not None:
                bad = chunk.bad
                if bad is not None:
                    bad = bad.kept(mask.to_numpy(zero_copy_only=False))
                chunk = _Chunk(chunk.values.filter(mask), bad, chunk.done)
        return self._deliver(read, chunk, schema)

    def _deliver(self, read: _TableRead, chunk: _Chunk, schema: Schema) -> RecordBatch | None:
        """The batch that emits ``chunk``: its good rows, its bad rows reported first, under
        the position after all its rows. When good rows come before its first bad row, only
        they, under the position after them; the rest is held for the next poll."""
        values, bad = chunk.values, chunk.bad
        if bad is not None and bad.rows[0] > 0:
            first = int(bad.rows[0])
            read.held = _Chunk(values.slice(first), bad.after(first), chunk.done)
            before = values.slice(0, first)
            return self._emit_rows(read, before, before, schema, done=False)
        read.held = None
        emitted = values
        if bad is not None:
            self.context.errors.report_raw(bad.payloads, bad.errors, bad.places, stage="read")
            emitted = values.filter(bad.good(values.num_rows))
        if chunk.done:
            self._end_pass(read)
        return self._emit_rows(read, emitted, values, schema, chunk.done)

    def _emit_rows(
        self,
        read: _TableRead,
        emitted: pa.RecordBatch,
        covered: pa.RecordBatch,
        schema: Schema,
        done: bool,
    ) -> RecordBatch | None:
        """``emitted`` under the position after ``covered`` (the rows read: those emitted and
        those reported); None when an incremental read covered no row."""
        from omconnect.connectors.sql._incremental import next_incremental_offset
        from omconnect.connectors.sql._snapshot import last_values, snapshot_offset

        assert read.shape is not None
        offset = read.offset or {}
        if self.config.mode == SNAPSHOT:
            last_key = offset.get("after")
            if not read.key:  # a streamed query: no position but the start, until done
                last_key = None
            elif covered.num_rows:
                last_key = last_values(covered, read.key)
            new_offset = snapshot_offset(last_key, done)
        else:
            if covered.num_rows == 0:
                return None
            new_offset = next_incremental_offset(
                covered,
                self.config.cursor,
                read.key,
                offset.get("cursor"),
                offset.get("keys") or [],
                offset.get("after_key"),
            )
        new_offset["schema"] = read.shape.record()
        return self._emit(read, emitted, schema, new_offset)

    def _emit(
        self, read: _TableRead, values: pa.RecordBatch, schema: Schema, offset: dict[str, Any]
    ) -> RecordBatch:
        read.offset = offset
        mark = PositionMark(values.num_rows, Position(read.partition, offset))
        return RecordBatch(values=values, schema=schema, marks=(mark,), stream=str(read.name))


def _empty(shape: EmittedShape) -> pa.RecordBatch:
    schema = pa.schema([to_arrow_field(f) for f in shape.fields])
    return pa.RecordBatch.from_pylist([], schema=schema)


__all__ = ["INCREMENTAL", "SqlSourceTask"]

"""The ``sql`` sink: topic records into one table of PostgreSQL, MariaDB/MySQL or SQLite,
appended or upserted by key, deletes applied, exactly once.

Every ``omconnect`` command imports this module (plugin loading), so SQLAlchemy and the
drivers are imported by the methods that talk to the database, not here.

Exactly once: ``flush`` writes the buffered rows and the consumed positions (topic,
partition, next offset) into the positions table (``positions_table``, in the target's
schema) in ONE database transaction, so either both are there or neither is; on start and on
every assignment the runtime asks ``stored_positions()`` and resumes there. Rows are
buffered per topic partition between flushes (``close`` drops a revoked partition's rows);
past ``batch_size`` buffered rows the task asks the runtime to flush early.

Faults: a lost connection, a server restarting and a lock held by another session (a
deadlock, a lock wait timeout) are ``RetriableError`` (``_database.classify``). A flush that
fails so was rolled back, positions included, and dropped its connection (the next
statement opens a new one); the runtime waits, rewinds the consumer to ``stored_positions()``
and delivers those records again, so the table ends with every record once.

Without a broker (``broker: none``) the rows come from the pipeline's own source, numbered
from this sink's stored positions (``runtime/brokers/direct.py``): nothing is lost, but rows
the sink wrote before a crash and the source had not yet stored its position for are read
again under new numbers, so delivery there is at least once (an upsert replaces them, an
append repeats them).

A flush writes each record schema's rows with one bulk load into a temporary table and one
statement into the target (see ``_sink_writer``); within a flush the last row of each key
wins, and an upsert never replaces a row that came from a later offset of the same partition.

Rows the database refuses (``_database.refused_row``: a NOT NULL, CHECK, unique or foreign
key constraint, a value too long, out of range or of the wrong form) fail the flush's one
statement; the flush is rolled back and made again: the rows are staged once, numbered, and
moved in parts under savepoints, halving a refused part down to its one row, which goes to
the dead letter topic with the database's words (``errors.tolerance: all``; under ``none``
the first one fails the flush). The rest are written and the positions stored in one
transaction, after the dead letters are acknowledged (``ErrorReporter.delivered``). A flush
of ``n`` rows with ``b`` refused costs about ``2 b log2(n)`` statements more: measured, 20
refused among 200,000 rows on PostgreSQL took 2.5 s in all, while a flush of 20,000 rows
all refused took 95 s on PostgreSQL, 44 s on MariaDB and 7 s on SQLite (a row's probes are
statements of a round trip each).

A value too long for a bounded column is refused, never cut: PostgreSQL's explicit cast
would cut it (so the stage is cast to the unbounded type and the INSERT's assignment refuses
it), and MariaDB's ``LOAD DATA LOCAL`` cuts with a warning (so bounded strings are staged
unbounded, and warnings about row data are errors).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, ClassVar, Literal

import numpy as np
import pyarrow as pa
from pydantic import Field

from omconnect.connectors.api import (
    ConfigError,
    ConnectorError,
    ConnectorSpec,
    Position,
    RecordBatch,
    RetriableError,
    SecretStr,
    SinkConnector,
    SinkTask,
    TaskContext,
    TopicPartition,
    register,
)
from omconnect.connectors.sql._sink_rows import (
    ROW_COLUMN,
    MissingKeyColumn,
    StagedRows,
    last_per_key,
    last_per_key_rows,
    null_key_rows,
    staged_rows,
    topic_partition,
)
from omconnect.schemas.schema import Schema

if TYPE_CHECKING:
    from omconnect.connectors.sql._sink_writer import BulkWriter, WriteTarget


def writer_class(dialect: str) -> type[BulkWriter]:
    """The bulk writer of ``dialect`` (imported now: the drivers are heavy to import)."""
    if dialect == "postgresql":
        from omconnect.connectors.sql._sink_postgres import PostgresWriter

        return PostgresWriter
    if dialect == "mysql":
        from omconnect.connectors.sql._sink_mariadb import MariaDbWriter

        return MariaDbWriter
    from omconnect.connectors.sql._sink_sqlite import SqliteWriter

    return SqliteWriter


class SqlSinkSpec(ConnectorSpec):
    """Options of the ``sql`` sink."""

    url: SecretStr = Field(
        description=(
            "SQLAlchemy URL of the database: `postgresql://user:password@host:5432/db`, "
            "`mysql://user:password@host:3306/db` (MariaDB too) or `sqlite:///path/file.db`. "
            "Secret: never shown in logs or errors."
        )
    )
    table: str = Field(
        description="The table written, `table` or `schema.table` (a MariaDB database).",
        examples=["public.orders"],
    )
    mode: Literal["append", "upsert"] = Field(
        default="append",
        description=(
            "`append` inserts every record; `upsert` inserts or replaces the row of each key "
            "(the table needs a primary key or unique index on `key`). Upsert keeps each "
            "row's source position in two columns, `__omconnect_topic_partition` and "
            "`__omconnect_offset`, and never replaces a row with one from an earlier offset "
            "of the same partition (a replay)."
        ),
    )
    key: list[str] | None = Field(
        default=None,
        description=(
            "The key columns of upserts and deletes. Default: the records' key (the message "
            "key's fields, else the schema's key fields)."
        ),
    )
    delete: bool = Field(
        default=False,
        description=(
            "Apply deletes (tombstones: a key without a value, e.g. CDC deletes): the row of "
            "that key is deleted. Needs `mode: upsert`. When false, deletes are skipped (and "
            "counted in the log)."
        ),
    )
    create: bool = Field(
        default=False,
        description=(
            "Create the table from the first records' schema when it does not exist (in "
            "upsert mode with `key` as its primary key)."
        ),
    )
    evolve: bool = Field(
        default=True,
        description=(
            "Add a nullable column for a new nullable field of the records (ALTER TABLE). A "
            "new not-null field, or a field whose type the column cannot hold (narrower or "
            "another kind), is refused with an error naming the table and column."
        ),
    )
    positions_table: str = Field(
        default="omconnect_sink_positions",
        description=(
            "The table (created if missing, in the target table's schema unless qualified) "
            "where the sink stores its consumed positions in the same transaction as the rows."
        ),
    )
    batch_size: int = Field(
        default=500_000,
        ge=1,
        description=(
            "Rows buffered before the sink asks the runtime to flush (commit) early; a flush "
            "also happens every `commit_interval`."
        ),
    )


class SqlSinkTask(SinkTask):
    """Buffers rows per topic partition; each flush writes them and the positions in one
    transaction."""

    stores_positions = True
    config: SqlSinkSpec

    def start(self, config: ConnectorSpec, context: TaskContext) -> None:
        """Connect, create the positions table if missing, and check that the target table
        exists (unless ``create``). A start that fails lets go of its connection; the runtime
        may call ``start`` again (after a ``RetriableError``).

        Raises:
            ConnectorError: one line naming the table and what to fix (``RetriableError``
                when the server cannot be reached now or a lock is in the way).
        """
        assert isinstance(config, SqlSinkSpec)
        self.stop()  # what an earlier, failed start opened
        try:
            self._start(config, context)
        except BaseException:
            self.stop()
            raise

    def _start(self, config: SqlSinkSpec, context: TaskContext) -> None:
        from omconnect.connectors.sql._database import Database, parse_table_name
        from omconnect.connectors.sql._sink_table import TargetTable

        self.config = config
        self.context = context
        database = Database.open(config.url.get_secret_value(), writes=True)
        self.url = database.url
        self.name = parse_table_name(config.table)
        positions = parse_table_name(config.positions_table, "positions_table")
        if positions.schema is None and self.name.schema is not None:
            positions = type(positions)(self.name.schema, positions.name)
        self.positions = positions
        self.upsert = config.mode == "upsert"
        self.engine = database.engine
        self.writer: BulkWriter = writer_class(database.dialect)(self.url, self.engine)
        self.table = TargetTable(
            self.writer, self.name, upsert=self.upsert, create=config.create, evolve=config.evolve
        )
        self._buffers: dict[TopicPartition, list[StagedRows]] = {}
        self._buffered_rows = 0
        self._closed: set[TopicPartition] = set()
        self._skipped_deletes = 0
        with self._translated():
            with self.writer.ddl_lock(self.positions):  # tasks starting at once create it once
                self.writer.create_positions_table(self.positions)
            self.table.check_exists()

    def open(self, partitions: Sequence[TopicPartition]) -> None:
        self._closed.difference_update(TopicPartition(t, p) for t, p in partitions)

    def close(self, partitions: Sequence[TopicPartition]) -> None:
        """Drop what is buffered for ``partitions``; nothing of theirs is written."""
        for topic, partition in partitions:
            key = TopicPartition(topic, partition)
            for staged in self._buffers.pop(key, []):
                self._buffered_rows -= staged.rows.num_rows
            self._closed.add(key)

    def put(self, batch: RecordBatch) -> None:
        """Buffer the rows of ``batch`` (as staged rows: columns only, no row objects).

        In upsert mode, records that cannot be keyed go to the dead letter topic, each with a
        reason naming the table and the key column: a null key, records without a key at all,
        records whose schema lacks a ``key:`` column the table has (with
        ``errors.tolerance: none`` the report raises: nothing of ``batch`` is buffered).
        Raises ``ConnectorError`` when a ``key:`` column is neither in the records nor in the
        table (a mistake in the config).
        """
        if batch.num_rows == 0:
            return
        try:
            staged = staged_rows(batch, self.config.key)
        except MissingKeyColumn as missing:
            if not (self.upsert and self._has_column(missing.column)):
                raise ConnectorError(f"table {self.name}: {missing}") from None
            rows = np.arange(batch.num_rows)
            self._report_unkeyable(batch, rows, str(missing), self.config.key or ())
            return
        rows = staged.rows
        keep = np.ones(rows.num_rows, dtype=np.bool_)
        if self.upsert:
            if not staged.key:
                everything = np.arange(batch.num_rows)
                self._report_unkeyable(batch, everything, "the records have no key", ())
                return
            for column, missing_rows in null_key_rows(rows, staged.key).items():
                why = f"key column {column!r} is null"
                self._report_unkeyable(batch, missing_rows, why, staged.key)
                keep[missing_rows] = False
        deleted = batch.delete_mask()
        if deleted.any() and not (self.upsert and self.config.delete):
            self._skipped_deletes += int((deleted & keep).sum())
            keep &= ~deleted
        if not keep.all():
            rows = rows.filter(pa.array(keep))
        if rows.num_rows == 0:
            return
        where = _partition_of(batch)
        kept_rows = None if rows.num_rows == batch.num_rows else np.flatnonzero(keep)
        kept = StagedRows(staged.schema, staged.key, rows, batch, kept_rows)
        self._buffers.setdefault(where, []).append(kept)
        self._closed.discard(where)
        self._buffered_rows += rows.num_rows
        if self._buffered_rows >= self.config.batch_size:
            self.context.request_commit()

    def _report_unkeyable(
        self, batch: RecordBatch, rows: np.ndarray, why: str, key: Sequence[str]
    ) -> None:
        """Dead-letter ``rows`` of ``batch``, which upsert cannot write: ``why``."""
        columns = f" ({', '.join(key)})" if key else ""
        error = ConnectorError(
            f"table {self.name}: {why}, and mode: upsert writes every record by its "
            f"key{columns}: give the records a key, or set key: to columns that are never null"
        )
        self.context.errors.report(batch, rows.tolist(), error, "sink")

    def _has_column(self, column: str) -> bool:
        """Whether the target table exists and has ``column``."""
        shape = self.table.shape()
        return shape is not None and column in shape.columns

    def flush(self, positions: Sequence[Position]) -> list[Position]:
        """Write every buffered row and store ``positions`` (but those of partitions closed
        since) in one transaction; returns the positions stored.

        Raises:
            ConnectorError: the transaction was rolled back; nothing of it is stored, and
                the buffers are dropped (the runtime redelivers from ``stored_positions``).
        """
        durable = [p for p in positions if topic_partition(p) not in self._closed]
        groups = self._take_groups()
        try:
            with self._translated():
                targets = [self.table.target(schema, key) for (schema, key) in groups]
                for target, group in zip(targets, groups.values(), strict=True):
                    self._write(target, group.rows)
                self._store(durable)
                self.writer.commit()
        except _RowsRefused:
            with self._translated():
                self._write_sparing(groups, durable)
        if self._skipped_deletes:
            self.context.logger.info(
                "table %s: skipped %d delete(s) (tombstones) since the last flush (%s)",
                self.name,
                self._skipped_deletes,
                "delete: false" if self.upsert else "mode: append",
            )
            self._skipped_deletes = 0
        return durable

    def stored_positions(self) -> list[Position]:
        """The positions the last committed flush stored for this pipeline and table."""
        with self._translated():
            rows = self.writer.read_positions(self.positions, self.context.pipeline, self.name)
            self.writer.rollback()
        return [
            Position({"topic": topic, "partition": partition}, {"offset": offset})
            for topic, partition, offset in rows
        ]

    def stop(self) -> None:
        """Roll back whatever is open and disconnect; nothing buffered is written."""
        self._buffers = {}
        writer: BulkWriter | None = getattr(self, "writer", None)  # None: start failed early
        if writer is not None:
            writer.rollback()
            writer.close()
            writer.engine.dispose()

    def _store(self, durable: Sequence[Position]) -> None:
        for position in durable:
            where = topic_partition(position)
            stored = (where.topic, where.partition, int(position.offset["offset"]))
            self.writer.store_position(self.positions, self.context.pipeline, self.name, stored)

    def _write_sparing(
        self, groups: dict[tuple[Schema, tuple[str, ...]], _Group], durable: Sequence[Position]
    ) -> None:
        """The flush again, after the database refused a row of it: each group's rows are
        written in parts under a savepoint, a refused part is undone and split in two, and a
        refused row alone goes to the dead letter topic with the database's words (with
        ``errors.tolerance: none`` the first one fails the flush). The rows around it are
        written and the positions stored in the same transaction, once the dead letters are
        stored (see the module docstring for what it costs)."""
        writer = self.writer
        # Known (and their DDL committed) since the first try, which failed only writing.
        targets = [self.table.target(schema, key) for (schema, key) in groups]
        writer.begin_sparing()
        refused = 0
        for target, group in zip(targets, groups.values(), strict=True):
            rows, numbers = group.rows, None
            if self.upsert:
                numbers = last_per_key_rows(rows, target.key)
                rows = rows if numbers is None else rows.take(pa.array(numbers))
            for at, words in self._refused_rows(target, rows):
                batch, row = group.origin(at if numbers is None else int(numbers[at]))
                error = ConnectorError(f"table {self.name}: the database refused the row: {words}")
                self.context.errors.report(batch, [row], error, "sink")
                refused += 1
        if refused:
            self.context.errors.delivered()
        self._store(durable)
        writer.commit()

    def _refused_rows(self, target: WriteTarget, rows: pa.Table) -> list[tuple[int, str]]:
        """Write ``rows`` but those the database refuses (see ``_write_sparing``); returns the
        refused ones (row index, the database's words), in order. The rows are staged once,
        numbered and indexed, and moved a part at a time."""
        from omconnect.connectors.sql._database import refused_row

        writer = self.writer
        numbers = pa.array(np.arange(rows.num_rows, dtype=np.int64))
        writer.stage(rows.append_column(ROW_COLUMN, numbers), target)
        writer.index_stage_rows()
        refused: list[tuple[int, str]] = []
        pending = [(0, rows.num_rows)]
        while pending:
            start, stop = pending.pop()
            writer.savepoint()
            try:
                self._move(target, (start, stop))
            except Exception as error:
                words = refused_row(error)
                if words is None:
                    raise
                writer.rollback_to_savepoint()
                if stop - start == 1:
                    refused.append((start, words))
                else:
                    middle = (start + stop) // 2
                    pending += [(middle, stop), (start, middle)]
            else:
                writer.release_savepoint()
        writer.drop_stage()
        return refused

    def _take_groups(self) -> dict[tuple[Schema, tuple[str, ...]], _Group]:
        """The buffered rows, joined per (schema, key) in first-seen order; the buffers are
        emptied (a failed flush is redelivered, never retried from here)."""
        parts: dict[tuple[Schema, tuple[str, ...]], list[StagedRows]] = {}
        for buffered in self._buffers.values():
            for staged in buffered:
                parts.setdefault((staged.schema, staged.key), []).append(staged)
        self._buffers.clear()
        self._buffered_rows = 0
        return {group: _Group(staged) for group, staged in parts.items()}

    def _write(self, target: WriteTarget, rows: pa.Table) -> None:
        writer = self.writer
        if self.upsert:
            rows = last_per_key(rows, target.key)
        writer.stage(rows, target)
        self._move(target)
        writer.drop_stage()

    def _move(self, target: WriteTarget, part: tuple[int, int] | None = None) -> None:
        """Move the staged rows (those numbered ``part[0]`` up to ``part[1]``) into the table."""
        writer, ranged, bounds = self.writer, part is not None, part or ()
        if not self.upsert:
            writer.execute(writer.append(target, ranged), bounds)
        else:
            writer.execute(writer.upsert(target, ranged), bounds)
            if self.config.delete:
                writer.execute(writer.delete(target, ranged), bounds)

    @contextmanager
    def _translated(self) -> Iterator[None]:
        """Any error inside rolls the transaction back and becomes the sink's one-line
        error."""
        from omconnect.connectors.sql._database import refused_row, write_error

        try:
            yield
        except Exception as error:
            words = None if isinstance(error, ConnectorError) else refused_row(error)
            if words is not None:
                self.writer.rollback()
                raise _RowsRefused(f"table {self.name}: {words}") from None
            translated = write_error(error, self.name, self.url)
            self.writer.rollback()
            if isinstance(translated, RetriableError):
                self.writer.close()  # maybe broken: the retry opens a new connection
            raise translated from None


class SqlSink(SinkConnector):
    """Writes topic records into a PostgreSQL, MariaDB/MySQL or SQLite table."""

    name = "sql"
    spec: ClassVar[type[ConnectorSpec]] = SqlSinkSpec
    task_class = SqlSinkTask
    description = (
        "Append or upsert records into a SQL table (PostgreSQL, MariaDB, SQLite), deletes "
        "applied, exactly once from a topic (at least once with broker: none); rows the "
        "database refuses (a constraint, a value too long) go to the dead letter topic."
    )

    def validate(self) -> None:
        from omconnect.connectors.sql._database import parse_table_name, parse_url

        config = self.config
        assert isinstance(config, SqlSinkSpec)
        parse_url(config.url.get_secret_value(), writes=True)
        parse_table_name(config.table)
        parse_table_name(config.positions_table, "positions_table")
        if config.delete and config.mode != "upsert":
            raise ConfigError(
                "delete: true needs mode: upsert (appended rows have no key to delete by)",
                key="delete",
            )
        if config.key is not None and not config.key:
            raise ConfigError("key must name at least one column (or be left out)", key="key")


class _RowsRefused(ConnectorError):
    """The database refused the data of a row of a flush (rolled back): the flush is made
    again sparing the refused rows (``SqlSinkTask._write_sparing``)."""


class _Group:
    """The buffered rows of one record schema and key, joined for one flush, and the record
    batch each came from."""

    def __init__(self, parts: list[StagedRows]) -> None:
        self.parts = parts
        self.rows = pa.concat_tables([part.rows for part in parts])
        self._ends = np.cumsum([part.rows.num_rows for part in parts])

    def origin(self, row: int) -> tuple[RecordBatch, int]:
        """The record batch, and its row, that row ``row`` of ``rows`` came from."""
        part = int(np.searchsorted(self._ends, row, side="right"))
        staged = self.parts[part]
        assert staged.origin is not None
        at = row - (int(self._ends[part - 1]) if part else 0)
        return staged.origin, at if staged.origin_rows is None else int(staged.origin_rows[at])


def _partition_of(batch: RecordBatch) -> TopicPartition:
    if batch.topic is not None and batch.partition is not None:
        return TopicPartition(batch.topic, batch.partition)
    return topic_partition(batch.marks[-1].position)


register(SqlSink)

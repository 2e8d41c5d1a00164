"""The reading task of the ``postgres-cdc`` source: snapshot, then the slot's stream.

See ``postgres_cdc`` for what it promises. A poll reads up to ``batch_size`` messages from the
slot and returns their events as a list of batches in stream order, one per run of changes of
one table; each batch's mark is where the transaction got to (its ``commit_lsn`` and the count
of its changes so far, ``complete`` at its commit). psycopg2 and ADBC are imported when the
task starts, not with this module (every ``omconnect`` command imports the plugins).
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from omconnect.connectors.api import (
    ConnectorError,
    ConnectorSpec,
    PollResult,
    Position,
    PositionMark,
    RecordBatch,
    SourceTask,
    TaskContext,
)
from omconnect.connectors.sql import _pg_text
from omconnect.connectors.sql._cdc_events import (
    SourceInfo,
    TableEvents,
    envelopes,
    keys_of,
    null_rows,
    rows_from_batch,
    rows_from_texts,
    with_tombstones,
)
from omconnect.connectors.sql._pgoutput import (
    Begin,
    Change,
    Commit,
    LogicalMessage,
    Relation,
    Truncate,
    decode,
)
from omconnect.connectors.sql._replication import (
    ReplicationStream,
    StreamedMessage,
    catalog_tables,
    check_server,
    default_slot,
    drop_slot,
    ensure_publication,
    libpq_dsn,
    open_database,
    slot_exists,
    snapshot_name,
)

if TYPE_CHECKING:
    from omconnect.connectors.sql.postgres_cdc import PostgresCdcSpec

# The prefix of omconnect's logical decoding messages (watermarks and heartbeats).
_MESSAGE_PREFIX = "omconnect"

# Under --once, how long the stream may stay silent before the watermark came back.
_WATERMARK_WAIT_SECONDS = 120.0


@dataclass
class _Transaction:
    """The transaction being decoded: ``seen`` changes so far, of which the first ``skip``
    were delivered by an earlier run (-1: all of them)."""

    commit_lsn: int
    commit_time_ms: int
    xid: int
    skip: int
    seen: int = 0


class PostgresCdcTask(SourceTask):
    """Snapshots (when asked) and then streams one slot (see the module docstring)."""

    def start(self, config: ConnectorSpec, context: TaskContext) -> None:
        self.config: PostgresCdcSpec = config  # type: ignore[assignment]
        self.context = context
        self._database = open_database(self.config.url.get_secret_value())
        self._snapshot_connection: Any = None
        self._stream: ReplicationStream | None = None
        check_server(self._database)
        self._slot = self.config.slot or default_slot(context.pipeline)
        self._publication = self.config.publication or self._slot
        self._partition = {"slot": self._slot}
        stored = context.offsets.get(self._partition)
        self._offset: dict[str, Any] = dict(stored) if stored is not None else {}
        self._tables, self._reflected = catalog_tables(self._database, self.config.tables)
        self._by_oid: dict[int, TableEvents] = {}
        ensure_publication(self._database, self._publication, self._tables)
        self._stream = ReplicationStream(libpq_dsn(self._database), self._slot, self._publication)
        self._stream.open()
        self._transaction: _Transaction | None = None
        self._in_flight: list[int] = []  # end LSNs delivered and not yet stored
        self._last_heartbeat = time.monotonic()
        self._watermark: str | None = None
        self._caught_up = False
        self._snapshot_left: list[tuple[TableEvents, list[Any] | None, Any]] = []
        self._snapshot_reader: Any = None
        exists = slot_exists(self._database, self._slot)
        if self._needs_snapshot(exists):
            if exists and self._offset.get("snapshot") == "running":
                # A run stopped inside the snapshot: the slot still holds every change since
                # the snapshot began; the rest of the tables is read in a snapshot of now.
                self._begin_snapshot(None)
                return
            if exists:
                drop_slot(self._database, self._slot)
            self._offset = {}
            self._begin_snapshot(self._stream.create_slot())
            return
        if not exists:
            if self._offset.get("snapshot") is not None:
                raise ConnectorError(
                    f"replication slot {self._slot} is gone: the changes made since this "
                    "pipeline last ran were not kept. Reset its offsets (`omconnect offsets "
                    "reset`) to start again with a snapshot, or use `snapshot: when_needed`"
                )
            self._stream.create_slot()
        self._stream.start()

    def _needs_snapshot(self, slot_exists: bool) -> bool:
        state = self._offset.get("snapshot")
        if self.config.snapshot == "never":
            return False
        if state == "running":
            return True
        if self.config.snapshot == "initial":
            return state is None
        return state is None or not slot_exists

    # -- the snapshot --------------------------------------------------------------------

    def _begin_snapshot(self, exported: str | None) -> None:
        """Open a read-only transaction in the slot's exported snapshot (a snapshot of now
        when resuming: ``exported`` None); ``poll`` reads the tables, each in key order from
        where the stored position says."""
        import adbc_driver_postgresql.dbapi as adbc_postgresql
        from sqlalchemy.dialects import postgresql

        from omconnect.connectors.sql._arrow_reads import AdbcReader

        try:
            connection = adbc_postgresql.connect(libpq_dsn(self._database), autocommit=False)
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                if exported is not None:
                    cursor.execute(f"SET TRANSACTION SNAPSHOT '{snapshot_name(exported)}'")
        except Exception as error:  # ADBC raises its own error types
            raise self._database.translate(error, doing="snapshot") from None
        self._snapshot_connection = connection
        self._snapshot_reader = AdbcReader(
            connection, postgresql.psycopg.dialect(paramstyle="numeric_dollar"), copies=True
        )
        streams = [table.stream for table in self._tables]
        current = self._offset.get("table")
        first = streams.index(current) if current in streams else 0
        after = self._offset.get("after") if current in streams else None
        self._snapshot_left = [
            (table, after if index == first else None, None)
            for index, table in enumerate(self._tables)
            if index >= first
        ]
        self._offset = {**self._offset, "snapshot": "running"}

    def _poll_snapshot(self) -> PollResult:
        from omconnect.connectors.sql._arrow_reads import conform
        from omconnect.connectors.sql._snapshot import last_values

        while self._snapshot_left:
            table, after, parts = self._snapshot_left[0]
            try:
                if parts is None:
                    parts = iter(self._snapshot_reader.read(self._snapshot_statement(table, after)))
                    self._snapshot_left[0] = (table, after, parts)
                raw = next(parts, None)
            except Exception as error:  # ADBC raises its own error types
                raise self._database.translate(error, table.stream, doing="snapshot") from None
            if raw is None:
                self._snapshot_left.pop(0)
                continue
            if raw.num_rows == 0:
                continue
            rows = conform(raw, table.row_fields, table.stream)
            offset = {
                "snapshot": "running",
                "table": table.stream,
                "after": last_values(rows, table.key),
            }
            self._offset = offset
            after_rows = rows_from_batch(table, rows)
            source = SourceInfo(self.context.pipeline, self._db_name, _now_ms(), "true", None, None)
            nulls = null_rows(table, len(after_rows))
            return self._emit(
                table, ["r"] * len(after_rows), nulls, after_rows, source, None, offset
            )
        self._snapshot_connection.close()
        self._snapshot_connection = None
        assert self._stream is not None
        self._stream.start()
        self._offset = {"snapshot": "done", "commit_lsn": 0, "index": 0, "complete": True}
        return self._position_only(self._offset)

    def _snapshot_statement(self, table: TableEvents, after: list[Any] | None) -> Any:
        """The rows of ``table`` after the key ``after`` in key order; columns of a type
        carried as text are selected as text."""
        import sqlalchemy as sa

        from omconnect.connectors.sql._snapshot import after as after_key

        reflected = self._reflected[table.stream]
        selected = [
            sa.cast(reflected.c[name], sa.Text).label(name)
            if _pg_text.carried_as_text(oid)
            else reflected.c[name]
            for name, oid, _ in table.columns
        ]
        key = [reflected.c[name] for name in table.key]
        statement = sa.select(*selected).select_from(reflected)
        if after is not None:
            statement = statement.where(after_key(key, after, row_values=True))
        return statement.order_by(*key)

    # -- the stream ----------------------------------------------------------------------

    def poll(self) -> PollResult:
        if self._snapshot_connection is not None:
            return self._poll_snapshot()
        assert self._stream is not None
        if not self.context.once:
            messages = self._stream.read(self.config.batch_size, wait_seconds=0.5)
            if not messages:
                self._heartbeat()
                return None
            return self._decoded(messages)
        # Under --once an empty poll ends the run: read until there are events or the
        # watermark written at the start came back (the server may decode a large
        # transaction for a while before it sends anything).
        if self._watermark is None:
            self._watermark = self._write_message()
            self._watermark_at = time.monotonic()
        while not self._caught_up or self._transaction is not None:
            messages = self._stream.read(self.config.batch_size, wait_seconds=0.5)
            if messages:
                self._watermark_at = time.monotonic()
                events = self._decoded(messages)
                if events:
                    return events
            elif time.monotonic() - self._watermark_at > _WATERMARK_WAIT_SECONDS:
                raise ConnectorError(
                    f"the slot {self._slot} sent nothing for {_WATERMARK_WAIT_SECONDS:.0f} s "
                    "and not the watermark written at the start of the run"
                )
        return None

    def _decoded(self, messages: Sequence[StreamedMessage]) -> PollResult:
        """The events of ``messages``, in order: a batch per run of one table's changes."""
        out: list[RecordBatch] = []
        run: list[Change] = []
        run_table: TableEvents | None = None

        def end_run(commit: Commit | None = None) -> None:
            nonlocal run, run_table
            transaction = self._transaction
            if transaction is None or transaction.skip < 0:
                run, run_table = [], None
                return
            offset = {
                "snapshot": self._offset.get("snapshot", "never"),
                "commit_lsn": transaction.commit_lsn,
                "end_lsn": commit.end_lsn if commit is not None else None,
                "index": transaction.seen,
                "complete": commit is not None,
            }
            if run_table is not None and run:
                out.append(self._change_batch(run_table, run, transaction, offset))
            elif commit is not None and out:
                out[-1] = _with_last_offset(out[-1], Position(self._partition, offset))
            elif commit is not None:
                out.append(self._position_only(offset))
            self._offset = offset
            run, run_table = [], None

        for message in messages:
            decoded = decode(message.payload)
            if isinstance(decoded, Begin):
                self._transaction = _Transaction(
                    decoded.final_lsn,
                    decoded.commit_time_us // 1000,
                    decoded.xid,
                    self._delivered_before(decoded.final_lsn),
                )
            elif isinstance(decoded, Relation):
                end_run()
                self._on_relation(decoded)
            elif isinstance(decoded, Change | Truncate):
                transaction = self._transaction
                if transaction is None:
                    raise ConnectorError("a change arrived outside a transaction")
                oids = (
                    decoded.relation_oids
                    if isinstance(decoded, Truncate)
                    else (decoded.relation_oid,)
                )
                for oid in oids:
                    transaction.seen += 1
                    if 0 <= transaction.skip < transaction.seen:
                        table = self._by_oid.get(oid)
                        if table is None:
                            continue
                        if isinstance(decoded, Truncate):
                            end_run()
                            out.append(self._truncate_batch(table, transaction))
                            continue
                        if run_table is not table:
                            end_run()
                            run_table = table
                        run.extend(_as_events(table, decoded))
            elif isinstance(decoded, Commit):
                end_run(decoded)
                if self._transaction is not None and self._transaction.skip >= 0:
                    self._in_flight.append(decoded.end_lsn)
                self._transaction = None
            elif isinstance(decoded, LogicalMessage):
                self._on_message(decoded)
        end_run()
        return out or None

    def _delivered_before(self, commit_lsn: int) -> int:
        """How many changes of the transaction committing at ``commit_lsn`` an earlier run
        delivered: -1 for all of them (the server sends a transaction again until the slot
        is confirmed past it)."""
        stored = int(self._offset.get("commit_lsn") or 0)
        if commit_lsn < stored or (commit_lsn == stored and self._offset.get("complete")):
            return -1
        if commit_lsn == stored:
            return int(self._offset.get("index") or 0)
        return 0

    def _on_relation(self, relation: Relation) -> None:
        table = next(
            (
                x
                for x in self._tables
                if (x.schema_name, x.name) == (relation.schema, relation.name)
            ),
            None,
        )
        if table is None:
            return
        columns = tuple((c.name, c.type_oid, c.type_modifier) for c in relation.columns)
        if columns != table.columns:
            table.columns = columns
            table.version += 1
            table.rebuild()
            self.context.logger.info(
                "table %s changed: schema version %d", table.stream, table.version
            )
        self._by_oid[relation.oid] = table

    def _on_message(self, message: LogicalMessage) -> None:
        if message.prefix != _MESSAGE_PREFIX:
            return
        if self._watermark is not None and message.content.decode() == self._watermark:
            self._caught_up = True
        if not self._in_flight and self._transaction is None and self._stream is not None:
            self._stream.confirm(message.lsn)  # a heartbeat: nothing before it is pending

    def _write_message(self) -> str:
        """Write a non-transactional logical decoding message; returns its token."""
        import sqlalchemy as sa

        token = uuid.uuid4().hex
        with self._database.errors(doing="write a heartbeat into"), self._database.connect() as c:
            c.execute(
                sa.text("SELECT pg_logical_emit_message(false, :prefix, :token)"),
                {"prefix": _MESSAGE_PREFIX, "token": token},
            )
            c.commit()
        return token

    def _heartbeat(self) -> None:
        now = time.monotonic()
        if not self.context.once and now - self._last_heartbeat >= self.config.heartbeat_interval:
            self._last_heartbeat = now
            self._write_message()

    def commit(self, positions: Sequence[Position]) -> None:
        """Confirm the slot up to the end of the last complete transaction stored."""
        ends = [
            int(p.offset["end_lsn"])
            for p in positions
            if p.offset.get("complete") and p.offset.get("end_lsn")
        ]
        if not ends or self._stream is None or self._snapshot_connection is not None:
            return
        flush = max(ends)
        self._in_flight = [end for end in self._in_flight if end > flush]
        self._stream.confirm(flush)

    def stop(self) -> None:
        if getattr(self, "_snapshot_connection", None) is not None:
            with contextlib.suppress(Exception):  # the snapshot is abandoned either way
                self._snapshot_connection.close()
        stream = getattr(self, "_stream", None)
        if stream is not None:
            stream.close()
        if getattr(self, "_database", None) is not None:
            self._database.close()

    # -- batches -------------------------------------------------------------------------

    @property
    def _db_name(self) -> str:
        return self._database.url.database or ""

    def _change_batch(
        self,
        table: TableEvents,
        changes: Sequence[Change],
        transaction: _Transaction,
        offset: dict[str, Any],
    ) -> RecordBatch:
        before, _ = rows_from_texts(table, [c.old for c in changes])
        after, unchanged = rows_from_texts(table, [c.new for c in changes])
        source = self._streamed_source(transaction)
        return self._emit(table, [c.op for c in changes], before, after, source, unchanged, offset)

    def _truncate_batch(self, table: TableEvents, transaction: _Transaction) -> RecordBatch:
        nulls = null_rows(table, 1)
        source = self._streamed_source(transaction)
        return self._emit(table, ["t"], nulls, nulls, source, None, None)

    def _streamed_source(self, transaction: _Transaction) -> SourceInfo:
        """``source`` of the events of ``transaction``."""
        return SourceInfo(
            self.context.pipeline,
            self._db_name,
            transaction.commit_time_ms,
            None,
            transaction.xid,
            transaction.commit_lsn,
        )

    def _emit(
        self,
        table: TableEvents,
        ops: Sequence[str],
        before: pa.Array,
        after: pa.Array,
        source: SourceInfo,
        unchanged: Sequence[Sequence[str]] | None,
        offset: dict[str, Any] | None,
    ) -> RecordBatch:
        values = envelopes(table, ops, before, after, source, unchanged)
        marks = (
            ()
            if offset is None
            else (PositionMark(values.num_rows, Position(self._partition, dict(offset))),)
        )
        if list(ops) == ["t"]:  # a truncate concerns no row: its event has no key
            return RecordBatch(
                values=values, schema=table.value_schema, marks=marks, stream=table.stream
            )
        keys = keys_of(table, after)
        deletes = np.array([op == "d" for op in ops], dtype=np.bool_)
        if deletes.any():
            keys = _delete_keys(keys, keys_of(table, before), deletes)
        tombstones = None
        if self.config.tombstones:
            values, keys, tombstones = with_tombstones(values, keys, deletes)
            if marks:
                marks = (PositionMark(values.num_rows, marks[0].position),)
        return RecordBatch(
            values=values,
            schema=table.value_schema,
            keys=keys,
            key_schema=table.key_schema,
            marks=marks,
            stream=table.stream,
            tombstones=tombstones,
        )

    def _position_only(self, offset: dict[str, Any]) -> RecordBatch:
        """An empty batch that moves the position (a transaction without captured rows)."""
        table = self._tables[0]
        source = SourceInfo(self.context.pipeline, self._db_name, _now_ms(), None, None, None)
        empty = null_rows(table, 0)
        return self._emit(table, [], empty, empty, source, None, offset)


def _as_events(table: TableEvents, change: Change) -> list[Change]:
    """``change`` as Debezium publishes it: an update that changed the key is a delete of the
    old key (and its tombstone) and a create of the new one, so a compacted topic forgets
    the old key."""
    if change.op != "u" or change.old is None or change.new is None:
        return [change]
    names = [name for name, _, _ in table.columns]
    key_at = [names.index(k) for k in table.key]
    if all(change.old[i] == change.new[i] for i in key_at):
        return [change]
    return [
        Change("d", change.relation_oid, change.old, change.old_is_full, None),
        Change("c", change.relation_oid, None, False, change.new),
    ]


def _delete_keys(
    keys: pa.RecordBatch, old_keys: pa.RecordBatch, deletes: np.ndarray
) -> pa.RecordBatch:
    mask = pa.array(deletes)
    columns = [
        pc.if_else(mask, old_keys.column(i), keys.column(i)) for i in range(keys.num_columns)
    ]
    return pa.RecordBatch.from_arrays(columns, names=keys.schema.names)


def _with_last_offset(batch: RecordBatch, position: Position) -> RecordBatch:
    """``batch`` with its last mark moved to ``position`` (a commit after its rows)."""
    end = batch.values.num_rows
    marks = tuple(m for m in batch.marks if m.end_row < end)
    return RecordBatch(
        values=batch.values,
        schema=batch.schema,
        keys=batch.keys,
        key_schema=batch.key_schema,
        marks=(*marks, PositionMark(end, position)),
        stream=batch.stream,
        tombstones=batch.tombstones,
    )


def _now_ms() -> int:
    return int(time.time() * 1000)


__all__ = ["PostgresCdcTask"]

"""The reading task of the ``postgres-cdc`` source: snapshot, then the slot's stream.

See ``postgres_cdc`` for what it promises. A poll reads up to ``batch_size`` messages from the
slot (for at most 50 ms once the first came) and returns their events as a list of batches in
stream order, one per run of one table's changes, across transactions (``_Run``): a mark at
each transaction's commit (its ``commit_lsn``, the count of its changes, ``complete``), or,
for a run of simple single-table transactions taken at once, after the last of them; and one
where an open transaction got to when a run ends inside it. The events carry their own
message ids (commit LSN and index). psycopg2 and ADBC are imported when the task starts, not
with this module (every ``omconnect`` command imports the plugins).

Faults: the runtime retries ``start`` and ``poll`` on ``RetriableError`` (on the same task) and
fails the task on anything else. So a server that cannot be reached (down, restarting, a
dropped connection) is always ``RetriableError`` here, whatever the ``sql`` connector's
translation called it; ``start`` first releases what a failed attempt opened; a ``poll`` after
the stream failed connects again and streams from the slot's confirmed position (the server
sends each transaction after it again; those this task delivered already are skipped by their
commit LSN and change count); a snapshot whose connection was lost reads on from its last key
in a snapshot of now (as a new run would). ``commit`` never raises for a lost stream: the
position is kept and confirmed to the next connection. Nothing raises inside ``_decoded``
once positions moved, or delivered events would be lost to a retried poll.

Lag: every minute (``_LAG_LOG_SECONDS``) the task logs at INFO how many bytes of WAL the
server wrote past the slot's confirmed position and how long ago this task last moved it (the
runtime has no gauge a connector could report, so it is a log line). Idle: a small lag
confirmed about a heartbeat ago; stalled: both growing.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
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
    RetriableError,
    SourceTask,
    TaskContext,
)
from omconnect.connectors.sql import _pg_text
from omconnect.connectors.sql._cdc_events import (
    BadValues,
    SourceInfo,
    SourceRuns,
    TableEvents,
    envelopes,
    key_changes,
    keys_of,
    null_rows,
    rows_from_batch,
    rows_of,
    with_tombstones,
)
from omconnect.connectors.sql._cdc_incremental import (
    EXECUTE,
    HIGH,
    LOW,
    STOP,
    Progress,
    Window,
    new_token,
    parse_signal,
    signal_table_statement,
)
from omconnect.connectors.sql._pgoutput import (
    Begin,
    Changes,
    Commit,
    LogicalMessage,
    Relation,
    Truncate,
    decode_all,
    format_lsn,
)
from omconnect.connectors.sql._replication import (
    ReplicationStream,
    SlotInUseError,
    StreamedMessage,
    catalog_tables,
    check_server,
    default_slot,
    drop_slot,
    ensure_publication,
    libpq_dsn,
    open_database,
    quoted,
    retriable_when_unreachable,
    slot_exists,
    slot_lag,
    snapshot_name,
    unreachable,
)
from omconnect.schemas.message_ids import MessageIdRuns

if TYPE_CHECKING:
    from omconnect.connectors.sql.postgres_cdc import PostgresCdcSpec

# The prefix of omconnect's logical decoding messages (watermarks and heartbeats).
_MESSAGE_PREFIX = "omconnect"

# Under --once, how long the stream may stay silent before the watermark came back.
_WATERMARK_WAIT_SECONDS = 120.0

# How often the slot's lag is logged (at INFO) while streaming.
_LAG_LOG_SECONDS = 60.0


@dataclass
class _Transaction:
    """The transaction being decoded: ``seen`` changes so far, of which the first ``skip``
    were delivered by an earlier run (-1: all of them); ``events``: the events (tombstones
    included) given message ids so far, the next one's index."""

    commit_lsn: int
    commit_time_ms: int
    xid: int
    skip: int
    seen: int = 0
    events: int = 0


class PostgresCdcTask(SourceTask):
    """Snapshots (when asked) and then streams one slot (see the module docstring)."""

    # What start opens (None before it, and after stop).
    _snapshot_connection: Any = None
    _snapshot_reader: Any = None
    _stream: ReplicationStream | None = None
    _chunk_reader: Any = None

    def start(self, config: ConnectorSpec, context: TaskContext) -> None:
        self._release()  # a retried start: what the failed attempt opened
        self.config: PostgresCdcSpec = config  # type: ignore[assignment]
        self.context = context
        self._database = open_database(self.config.url.get_secret_value())
        self._slot = self.config.slot or default_slot(context.pipeline)
        self._publication = self.config.publication or self._slot
        self._partition = {"slot": self._slot}
        stored = context.offsets.get(self._partition)
        self._offset: dict[str, Any] = dict(stored) if stored is not None else {}
        self._by_oid: dict[int, TableEvents] = {}
        self._transaction: _Transaction | None = None
        self._in_flight: list[int] = []  # end LSNs delivered and not yet stored
        self._last_heartbeat = time.monotonic()
        self._quiet = False  # whether the last read of the stream found nothing
        self._watermark: str | None = None
        self._caught_up = False
        self._snapshot_left: list[tuple[TableEvents, list[Any] | None, Any]] = []
        self._streamed = False  # whether this task streamed the slot (a start is a reconnect)
        self._confirmed_lsn = 0
        self._confirmed_at = time.monotonic()
        self._next_lag_log = time.monotonic() + _LAG_LOG_SECONDS
        self._incremental = Progress.from_offset(self._offset.get("incremental"))
        self._window: Window | None = None
        self._signal = _schema_and_name(self.config.signal_table)
        self._signal_oid: int | None = None
        self._signal_columns: dict[str, int] = {}
        with retriable_when_unreachable():
            self._open()

    def _open(self) -> None:
        """Check the server, publish the tables, and snapshot or stream the slot."""
        check_server(self._database)
        self._tables, self._reflected = catalog_tables(self._database, self.config.tables)
        published = [(x.schema_name, x.name) for x in self._tables]
        if self._signal is not None:
            self._ensure_signal_table()
            published.append(self._signal)
        exists = slot_exists(self._database, self._slot)
        if ensure_publication(self._database, self._publication, published) and exists:
            # Dropped while the slot lived: changes made meanwhile cannot be decoded (the
            # stream says so, with what to do, if there were any).
            self.context.logger.debug(
                "publication %s was missing: created it again", self._publication
            )
        self._stream = ReplicationStream(libpq_dsn(self._database), self._slot, self._publication)
        self._stream.open()
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
        self._ensure_streaming()

    def _ensure_streaming(self) -> None:
        """Stream the slot; after a lost connection, connect again and stream from the slot's
        confirmed position: the transaction that was being read comes again from its start
        (``_delivered_before`` skips what was delivered)."""
        stream = self._stream
        assert stream is not None
        if stream.streaming:
            return
        self._transaction = None
        with retriable_when_unreachable():
            try:
                if not stream.is_open:
                    stream.open()
                stream.start()
            except SlotInUseError as error:
                if not self._streamed:
                    raise
                # The walsender of the lost connection has not let go of the slot yet.
                raise RetriableError(str(error)) from None
        if self._streamed:
            self.context.logger.info(
                "slot %s: connected again, streaming from its confirmed position", self._slot
            )
        self._streamed = True

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
                for statement in _pg_text.SESSION_STATEMENTS:  # the stream's text forms
                    cursor.execute(statement)
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

        while self._snapshot_left:
            table, after, parts = self._snapshot_left[0]
            try:
                if parts is None:
                    parts = iter(self._snapshot_reader.read(self._snapshot_statement(table, after)))
                    self._snapshot_left[0] = (table, after, parts)
                raw = next(parts, None)
            except Exception as error:  # ADBC raises its own error types
                translated = self._database.translate(error, table.stream, doing="snapshot")
                if not unreachable(error):
                    raise translated from None
                # The next poll reads on after the last key delivered, in a snapshot of then.
                self._close_snapshot()
                raise RetriableError(str(translated)) from None
            if raw is None:
                self._snapshot_left.pop(0)
                continue
            if raw.num_rows == 0:
                continue
            rows = self._conformed(raw, table)
            offset = {
                "snapshot": "running",
                "table": table.stream,
                "after": self._last_key,
            }
            self._offset = offset
            after_rows = rows_from_batch(table, rows)
            source = SourceInfo(self.context.pipeline, self._db_name, _now_ms(), "true", None, None)
            nulls = null_rows(table, len(after_rows))
            ops = np.full(len(after_rows), "r")
            return self._emit(table, ops, nulls, after_rows, source, None, [(len(ops), offset)])
        self._close_snapshot()
        # The stream starts with the next poll (a failure to start it is then retried there).
        self._offset = {"snapshot": "done", "commit_lsn": 0, "index": 0, "complete": True}
        return self._position_only(self._offset)

    def _close_snapshot(self) -> None:
        connection, self._snapshot_connection = self._snapshot_connection, None
        self._snapshot_reader = None
        if connection is not None:
            with contextlib.suppress(Exception):  # lost already, or abandoned: nothing to keep
                connection.close()

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
        if self._snapshot_connection is None and self._offset.get("snapshot") == "running":
            # The snapshot's connection was lost: read on in a snapshot of now.
            with retriable_when_unreachable():
                self._begin_snapshot(None)
        if self._snapshot_connection is not None:
            return self._poll_snapshot()
        self._ensure_streaming()
        self._log_lag()
        assert self._stream is not None
        if not self.context.once:
            self._open_window()
            if self._quiet:
                # Written before the read, so that it comes back (and is confirmed) within it.
                self._heartbeat()
            messages = self._stream.read(self.config.batch_size, wait_seconds=0.5)
            self._quiet = not messages
            if not messages:
                return None
            return self._decoded(messages)
        # Under --once an empty poll ends the run: read until there are events or the
        # watermark written at the start came back (the server may decode a large
        # transaction for a while before it sends anything).
        if self._watermark is None:
            self._watermark = self._write_message()
            self._watermark_at = time.monotonic()
        while (
            not self._caught_up
            or self._transaction is not None
            or self._incremental is not None
            or self._window is not None
        ):
            self._ensure_streaming()  # a forced confirmation may have lost the connection
            self._open_window()
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
        """The events of ``messages`` in stream order: one batch per run of one table's
        changes, across transactions, with a mark at each transaction's commit (see
        ``_Run``)."""
        out: list[RecordBatch] = []
        run: _Run | None = None

        def close_run() -> None:
            """End the run: a mark where the open transaction got to, if it has rows in it
            after the last mark, and the run's batch."""
            nonlocal run
            if run is None:
                return
            transaction = self._transaction
            if transaction is not None and run.events > run.marked:
                self._mark(run, out, self._transaction_offset(transaction, None))
            batch = self._run_batch(run)
            window = self._window
            if window is not None and window.open and window.table is run.table:
                assert batch.keys is not None
                window.seen.append(batch.keys)  # streamed inside the window: these rows win
            out.append(batch)
            run = None

        items = decode_all([message.payload for message in messages])
        at = 0
        while at < len(items):
            simple, captured = self._simple_transactions(items, at)
            if captured is not None:
                if run is not None and run.table is not captured:
                    close_run()
                if run is None:
                    run = _Run(captured)
                if self._add_transactions(run, out, items[at:simple]):
                    at = simple
                    continue
            item = items[at]
            at += 1
            if isinstance(item, Changes):
                transaction = self._transaction
                if transaction is None:
                    raise ConnectorError("a change arrived outside a transaction")
                table = self._by_oid.get(item.relation_oid)
                if table is not None and run is not None and run.table is not table:
                    close_run()
                first = transaction.seen  # how many changes of the transaction came before
                transaction.seen += len(item)
                start = transaction.skip - first  # of these, how many were delivered
                if transaction.skip < 0 or start >= len(item):
                    continue
                changes = item.slice(start) if start > 0 else item
                if item.relation_oid == self._signal_oid:
                    self._on_signals(changes)
                    continue
                if table is None:
                    continue
                if run is None:
                    run = _Run(table)
                run.add(key_changes(table, changes), transaction, self.config.tombstones)
            elif isinstance(item, Begin):
                skip = self._delivered_before(item.final_lsn)
                self._transaction = _Transaction(
                    item.final_lsn,
                    item.commit_time_us // 1000,
                    item.xid,
                    skip,
                    events=int(self._offset.get("events") or 0) if skip > 0 else 0,
                )
            elif isinstance(item, Commit):
                transaction = self._transaction
                if transaction is not None and transaction.skip >= 0:
                    self._mark(run, out, self._transaction_offset(transaction, item))
                    self._in_flight.append(item.end_lsn)
                self._transaction = None
            elif isinstance(item, Relation):
                if self._relation_changed(item):
                    close_run()  # its rows are built with the columns they were sent with
                    if self._window is not None and self._window.table is self._table_of(item):
                        self._window = None  # the chunk has the old columns: read it again
                self._on_relation(item)
            elif isinstance(item, Truncate):
                transaction = self._transaction
                if transaction is None:
                    raise ConnectorError("a truncate arrived outside a transaction")
                close_run()
                for oid in item.relation_oids:
                    transaction.seen += 1
                    table = self._by_oid.get(oid)
                    if table is not None and 0 <= transaction.skip < transaction.seen:
                        out.append(self._truncate_batch(table, transaction))
                        if self._window is not None and self._window.table is table:
                            self._window.truncated = True
            elif isinstance(item, LogicalMessage):
                window = self._window
                if window is not None and item.prefix == _MESSAGE_PREFIX:
                    if item.content == window.message(LOW).encode():
                        close_run()
                        window.open = True
                    elif item.content == window.message(HIGH).encode() and window.open:
                        close_run()
                        out.append(self._chunk_batch(window))
                self._on_message(item)
        close_run()
        return out or None

    def _simple_transactions(self, items: Sequence[Any], at: int) -> tuple[int, TableEvents | None]:
        """Where the transactions at ``items[at:]`` stop being simple (a ``Begin``, the
        ``Changes`` of one captured table, the same for all of them, and a ``Commit``, none
        delivered before), and that table (None when the first is not simple)."""
        stored = int(self._offset.get("commit_lsn") or 0)
        oid = None
        table = None
        end = at
        while end + 2 < len(items):
            begin, changes, commit = items[end], items[end + 1], items[end + 2]
            if type(begin) is not Begin or type(changes) is not Changes:
                break
            if type(commit) is not Commit or begin.final_lsn <= stored:
                break
            if oid is None:
                oid = changes.relation_oid
                table = self._by_oid.get(oid)
                if table is None or oid == self._signal_oid:
                    return at, None
            elif changes.relation_oid != oid:
                break
            end += 3
        return end, table

    def _add_transactions(self, run: _Run, out: list[RecordBatch], items: Sequence[Any]) -> bool:
        """Add simple transactions (see ``_simple_transactions``) to ``run`` at once, with
        one mark after the last. False when one changed a row's key (they are then added
        one by one)."""
        begins, parts, commits = items[0::3], items[1::3], items[2::3]
        count = len(begins)
        changes = Changes.concat(parts)
        keyed = key_changes(run.table, changes)
        if len(keyed) != len(changes):
            return False
        sizes = np.fromiter(map(len, parts), np.int64, count)
        messages = sizes
        if self.config.tombstones:
            deletes = (keyed.ops == "d").astype(np.int64)
            messages = sizes + np.add.reduceat(deletes, np.cumsum(sizes) - sizes)
        lsns = np.fromiter((b.final_lsn for b in begins), np.int64, count)
        run.add_transactions(
            keyed,
            lsns,
            np.fromiter((b.commit_time_us for b in begins), np.int64, count) // 1000,
            np.fromiter((b.xid for b in begins), np.int64, count),
            sizes,
            messages,
        )
        last = commits[-1]
        offset = self._with_progress(
            {
                "snapshot": self._offset.get("snapshot", "never"),
                "commit_lsn": int(lsns[-1]),
                "end_lsn": last.end_lsn,
                "index": int(sizes[-1]),
                "events": int(messages[-1]),
                "complete": True,
            }
        )
        self._mark(run, out, offset)
        self._in_flight.append(last.end_lsn)
        self._transaction = None
        return True

    def _transaction_offset(
        self, transaction: _Transaction, commit: Commit | None
    ) -> dict[str, Any]:
        """The offset of having delivered ``transaction`` up to here (whole at ``commit``)."""
        return self._with_progress(
            {
                "snapshot": self._offset.get("snapshot", "never"),
                "commit_lsn": transaction.commit_lsn,
                "end_lsn": commit.end_lsn if commit is not None else None,
                "index": transaction.seen,
                "events": transaction.events,
                "complete": commit is not None,
            }
        )

    def _with_progress(self, offset: dict[str, Any]) -> dict[str, Any]:
        """``offset`` with the incremental snapshot's progress, if one is under way."""
        offset.pop("incremental", None)
        if self._incremental is not None:
            offset["incremental"] = self._incremental.to_offset()
        return offset

    def _mark(self, run: _Run | None, out: list[RecordBatch], offset: dict[str, Any]) -> None:
        """Mark ``offset`` after the last event polled: in the open run, on the last batch
        of the poll, or on a batch of its own (a transaction without captured rows first in
        a poll). A mark at the same row as the one before replaces it."""
        self._offset = offset
        if run is not None:
            if run.marks and run.marks[-1][0] == run.events:
                run.marks[-1] = (run.events, offset)
            else:
                run.marks.append((run.events, offset))
            run.marked = run.events
        elif out:
            out[-1] = _with_last_offset(out[-1], Position(self._partition, offset))
        else:
            out.append(self._position_only(offset))

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

    def _table_of(self, relation: Relation) -> TableEvents | None:
        """The captured table ``relation`` describes (None: not captured)."""
        return next(
            (
                x
                for x in self._tables
                if (x.schema_name, x.name) == (relation.schema, relation.name)
            ),
            None,
        )

    def _relation_changed(self, relation: Relation) -> bool:
        """Whether ``relation`` gives a captured table other columns than it has."""
        table = self._table_of(relation)
        return table is not None and _columns(relation) != table.columns

    def _on_relation(self, relation: Relation) -> None:
        if (relation.schema, relation.name) == self._signal:
            self._signal_oid = relation.oid
            self._signal_columns = {c.name: i for i, c in enumerate(relation.columns)}
            return
        table = self._table_of(relation)
        if table is None:
            return
        columns = _columns(relation)
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
        if not self._in_flight and self._transaction is None:
            self._confirm(message.lsn, force=True)  # a heartbeat: nothing before it is pending

    def _write_message(self, token: str | None = None) -> str:
        """Write a non-transactional logical decoding message (``token``, default a new
        one); returns it."""
        import sqlalchemy as sa

        token = token or uuid.uuid4().hex
        with (
            retriable_when_unreachable(),
            self._database.errors(doing="write a heartbeat into"),
            self._database.connect() as c,
        ):
            c.execute(
                sa.text("SELECT pg_logical_emit_message(false, :prefix, :token)"),
                {"prefix": _MESSAGE_PREFIX, "token": token},
            )
            c.commit()
        return token

    def _heartbeat(self) -> None:
        """Every ``heartbeat_interval`` while quiet: ``heartbeat_query`` (if set), then a
        logical decoding message."""
        import sqlalchemy as sa

        now = time.monotonic()
        if self.context.once or now - self._last_heartbeat < self.config.heartbeat_interval:
            return
        self._last_heartbeat = now
        if self.config.heartbeat_query:
            with (
                retriable_when_unreachable(),
                self._database.errors(doing="run heartbeat_query on"),
                self._database.connect() as connection,
            ):
                connection.execute(sa.text(self.config.heartbeat_query))
                connection.commit()
        self._write_message()

    def _confirm(self, lsn: int, force: bool = False) -> None:
        """Confirm the slot up to ``lsn``. Never raises for a lost connection: the position is
        kept and confirmed when the next poll connects again."""
        if lsn > self._confirmed_lsn:
            self._confirmed_lsn = lsn
            self._confirmed_at = time.monotonic()
        if self._stream is None:
            return
        with contextlib.suppress(RetriableError):
            self._stream.confirm(lsn, force=force)

    def _log_lag(self) -> None:
        """Every ``_LAG_LOG_SECONDS``: how far the slot's confirmed position is behind the
        server's WAL, and since when this task has not moved it."""
        now = time.monotonic()
        if now < self._next_lag_log:
            return
        self._next_lag_log = now + _LAG_LOG_SECONDS
        try:
            lag = slot_lag(self._database, self._slot)
        except ConnectorError:  # the stream's own errors say what is wrong
            return
        if lag is None:
            return
        self.context.logger.info(
            "slot %s: lag %d bytes (the server's WAL past the slot's confirmed position), "
            "position last confirmed %.1f s ago",
            self._slot,
            lag,
            now - self._confirmed_at,
        )

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
        self._confirm(flush)

    def stop(self) -> None:
        self._release()

    def _release(self) -> None:
        """Close what ``start`` opened (also what a failed ``start`` had opened)."""
        self._close_snapshot()
        self._close_chunk_reader()
        if self._stream is not None:
            self._stream.close()
        self._stream = None
        database = getattr(self, "_database", None)
        if database is not None:
            database.close()

    # -- incremental snapshots (see _cdc_incremental) -------------------------------------

    def _ensure_signal_table(self) -> None:
        """Create the signal table when it is missing."""
        import sqlalchemy as sa

        assert self._signal is not None
        schema, name = self._signal
        statement = signal_table_statement(schema, name, quoted)
        with (
            self._database.errors(f"{schema}.{name}", doing="create the signal table"),
            self._database.connect() as connection,
        ):
            exists = connection.execute(
                sa.text("SELECT to_regclass(:name) IS NOT NULL"),
                {"name": f"{quoted(schema)}.{quoted(name)}"},
            ).scalar()
            if not exists:
                connection.execute(sa.text(statement))
                connection.commit()
                self.context.logger.info("created the signal table %s.%s", schema, name)

    def _on_signals(self, changes: Changes) -> None:
        """Act on the signal rows inserted (a bad signal is logged and ignored: it must not
        stop the stream)."""
        streams = {table.stream: table for table in self._tables}
        for index in range(len(changes)):
            if changes.ops[index] != "c":
                continue
            values = changes.row(index)
            assert values is not None
            try:
                signal = parse_signal(values, self._signal_columns)
            except ConnectorError as error:
                self.context.logger.warning("ignoring a signal: %s", error)
                continue
            if signal.type == STOP:
                stopped = set(signal.tables or streams)
                if self._incremental is not None:
                    left = [x for x in self._incremental.tables if _stream_of(x) not in stopped]
                    if not left or left[0] != self._incremental.tables[0]:
                        self._incremental.after = None
                        self._window = None
                    self._incremental.tables = left
                    if not left:
                        self._incremental = None
                self.context.logger.info("signal %s: incremental snapshot stopped", signal.id)
                continue
            if signal.type != EXECUTE:
                self.context.logger.warning(
                    "ignoring signal %s of type %r (known: %s, %s)",
                    signal.id,
                    signal.type,
                    EXECUTE,
                    STOP,
                )
                continue
            wanted = []
            for name in signal.tables or []:
                stream = _stream_of(name)
                if stream not in streams:
                    self.context.logger.warning(
                        "signal %s: %s is not one of the captured tables (%s): not read",
                        signal.id,
                        name,
                        ", ".join(streams),
                    )
                    continue
                wanted.append(stream)
            if not wanted:
                continue
            if self._incremental is None:
                self._incremental = Progress(signal.id, wanted)
            else:
                queued = self._incremental.tables
                queued.extend(x for x in wanted if x not in queued)
            self.context.logger.info(
                "signal %s: incremental snapshot of %s", signal.id, ", ".join(wanted)
            )

    def _open_window(self) -> None:
        """If an incremental snapshot is under way and no chunk is: write the low
        watermark, read the next chunk, write the high watermark."""
        progress = self._incremental
        if progress is None or self._window is not None:
            return
        streams = {table.stream: table for table in self._tables}
        while progress.tables and progress.tables[0] not in streams:  # no longer captured
            self.context.logger.warning(
                "incremental snapshot: %s is no longer captured: not read", progress.tables[0]
            )
            progress.tables.pop(0)
            progress.after = None
        if not progress.tables:
            self._incremental = None
            return
        table = streams[progress.tables[0]]
        token = new_token()
        self._write_message(f"{LOW}:{token}")
        rows, last_key, full = self._read_chunk(table, progress.after)
        self._write_message(f"{HIGH}:{token}")
        # Open from now on, not only from the low watermark: a transaction whose commit is
        # in the WAL before the low watermark may become visible only after the chunk's
        # snapshot was taken (a commit waits for its WAL flush before it is visible), so its
        # changes, streamed before the low watermark, may be missing from the chunk.
        self._window = Window(token, table, rows, last_key, full, open=True)

    def _read_chunk(
        self, table: TableEvents, after: list[Any] | None
    ) -> tuple[pa.StructArray, list[Any] | None, bool]:
        """The next ``incremental_chunk_size`` rows of ``table`` after the key ``after``
        (in a snapshot of now), their last key and whether the chunk is full."""
        import adbc_driver_postgresql.dbapi as adbc_postgresql
        from sqlalchemy.dialects import postgresql

        from omconnect.connectors.sql._arrow_reads import AdbcReader

        size = self.config.incremental_chunk_size
        statement = self._snapshot_statement(table, after).limit(size)
        try:
            with retriable_when_unreachable():
                if self._chunk_reader is None:
                    connection = adbc_postgresql.connect(libpq_dsn(self._database), autocommit=True)
                    with connection.cursor() as cursor:
                        for setting in _pg_text.SESSION_STATEMENTS:  # the stream's text forms
                            cursor.execute(setting)
                    self._chunk_reader = AdbcReader(
                        connection, postgresql.psycopg.dialect(paramstyle="numeric_dollar"), True
                    )
                batches = list(self._chunk_reader.read(statement))
        except Exception as error:  # ADBC raises its own error types
            self._close_chunk_reader()
            translated = self._database.translate(error, table.stream, doing="snapshot")
            if unreachable(error) or isinstance(error, RetriableError):
                raise RetriableError(str(translated)) from None
            raise translated from None
        read = [b for b in batches if b.num_rows]
        if not read:
            return null_rows(table, 0), after, False
        whole = pa.Table.from_batches(read).combine_chunks().to_batches()[0]
        chunk = self._conformed(whole, table)
        return rows_from_batch(table, chunk), self._last_key, whole.num_rows >= size

    def _conformed(self, raw: pa.RecordBatch, table: TableEvents) -> pa.RecordBatch:
        """A snapshot read of ``table`` as its row fields type it (the columns selected as
        text parsed as the stream parses them: arrays become lists), its rows with a value
        that does not fit (a multi-dimensional array too) dead-lettered and left out
        (``_last_key``: the key of its last row, left out or not, where the next read
        starts)."""
        from omconnect.connectors.sql._arrow_reads import conform_rows
        from omconnect.connectors.sql._snapshot import last_values

        rows, bad = conform_rows(
            raw,
            table.row_fields,
            table.stream,
            {"slot": self._slot, "table": table.stream},
            key=table.key,
            positions=table.key,
        )
        self._last_key = last_values(rows, table.key)
        if bad is None:
            return rows
        self.context.errors.report_raw(bad.payloads, bad.errors, bad.places, stage="read")
        return rows.filter(bad.good(rows.num_rows))

    def _close_chunk_reader(self) -> None:
        reader, self._chunk_reader = self._chunk_reader, None
        if reader is not None:
            with contextlib.suppress(Exception):
                reader.close()

    def _chunk_batch(self, window: Window) -> RecordBatch:
        """At the high watermark: the chunk's rows that no streamed change touched, as
        ``op: r`` events, and the progress past them."""
        self._window = None
        progress = self._incremental
        table = window.table
        rows = window.remaining()
        if progress is not None and progress.tables and progress.tables[0] == table.stream:
            if window.full:
                progress.after = window.last_key
            else:
                progress.tables.pop(0)
                progress.after = None
                self.context.logger.info("incremental snapshot of %s: done", table.stream)
            if not progress.tables:
                self._incremental = None
        offset = self._with_progress(
            {**self._offset, "snapshot": self._offset.get("snapshot", "never")}
        )
        self._offset = offset
        source = SourceInfo(
            self.context.pipeline, self._db_name, _now_ms(), "incremental", None, None
        )
        nulls = null_rows(table, len(rows))
        ops = np.full(len(rows), "r")
        return self._emit(table, ops, nulls, rows, source, None, [(len(rows), offset)])

    # -- batches -------------------------------------------------------------------------

    @property
    def _db_name(self) -> str:
        return self._database.url.database or ""

    def _run_batch(self, run: _Run) -> RecordBatch:
        """The batch of ``run``: its events, a ``source`` per transaction, its marks. An
        event with a value that does not fit its column's type (a numeric ``NaN``, an
        ``infinity`` date) is dead-lettered instead (under ``errors.tolerance: none`` that
        fails the pipeline, before its position is stored)."""
        table = run.table
        changes = Changes.concat(run.parts)
        before, _, bad_before = rows_of(table, changes, old=True, tolerant=True)
        after, unchanged, bad = rows_of(table, changes, tolerant=True)
        if bad_before is not None:
            bad = bad_before.union(bad)
        sources = run.sources(self.context.pipeline, self._db_name)
        if bad is not None:
            self._report_bad(table, changes, bad, sources)
        return self._emit(
            table,
            changes.ops,
            before,
            after,
            sources,
            unchanged,
            run.marks,
            run.message_ids(),
            dropped=None if bad is None else bad.rows,
        )

    def _report_bad(
        self, table: TableEvents, changes: Changes, bad: BadValues, sources: SourceRuns
    ) -> None:
        """Dead-letter the events of ``bad``: each change as the server sent it (its op and
        its rows' column texts, as JSON), where (slot, table, commit LSN) and why."""
        names = [name for name, _, _ in table.columns]
        commit_lsns = np.repeat(sources.lsns, sources.counts)[bad.rows]

        def texts(values: tuple[Any, ...] | None) -> dict[str, Any] | None:
            if values is None:
                return None
            return {
                name: value.decode(errors="replace")
                if isinstance(value, bytes)
                else None
                if value is None
                else "(unchanged TOAST value)"
                for name, value in zip(names, values, strict=False)
            }

        payloads = []
        for row in bad.rows.tolist():
            change = {
                "op": str(changes.ops[row]),
                "before": texts(changes.row(row, old=True)),
                "after": texts(changes.row(row)),
            }
            payloads.append(json.dumps(change).encode())
        self.context.errors.report_raw(
            payloads,
            [ValueError(reason) for reason in bad.reasons],
            [
                {"slot": self._slot, "table": table.stream, "commit_lsn": format_lsn(int(lsn))}
                for lsn in commit_lsns.tolist()
            ],
            stage="read",
        )

    def _truncate_batch(self, table: TableEvents, transaction: _Transaction) -> RecordBatch:
        """A truncate's event: it concerns no row, so it has no key (and no mark: it is
        delivered again after a restart, which is harmless)."""
        nulls = null_rows(table, 1)
        source = self._streamed_source(transaction)
        values = envelopes(table, ["t"], nulls, nulls, source)
        return RecordBatch(values=values, schema=table.value_schema, stream=table.stream)

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
        ops: np.ndarray,
        before: pa.Array,
        after: pa.Array,
        source: SourceInfo | SourceRuns,
        unchanged: Sequence[Sequence[str]] | None,
        marks: Sequence[tuple[int, dict[str, Any]]],
        message_ids: MessageIdRuns | None = None,
        dropped: np.ndarray | None = None,
    ) -> RecordBatch:
        """The batch of events ``ops`` (a numpy array of one-letter strings) with ``marks``
        (after how many events, which offset); with tombstones, the marks move past them.
        ``message_ids``: the messages' own ids (tombstones included); by default the
        runtime derives them from the marks. ``dropped``: events left out (with their
        tombstones), the marks moved back over them."""
        values = envelopes(table, ops, before, after, source, unchanged)
        keys = keys_of(table, after)
        deletes = ops == "d"
        ends = np.fromiter((end for end, _ in marks), np.int64, len(marks))
        tombstones = None
        if deletes.any():
            keys = _delete_keys(keys, keys_of(table, before), deletes)
            if self.config.tombstones:
                values, keys, tombstones = with_tombstones(values, keys, deletes)
                before_end = np.zeros(len(deletes) + 1, np.int64)
                np.cumsum(deletes, out=before_end[1:])
                ends = ends + before_end[ends]  # each delete before a mark adds a row
        ids: MessageIdRuns | pa.StringArray | None = message_ids
        if dropped is not None and len(dropped):
            keep = np.ones(len(ops), np.bool_)
            keep[dropped] = False
            if tombstones is not None:
                keep = np.repeat(keep, np.where(deletes, 2, 1))
            kept_before = np.zeros(len(keep) + 1, np.int64)
            np.cumsum(keep, out=kept_before[1:])
            ends = kept_before[ends]
            mask = pa.array(keep)
            values, keys = values.filter(mask), keys.filter(mask)
            tombstones = None if tombstones is None else tombstones.filter(mask)
            ids = None if message_ids is None else message_ids.filter(mask)
        return RecordBatch(
            values=values,
            schema=table.value_schema,
            keys=keys,
            key_schema=table.key_schema,
            marks=tuple(
                PositionMark(int(end), Position(self._partition, offset))
                for end, (_, offset) in zip(ends.tolist(), marks, strict=True)
            ),
            stream=table.stream,
            tombstones=tombstones,
            message_ids=ids,
        )

    def _position_only(self, offset: dict[str, Any]) -> RecordBatch:
        """An empty batch that moves the position (a transaction without captured rows)."""
        table = self._tables[0]
        source = SourceInfo(self.context.pipeline, self._db_name, _now_ms(), None, None, None)
        empty = null_rows(table, 0)
        return self._emit(table, np.array([], "<U1"), empty, empty, source, None, [(0, offset)])


@dataclass
class _Run:
    """Consecutive changes of one table in a poll, across transactions: one batch.

    Attributes:
        parts: the changes as Debezium publishes them (``key_changes``), in order.
        events: how many events they are (tombstones not counted).
        marks: (events before it, offset): one per transaction's commit, and one where the
            open transaction got to when the run ends before its commit.
        marked: the events before the last mark.
    """

    table: TableEvents
    parts: list[Changes] = field(default_factory=list)
    events: int = 0
    marks: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    marked: int = 0
    # Per transaction in the run, in order (what ``sources`` and ``message_ids`` read): its
    # commit LSN, time and xid, its events in the run, the message id index of the first of
    # them and how many messages they are (tombstones counted).
    lsns: list[int] = field(default_factory=list)
    times_ms: list[int] = field(default_factory=list)
    xids: list[int] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)
    first_ids: list[int] = field(default_factory=list)
    messages: list[int] = field(default_factory=list)
    _last: _Transaction | None = None

    def add(self, changes: Changes, transaction: _Transaction, tombstones: bool) -> None:
        self.parts.append(changes)
        count = len(changes)
        messages = count + (int(np.count_nonzero(changes.ops == "d")) if tombstones else 0)
        self.events += count
        if self._last is transaction:
            self.counts[-1] += count
            self.messages[-1] += messages
        else:
            self._last = transaction
            self.lsns.append(transaction.commit_lsn)
            self.times_ms.append(transaction.commit_time_ms)
            self.xids.append(transaction.xid)
            self.counts.append(count)
            self.first_ids.append(transaction.events)
            self.messages.append(messages)
        transaction.events += messages

    def add_transactions(
        self,
        changes: Changes,
        lsns: np.ndarray,
        times_ms: np.ndarray,
        xids: np.ndarray,
        counts: np.ndarray,
        messages: np.ndarray,
    ) -> None:
        """Whole transactions at once, new ones (their message ids start at 0)."""
        self.parts.append(changes)
        self.events += len(changes)
        self._last = None
        self.lsns += lsns.tolist()
        self.times_ms += times_ms.tolist()
        self.xids += xids.tolist()
        self.counts += counts.tolist()
        self.first_ids += [0] * len(lsns)
        self.messages += messages.tolist()

    def sources(self, name: str, db: str) -> SourceRuns:
        return SourceRuns(
            name,
            db,
            np.array(self.times_ms, np.int64),
            np.array(self.xids, np.int64),
            np.array(self.lsns, np.int64),
            np.array(self.counts, np.int64),
        )

    def message_ids(self) -> MessageIdRuns:
        """Each message's id: its transaction's commit LSN (16 hex digits) and its index
        among the transaction's messages, the same whenever the transaction is read."""
        return MessageIdRuns.derived(
            [f"{lsn:016x}" for lsn in self.lsns], self.first_ids, self.messages
        )


def _schema_and_name(name: str | None) -> tuple[str, str] | None:
    """``schema.table`` (``table``: in ``public``) as a pair; None for None."""
    if name is None:
        return None
    schema, _, table = name.rpartition(".")
    return (schema or "public", table)


def _stream_of(name: str) -> str:
    """A table named in a signal as its stream (``schema.table``; ``table`` is in
    ``public``)."""
    return name if "." in name else f"public.{name}"


def _columns(relation: Relation) -> tuple[tuple[str, int, int], ...]:
    return tuple((c.name, c.type_oid, c.type_modifier) for c in relation.columns)


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

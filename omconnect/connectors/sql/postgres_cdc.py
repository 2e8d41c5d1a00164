"""The ``postgres-cdc`` source: a PostgreSQL database's row changes, from logical replication
(the built-in ``pgoutput`` plugin), as Debezium-compatible change events, a topic per table.

Each table is the stream ``<schema>.<table>`` (published to ``<topic>.<schema>.<table>``).
An event's value is Debezium's envelope: ``before`` and ``after`` (the row, or null),
``source`` (``connector``, ``name``, ``db``, ``schema``, ``table``, ``txId``, ``lsn``,
``ts_ms``, ``snapshot``), ``op`` (``r`` snapshot read, ``c`` insert, ``u`` update, ``d``
delete, ``t`` truncate) and ``ts_ms``; plus ``unchanged``, the columns whose TOASTed value an
update did not touch and the server did not send (they are null in ``after``). Its key is the
table's primary key (``REPLICA IDENTITY``); after a delete a tombstone follows (``tombstones``).

Start: the publication (``publication``, default the slot's name) is created for the tables,
or extended with those it lacks; the slot (``slot``, default ``omconnect_<pipeline>``) is
created when missing. ``snapshot: initial`` (and ``when_needed`` when the slot is new or
gone) creates the slot exporting its snapshot and reads every table inside that snapshot, in
key order (Arrow, through ADBC's binary COPY), before streaming from the slot: rows committed
before the slot are read, rows after it are streamed, none twice. Each snapshot batch's
position is the last key read: a run stopped inside the snapshot keeps the slot and reads on
from there in a snapshot of that moment (the exported one died with its connection); the
changes made meanwhile were kept by the slot and are streamed after, so a consumer applying
the events in order ends with the table as it is (some rows come as ``r`` already changed,
then as the changes that led there).

An update that changes a row's key is published as Debezium does: a delete of the old key
(with its tombstone) and a create of the new one.

Positions: the partition ``{"slot": <slot>}``; the offset is the last transaction delivered,
``commit_lsn`` and ``end_lsn``, with ``index``, the count of its changes delivered,
``events``, the count of its messages published (tombstones and the extra events of a key
change included), and ``complete``. Each message's id (``oms.message_id``) is the commit LSN
(16 hex digits) and its index among the transaction's messages, the same however often the
transaction is read: a broker or consumer that drops repeated ids drops the duplicates of a
resumed run. A transaction is delivered in several batches when it is large; a run that
stops inside one is sent the whole transaction again by the server and skips the changes it
delivered. The slot's flush position is confirmed to the server (``commit``) only up to the
end of a transaction whose every change the runtime has stored: nothing is skipped, and WAL
before it may be recycled.

``run --once``: after start the task writes a logical decoding message into the WAL (a
watermark, ``pg_logical_emit_message``) and streams until it comes back: every transaction
committed before the run started is then delivered. Heartbeats: running continuously and
idle, the task writes such a message every ``heartbeat_interval`` and, when it comes back
with nothing in flight, confirms its position at once, so a slot on a quiet (or busy but
unpublished) database keeps advancing and the server keeps no WAL for it. Every minute the
task logs the slot's lag at INFO: the bytes of WAL past its confirmed position and the seconds
since it last moved (idle: small, about a heartbeat ago; stalled: both growing).

Faults: a lost connection (the server restarting or shutting down, a terminated walsender, a
server that is not up yet when the task starts) is retried: the task connects again and
streams from the slot's confirmed position, skipping what it delivered already. A publication
dropped while the slot still had changes to send makes PostgreSQL refuse to decode the changes
made before it was created again: the error says to drop the slot and start over from a
snapshot. A publication dropped with nothing written to the database meanwhile is simply
created again.

Bad values: a streamed value that does not fit its column's type (a numeric ``NaN`` or
``Infinity``, an ``infinity`` or BC date, a year past 9999, time ``24:00``, an array of more
dimensions than one or whose first index is not 1) is dead-lettered with the change as the
server sent it, the table, column and commit LSN; the transaction's other events go on
(under ``errors.tolerance: none`` the run fails with that one line). In the snapshot such a
value makes its row a bad row (``_arrow_reads.conform_rows``): dead-lettered as the row's
JSON with the table, key and column, the other rows read on.

Incremental snapshots: with ``signal_table`` set, a row inserted there asks for tables to be
read again in chunks while streaming goes on, with Debezium's signal format and watermark
de-duplication (streamed changes win over stale snapshot rows); see ``_cdc_incremental``.

Types come from the relation messages (``_pg_text``), the same for snapshot and stream.
"""

from __future__ import annotations

import logging
from typing import ClassVar, Literal

from pydantic import Field, SecretStr

from omconnect.connectors.api import ConnectorSpec, RetriableError, SourceConnector, register
from omconnect.connectors.sql._cdc_task import PostgresCdcTask
from omconnect.connectors.sql._replication import check_server, open_database

_NAME = r"^[a-z0-9_]{1,63}$"

log = logging.getLogger("omconnect.connectors.sql")


class PostgresCdcSpec(ConnectorSpec):
    """Options of the ``postgres-cdc`` source."""

    url: SecretStr = Field(
        description=(
            "The database as a URL: `postgresql://user:password@host:5432/db`. The user needs "
            "the REPLICATION attribute (or superuser), and the server `wal_level = logical`. "
            "Secret: its password is never shown in logs or errors."
        )
    )
    tables: list[str] = Field(
        min_length=1,
        examples=[["public.orders"]],
        description=(
            "The tables to capture, as `schema.table` or `table` (in `public`); either part "
            "may be a glob (`public.*`). Each table needs a primary key (or a replica "
            "identity) and is published to `<topic>.<schema>.<table>`. An array column is a "
            "list of its element type (an enum, and an array of enums, is text); PostgreSQL "
            "lets any row of it hold an array of more dimensions than one, or whose first "
            "index is not 1, which no list holds: a bad value of its row, in the snapshot as "
            "in the stream (dead-lettered under `errors.tolerance: all`, the run stopped "
            "under `none`, with the table, column and why)."
        ),
    )
    slot: str | None = Field(
        default=None,
        pattern=_NAME,
        description=(
            "The replication slot (lower-case letters, digits and `_`). Default: "
            "`omconnect_<pipeline>` (the pipeline's name, other characters as `_`). One "
            "pipeline per slot."
        ),
    )
    publication: str | None = Field(
        default=None,
        pattern=_NAME,
        description="The publication naming the tables. Default: the slot's name.",
    )
    snapshot: Literal["initial", "never", "when_needed"] = Field(
        default="initial",
        description=(
            "`initial`: read every table's rows first (in the snapshot the slot exported, "
            "as `op: r` events), then stream changes; `never`: stream changes only, from the "
            "slot's creation on; `when_needed`: as `initial` when the slot is new or was lost."
        ),
    )
    heartbeat_interval: float = Field(
        default=10.0,
        gt=0,
        description=(
            "Seconds between heartbeats while running continuously: a logical decoding "
            "message written to the WAL and, once streamed back with nothing in flight, "
            "confirmed, so the slot advances on a quiet database."
        ),
    )
    heartbeat_query: str | None = Field(
        default=None,
        examples=[
            "INSERT INTO public.heartbeat (id, ts) VALUES (1, now()) ON CONFLICT (id) "
            "DO UPDATE SET ts = now()"
        ],
        description=(
            "A statement run with every heartbeat (Debezium's `heartbeat.action.query`), for "
            "example an upsert into a captured table so that consumers see the source alive "
            "in its topic. Its failure stops the pipeline with the database's message."
        ),
    )
    tombstones: bool = Field(
        default=True,
        description=(
            "After a delete event, also publish a tombstone (the key with no value), so "
            "compacted topics drop the row."
        ),
    )
    signal_table: str | None = Field(
        default=None,
        pattern=r"^([a-z_][a-z0-9_]{0,62}\.)?[a-z_][a-z0-9_]{0,62}$",
        examples=["public.omconnect_signal"],
        description=(
            "A table (`schema.table`) through which incremental snapshots are asked for, "
            "with Debezium's columns `id`, `type`, `data`: insert `('<id>', "
            "'execute-snapshot', '{\"data-collections\": [\"public.orders\"]}')` to read "
            "those tables again in chunks while streaming goes on, or `stop-snapshot`. "
            "Created when missing and added to the publication. Default: no signals."
        ),
    )
    incremental_chunk_size: int = Field(
        default=10_000,
        ge=1,
        description="Rows per chunk of an incremental snapshot (each between two watermarks).",
    )
    batch_size: int = Field(
        default=10_000,
        ge=1,
        description="Messages read from the slot per poll (and at most per emitted batch).",
    )


class PostgresCdc(SourceConnector):
    """Streams a PostgreSQL database's changes (logical replication, pgoutput) as
    Debezium-compatible events."""

    name = "postgres-cdc"
    spec: ClassVar[type[ConnectorSpec]] = PostgresCdcSpec
    task_class = PostgresCdcTask
    description = (
        "Stream PostgreSQL row changes from logical replication (pgoutput) as "
        "Debezium-compatible change events, after an optional consistent snapshot."
    )

    def validate(self) -> None:
        """Connect, check the server's settings and find the tables; a server that cannot
        be reached now (down, restarting) is not a mistake in the config: it is logged and
        the task's start, which the runtime retries, checks them."""
        config = self.config
        assert isinstance(config, PostgresCdcSpec)
        database = open_database(config.url.get_secret_value())
        try:
            database.check_connection()
            check_server(database)
            for name in database.resolve_tables(config.tables):
                database.reflect(name)
        except RetriableError as error:
            log.warning("%s (the tables are checked when the task starts)", error)
        finally:
            database.close()

    def streams(self) -> list[str]:
        """The tables' streams (none yet while the server cannot be reached: their topics
        are made as their events come)."""
        config = self.config
        assert isinstance(config, PostgresCdcSpec)
        database = open_database(config.url.get_secret_value())
        try:
            return [str(name) for name in database.resolve_tables(config.tables)]
        except RetriableError:
            return []
        finally:
            database.close()


register(PostgresCdc)

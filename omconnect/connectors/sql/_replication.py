"""PostgreSQL logical replication: the publication, the slot and the stream of pgoutput bytes.

psycopg 3 has no replication protocol; psycopg2's ``LogicalReplicationConnection`` is the
well-kept client that has it (``START_REPLICATION``, standby status updates). It is used only
here, on the connection that streams; catalog queries go through the ``sql`` connector's
SQLAlchemy engine.

The slot's flush position is moved only by ``confirm``: the server keeps every transaction
after it, so a run that dies before its positions were stored gets them again. The stream is
started at the slot's own position (``0/0``), never past it.
"""

from __future__ import annotations

import contextlib
import re
import select
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from omconnect.connectors.api import ConfigError, ConnectorError, RetriableError
from omconnect.connectors.sql._cdc_events import TableEvents
from omconnect.connectors.sql._pg_text import SESSION_SETTINGS

if TYPE_CHECKING:
    from omconnect.connectors.sql._database import Database

# SQLSTATEs of the failures that get their own advice.
_OBJECT_IN_USE = "55006"
_INSUFFICIENT_PRIVILEGE = "42501"
_UNDEFINED_OBJECT = "42704"
_CONNECTION_FAILURES = ("08000", "08001", "08003", "08004", "08006", "57P01", "57P02", "57P03")


@dataclass(frozen=True)
class StreamedMessage:
    """One pgoutput message and the WAL position it was sent at."""

    payload: bytes
    data_start: int


class ReplicationStream:
    """A replication connection to one database, streaming one slot."""

    def __init__(self, dsn: str, slot: str, publication: str) -> None:
        self.slot = slot
        self.publication = publication
        self._dsn = dsn
        self._connection: Any = None
        self._cursor: Any = None
        self._streaming = False

    def open(self) -> None:
        import psycopg2
        import psycopg2.extras

        try:
            self._connection = psycopg2.connect(
                self._dsn,
                connection_factory=psycopg2.extras.LogicalReplicationConnection,
                options=SESSION_SETTINGS,
            )
        except psycopg2.Error as error:
            raise _translated(
                error, f"open a replication connection for slot {self.slot}"
            ) from None
        self._cursor = self._connection.cursor()

    def create_slot(self) -> str:
        """Create the slot (pgoutput) and return the name of the snapshot it exported: the
        database as of the slot's start, readable by other sessions while this connection
        does nothing else (``SET TRANSACTION SNAPSHOT``)."""
        import psycopg2

        try:
            self._cursor.execute(
                f'CREATE_REPLICATION_SLOT "{self.slot}" LOGICAL pgoutput EXPORT_SNAPSHOT'
            )
            row = self._cursor.fetchone()
        except psycopg2.Error as error:
            raise _translated(error, f"create replication slot {self.slot}") from None
        return str(row[2])

    def start(self) -> None:
        """Stream the slot from where its flush position is."""
        import psycopg2

        try:
            self._cursor.start_replication(
                slot_name=self.slot,
                decode=False,
                start_lsn=0,
                options={
                    "proto_version": "1",
                    "publication_names": self.publication,
                    "messages": "true",  # logical decoding messages: watermarks, heartbeats
                },
                status_interval=10,
            )
        except psycopg2.Error as error:
            raise _translated(error, f"stream replication slot {self.slot}") from None
        self._streaming = True

    def read(self, limit: int, wait_seconds: float) -> list[StreamedMessage]:
        """Up to ``limit`` messages: those at hand, or the first to arrive within
        ``wait_seconds`` and those with it."""
        import psycopg2

        messages: list[StreamedMessage] = []
        deadline = time.monotonic() + wait_seconds
        try:
            while len(messages) < limit:
                message = self._cursor.read_message()
                if message is not None:
                    messages.append(StreamedMessage(message.payload, message.data_start))
                    continue
                left = deadline - time.monotonic()
                if messages or left <= 0:
                    break
                select.select([self._connection], [], [], min(left, 1.0))
        except psycopg2.Error as error:
            raise _translated(error, f"stream replication slot {self.slot}") from None
        return messages

    @property
    def server_wal_end(self) -> int:
        """The end of the server's WAL as its last message or keepalive said."""
        return int(self._cursor.wal_end or 0)

    def confirm(self, flush_lsn: int) -> None:
        """Tell the server that everything up to ``flush_lsn`` is stored: the slot may let go
        of the WAL before it."""
        import psycopg2

        try:
            self._cursor.send_feedback(write_lsn=flush_lsn, flush_lsn=flush_lsn, reply=False)
        except psycopg2.Error as error:
            raise _translated(error, f"confirm position of slot {self.slot}") from None

    def close(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(Exception):  # already broken: nothing left to release
                self._connection.close()
        self._connection = self._cursor = None
        self._streaming = False


def _translated(error: Any, doing: str) -> ConnectorError:
    """A psycopg2 error as one line saying what to change."""
    code = getattr(error, "pgcode", None)
    first = (str(error).strip().splitlines() or [type(error).__name__])[0]
    if code == _OBJECT_IN_USE:
        return ConnectorError(
            f"cannot {doing}: {first}; another process is streaming this slot (stop it, or "
            "give this pipeline its own `slot`)"
        )
    if code == _INSUFFICIENT_PRIVILEGE or "must be superuser or replication role" in first:
        return ConnectorError(
            f"cannot {doing}: {first}; grant it with ALTER ROLE <user> WITH REPLICATION"
        )
    if code == _UNDEFINED_OBJECT and "publication" in first:
        return ConnectorError(
            f"cannot {doing}: {first}; the publication was dropped: restart the pipeline to "
            "create it again"
        )
    if code in _CONNECTION_FAILURES or code is None:
        return RetriableError(f"cannot {doing}: {first}")
    return ConnectorError(f"cannot {doing}: {first}")


def quoted(name: str) -> str:
    """``name`` as a PostgreSQL identifier (names come from the catalog, not from text)."""
    return '"' + name.replace('"', '""') + '"'


def catalog_tables(
    database: Database, patterns: Sequence[str]
) -> tuple[list[TableEvents], dict[str, Any]]:
    """The tables of ``patterns``, in name order, with their columns' types and keys from the
    catalog (as a relation message will describe them), and their reflected SQLAlchemy
    tables by stream name."""
    import sqlalchemy as sa

    tables = []
    reflected: dict[str, Any] = {}
    for name in database.resolve_tables(patterns):
        info = database.reflect(name)
        with database.errors(name, doing="reflect"), database.connect() as connection:
            rows = connection.execute(
                sa.text(
                    "SELECT a.attname, a.atttypid, a.atttypmod FROM pg_attribute a "
                    "JOIN pg_class c ON c.oid = a.attrelid "
                    "JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE n.nspname = :schema AND c.relname = :table "
                    "AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum"
                ),
                {"schema": name.schema, "table": name.name},
            ).all()
        key = info.primary_key
        if not key:
            raise ConfigError(
                f"table {name} has no primary key: give it one, or its changes cannot be keyed "
                "(Debezium's rule too)",
                key="tables",
            )
        columns = tuple((str(r[0]), int(r[1]), int(r[2])) for r in rows)
        tables.append(TableEvents(str(name.schema), name.name, columns, key))
        reflected[tables[-1].stream] = info.table
    order = sorted(range(len(tables)), key=lambda i: tables[i].stream)
    return [tables[i] for i in order], reflected


def ensure_publication(database: Database, publication: str, tables: Sequence[TableEvents]) -> None:
    """Create ``publication`` for ``tables``, or add the tables it lacks."""
    import sqlalchemy as sa

    wanted = {(x.schema_name, x.name) for x in tables}
    with database.errors(doing="create publication on"), database.connect() as connection:
        exists = connection.execute(
            sa.text("SELECT 1 FROM pg_publication WHERE pubname = :name"), {"name": publication}
        ).first()
        names = ", ".join(f"{quoted(s)}.{quoted(n)}" for s, n in sorted(wanted))
        if exists is None:
            connection.execute(
                sa.text(f"CREATE PUBLICATION {quoted(publication)} FOR TABLE {names}")
            )
        else:
            present = {
                (str(r[0]), str(r[1]))
                for r in connection.execute(
                    sa.text(
                        "SELECT schemaname, tablename FROM pg_publication_tables "
                        "WHERE pubname = :name"
                    ),
                    {"name": publication},
                )
            }
            missing = sorted(wanted - present)
            if missing:
                added = ", ".join(f"{quoted(s)}.{quoted(n)}" for s, n in missing)
                connection.execute(
                    sa.text(f"ALTER PUBLICATION {quoted(publication)} ADD TABLE {added}")
                )
        connection.commit()


def slot_exists(database: Database, slot: str) -> bool:
    import sqlalchemy as sa

    with database.errors(doing="look up replication slot in"), database.connect() as connection:
        row = connection.execute(
            sa.text("SELECT plugin FROM pg_replication_slots WHERE slot_name = :slot"),
            {"slot": slot},
        ).first()
    if row is not None and row[0] != "pgoutput":
        raise ConnectorError(
            f"replication slot {slot} uses the plugin {row[0]}, not pgoutput: give this "
            "pipeline another `slot`"
        )
    return row is not None


def drop_slot(database: Database, slot: str) -> None:
    """Drop ``slot``, waiting up to ``_SLOT_RELEASE_SECONDS`` for a stream of an earlier run
    of this pipeline to let go of it (the server notices a closed connection late).

    Raises:
        ConnectorError: another process still streams it.
    """
    import sqlalchemy as sa

    deadline = time.monotonic() + _SLOT_RELEASE_SECONDS
    with database.errors(doing="drop replication slot in"), database.connect() as connection:
        while True:
            active = connection.execute(
                sa.text("SELECT active FROM pg_replication_slots WHERE slot_name = :slot"),
                {"slot": slot},
            ).scalar()
            if active is None:
                return
            if not active:
                break
            if time.monotonic() > deadline:
                raise ConnectorError(
                    f"replication slot {slot} is in use: another process is streaming this "
                    "slot (stop it, or give this pipeline its own `slot`)"
                )
            time.sleep(0.1)
        connection.execute(sa.text("SELECT pg_drop_replication_slot(:slot)"), {"slot": slot})
        connection.commit()


# How long dropping a slot waits for an earlier stream of it to end.
_SLOT_RELEASE_SECONDS = 10.0


def snapshot_name(name: str) -> str:
    if not re.fullmatch(r"[0-9A-F-]+", name):
        raise ConnectorError(f"the server exported a snapshot with an unexpected name {name!r}")
    return name


def default_slot(pipeline: str) -> str:
    return ("omconnect_" + re.sub(r"[^a-z0-9_]", "_", pipeline.lower()))[:63]


def open_database(url: str) -> Database:
    """The ``sql`` connector's ``Database`` of ``url``, which must be PostgreSQL's."""
    from omconnect.connectors.sql._database import Database

    database = Database.open(url)
    if database.dialect != "postgresql":
        database.close()
        raise ConfigError("postgres-cdc needs a postgresql:// URL", key="url")
    return database


def check_server(database: Database) -> None:
    """``wal_level`` logical, and a role that may replicate: else one line saying what to
    change."""
    import sqlalchemy as sa

    with database.errors(doing="check"), database.connect() as connection:
        level = connection.execute(sa.text("SHOW wal_level")).scalar()
        role = connection.execute(
            sa.text("SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user")
        ).scalar()
    if level != "logical":
        raise ConnectorError(
            f"{database.description} has wal_level = {level}; logical replication needs "
            "wal_level = logical: run ALTER SYSTEM SET wal_level = logical; and restart "
            "PostgreSQL"
        )
    if not role:
        raise ConnectorError(
            f"the user of {database.description} may not replicate: run ALTER ROLE <user> "
            "WITH REPLICATION (or use a superuser)"
        )


def libpq_dsn(database: Database) -> str:
    url = database.url
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


__all__ = [
    "ReplicationStream",
    "StreamedMessage",
    "catalog_tables",
    "check_server",
    "default_slot",
    "drop_slot",
    "ensure_publication",
    "libpq_dsn",
    "open_database",
    "quoted",
    "slot_exists",
    "snapshot_name",
]

"""PostgreSQL logical replication: the publication, the slot and the stream of pgoutput bytes.

psycopg 3 has no replication protocol; psycopg2's ``LogicalReplicationConnection`` is the
well-kept client that has it (``START_REPLICATION``, standby status updates). It is used only
here, on the connection that streams; catalog queries go through the ``sql`` connector's
SQLAlchemy engine.

The slot's flush position is moved only by ``confirm``: the server keeps every transaction
after it, so a run that dies before its positions were stored gets them again. The stream is
started at the slot's own position (``0/0``), never past it.

Failures: a stream whose connection fails closes it and raises; a dropped connection (a
terminated walsender, a server shutting down or restarting, no pgcode) is ``RetriableError``,
and ``open`` and ``start`` again resume from the slot's position, telling the new connection
the highest position confirmed so far. ``unreachable`` (``_database``'s, the one
classification of driver errors) says whether any error (SQLAlchemy's, ADBC's, psycopg2's)
comes from a server that cannot be reached now, and ``retriable_when_unreachable`` turns
those into ``RetriableError`` whatever they were translated to.
"""

from __future__ import annotations

import contextlib
import re
import select
import time
from collections.abc import Iterator, Sequence
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

# Words of a refused login (libpq gives no SQLSTATE for failures while connecting).
_LOGIN_REFUSED_TEXT = (
    "password authentication failed",
    "authentication failed",
    "no pg_hba.conf entry",
    "does not exist",
)


class SlotInUseError(ConnectorError):
    """Another connection streams the slot (SQLSTATE 55006)."""


@dataclass(frozen=True)
class StreamedMessage:
    """One pgoutput message and the WAL position it was sent at."""

    payload: bytes
    data_start: int


# How long a read gathers messages after the first (see ``ReplicationStream.read``).
_READ_SECONDS = 0.05


class ReplicationStream:
    """A replication connection to one database, streaming one slot.

    After a failure of its connection (``read``, ``start``, a forced ``confirm``) the stream is
    closed: ``open`` and ``start`` again to stream from the slot's confirmed position.
    """

    def __init__(self, dsn: str, slot: str, publication: str) -> None:
        self.slot = slot
        self.publication = publication
        self._dsn = dsn
        self._connection: Any = None
        self._cursor: Any = None
        self._streaming = False
        # The highest position confirmed: told to every connection the stream starts.
        self._confirmed = 0

    @property
    def is_open(self) -> bool:
        """Whether the connection is there (it may still be dead: ``read`` finds out)."""
        return self._connection is not None and not self._connection.closed

    @property
    def streaming(self) -> bool:
        """Whether the slot is being streamed on an open connection."""
        return self._streaming and self.is_open

    @property
    def user(self) -> str | None:
        """The user the connection logs in as (from the DSN), for the advice of errors."""
        import psycopg2.extensions

        try:
            return psycopg2.extensions.parse_dsn(self._dsn).get("user")
        except psycopg2.Error:
            return None

    def open(self) -> None:
        import psycopg2
        import psycopg2.extras

        self.close()
        try:
            self._connection = psycopg2.connect(
                self._dsn,
                connection_factory=psycopg2.extras.LogicalReplicationConnection,
                options=SESSION_SETTINGS,
                connect_timeout=_CONNECT_TIMEOUT_SECONDS,
            )
        except psycopg2.Error as error:
            raise self._failed(
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
            raise self._failed(error, f"create replication slot {self.slot}") from None
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
            if self._confirmed:
                # Confirmed while the connection was down (or by the one before it).
                self._cursor.send_feedback(
                    write_lsn=self._confirmed, flush_lsn=self._confirmed, force=True
                )
        except psycopg2.Error as error:
            raise self._failed(error, f"stream replication slot {self.slot}") from None
        self._streaming = True

    def read(self, limit: int, wait_seconds: float) -> list[StreamedMessage]:
        """Up to ``limit`` messages: those at hand, or the first to arrive within
        ``wait_seconds`` and those with it; reading stops ``_READ_SECONDS`` after the first
        (a steady stream always has a message at hand: without it a poll would gather a
        whole ``limit`` of a slow stream while its first changes wait)."""
        import psycopg2

        if not self.streaming:
            raise RetriableError(f"slot {self.slot} is not being streamed: its connection was lost")
        messages: list[StreamedMessage] = []
        deadline = time.monotonic() + wait_seconds
        enough = 0.0  # when reading stops, once there are messages
        try:
            while len(messages) < limit:
                message = self._cursor.read_message()
                if message is not None:
                    messages.append(StreamedMessage(message.payload, message.data_start))
                    if len(messages) & 255 == 1:  # the clock every 256 messages is enough
                        now = time.monotonic()
                        enough = enough or now + _READ_SECONDS
                        if now >= enough:
                            break
                    continue
                left = deadline - time.monotonic()
                if messages or left <= 0:
                    break
                select.select([self._connection], [], [], min(left, 1.0))
        except psycopg2.Error as error:
            raise self._failed(error, f"stream replication slot {self.slot}") from None
        return messages

    def confirm(self, flush_lsn: int, force: bool = False) -> None:
        """Tell the server that everything up to ``flush_lsn`` is stored: the slot may let go
        of the WAL before it. psycopg2 sends it with its next status update (every
        ``status_interval``), at once with ``force``. While the stream is down the position
        is kept and told to the next connection when it starts."""
        import psycopg2

        self._confirmed = max(self._confirmed, flush_lsn)
        if not self.streaming:
            return
        try:
            self._cursor.send_feedback(
                write_lsn=flush_lsn, flush_lsn=flush_lsn, reply=False, force=force
            )
        except psycopg2.Error as error:
            raise self._failed(error, f"confirm position of slot {self.slot}") from None

    def close(self) -> None:
        """Close the connection, first telling the server the last confirmed position (sent
        with the next status update otherwise, which a stopping run would not wait for)."""
        if self._streaming and self._confirmed:
            with contextlib.suppress(Exception):  # lost: the next connection tells it
                self._cursor.send_feedback(
                    write_lsn=self._confirmed, flush_lsn=self._confirmed, force=True
                )
        if self._connection is not None:
            with contextlib.suppress(Exception):  # already broken: nothing left to release
                self._connection.close()
        self._connection = self._cursor = None
        self._streaming = False

    def _failed(self, error: Any, doing: str) -> ConnectorError:
        """``error`` translated; the connection is closed (a retry opens a new one)."""
        self.close()
        return _translated(error, doing, self.slot, self.user)


# How long opening a replication connection may take.
_CONNECT_TIMEOUT_SECONDS = 10


def _translated(
    error: Any, doing: str, slot: str | None = None, user: str | None = None
) -> ConnectorError:
    """A psycopg2 error as one line saying what to change."""
    code = getattr(error, "pgcode", None)
    first = (str(error).strip().splitlines() or [type(error).__name__])[0]
    lowered = first.lower()
    if code == _OBJECT_IN_USE:
        return SlotInUseError(
            f"cannot {doing}: {first}; another process is streaming this slot (stop it, or "
            "give this pipeline its own `slot`)"
        )
    if code == _INSUFFICIENT_PRIVILEGE or "must be superuser or replication role" in first:
        return ConnectorError(
            f"cannot {doing}: {first}; grant it with ALTER ROLE {sql_name(user or '<user>')} "
            "WITH REPLICATION"
        )
    if code == _UNDEFINED_OBJECT and "publication" in first:
        slot_name = slot or "<slot>"
        return ConnectorError(
            f"cannot {doing}: {first}; the publication was dropped while the slot still had "
            "changes to send, and PostgreSQL cannot decode the changes made before it was "
            f"created again: drop the slot (SELECT pg_drop_replication_slot('{slot_name}')) "
            "and run again to start over from a snapshot (with `snapshot: when_needed`, or "
            "after `omconnect offsets reset <pipeline.yaml>`)"
        )
    if code == _UNDEFINED_OBJECT and "replication slot" in first:
        return ConnectorError(
            f"cannot {doing}: {first}; the slot was dropped while the pipeline ran: run it "
            "again to create it (it says whether the changes made meanwhile need a snapshot)"
        )
    if unreachable(error):
        return RetriableError(f"cannot {doing}: {first}")
    if code is None and not any(words in lowered for words in _LOGIN_REFUSED_TEXT):
        # No SQLSTATE: libpq's own failure (connection refused, closed, lost, ended).
        return RetriableError(f"cannot {doing}: {first}")
    return ConnectorError(f"cannot {doing}: {first}")


def unreachable(error: BaseException) -> bool:
    """``_database.unreachable``, imported when first needed (SQLAlchemy with it: every
    ``omconnect`` command imports this module with the plugins)."""
    from omconnect.connectors.sql import _database

    return _database.unreachable(error)


@contextlib.contextmanager
def retriable_when_unreachable() -> Iterator[None]:
    """Errors raised inside that come from a server that cannot be reached now
    (``unreachable``) become ``RetriableError`` with the same message; others pass."""
    try:
        yield
    except RetriableError:
        raise
    except Exception as error:
        if not unreachable(error):
            raise
        text = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise RetriableError(text) from error


def sql_name(name: str) -> str:
    """``name`` as it is written in SQL: as is when it needs no quotes."""
    return name if re.fullmatch(r"[a-z_][a-z0-9_$]*|<\w+>", name) else quoted(name)


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


def ensure_publication(
    database: Database, publication: str, tables: Sequence[tuple[str, str]]
) -> bool:
    """Create ``publication`` for ``tables`` (schema, name), or add the tables it lacks.
    Returns whether it was missing (and is now created).

    Raises:
        ConnectorError: the user may not create or change it; the message gives the statement
            to run as the tables' owner.
    """
    import sqlalchemy as sa

    wanted = set(tables)
    statement: str | None = None
    try:
        with database.errors(doing="create publication on"), database.connect() as connection:
            exists = connection.execute(
                sa.text("SELECT 1 FROM pg_publication WHERE pubname = :name"),
                {"name": publication},
            ).first()
            names = ", ".join(f"{quoted(s)}.{quoted(n)}" for s, n in sorted(wanted))
            if exists is None:
                statement = f"CREATE PUBLICATION {quoted(publication)} FOR TABLE {names}"
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
                    statement = f"ALTER PUBLICATION {quoted(publication)} ADD TABLE {added}"
            if statement is not None:
                connection.execute(sa.text(statement))
            connection.commit()
    except ConnectorError as error:
        driver = _driver_error(error)
        code = getattr(driver, "sqlstate", None) or getattr(driver, "pgcode", None)
        if statement is None or code != _INSUFFICIENT_PRIVILEGE:
            raise
        first = (str(driver).strip().splitlines() or [""])[0]
        raise ConnectorError(
            f"cannot create publication {publication} at {database.description}: {first}; "
            f"the user may not publish these tables: run, as their owner or a superuser, "
            f"{statement}"
        ) from None
    return exists is None


def _driver_error(error: BaseException) -> BaseException | None:
    """The driver's error (one with a SQLSTATE) behind ``error``, a translated one."""
    current: BaseException | None = error
    for _ in range(8):
        if current is None:
            return None
        for candidate in (current, getattr(current, "orig", None)):
            code = getattr(candidate, "sqlstate", None) or getattr(candidate, "pgcode", None)
            if isinstance(code, str) and isinstance(candidate, BaseException):
                return candidate
        current = current.__cause__ or current.__context__
    return None


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
        user, may = connection.execute(
            sa.text(
                "SELECT current_user, rolreplication OR rolsuper FROM pg_roles "
                "WHERE rolname = current_user"
            )
        ).one()
    if level != "logical":
        raise ConnectorError(
            f"{database.description} has wal_level = {level}; logical replication needs "
            "wal_level = logical: run ALTER SYSTEM SET wal_level = logical; and restart "
            "PostgreSQL"
        )
    if not may:
        raise ConnectorError(
            f"the user {user} of {database.description} may not replicate (it lacks the "
            f"REPLICATION attribute): run ALTER ROLE {sql_name(str(user))} WITH REPLICATION; "
            "as a superuser, or use a user that has it"
        )


def slot_lag(database: Database, slot: str) -> int | None:
    """How many bytes of WAL the server wrote past the slot's confirmed flush position (None:
    no such slot)."""
    import sqlalchemy as sa

    with database.errors(doing="measure the lag of slot in"), database.connect() as connection:
        lag = connection.execute(
            sa.text(
                "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint "
                "FROM pg_replication_slots WHERE slot_name = :slot"
            ),
            {"slot": slot},
        ).scalar()
    return None if lag is None else int(lag)


def libpq_dsn(database: Database) -> str:
    url = database.url
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


__all__ = [
    "ReplicationStream",
    "SlotInUseError",
    "StreamedMessage",
    "catalog_tables",
    "check_server",
    "default_slot",
    "drop_slot",
    "ensure_publication",
    "libpq_dsn",
    "open_database",
    "quoted",
    "retriable_when_unreachable",
    "slot_exists",
    "slot_lag",
    "snapshot_name",
    "sql_name",
    "unreachable",
]

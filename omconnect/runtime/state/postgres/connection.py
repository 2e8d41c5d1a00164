"""Sessions with a Postgres state, and their failures said in one line a person can act on.

``connect`` opens one session (autocommit, with ``synchronous_commit`` on so that a commit
is durable whatever the server's default). ``StateConnection`` is the session a store shares
between its threads: ``run(work)`` does ``work`` in one transaction, again after a
serialization failure or a deadlock, and once more on a new session when the server dropped
the old one (a restart, a failover). Every work a store passes is idempotent, so doing it
again is safe.

Every failure becomes an ``OffsetStoreError`` that names the server, the database and what
to check (``state: cannot reach PostgreSQL at db:5432, database state: connection refused;
check that ...``), never the password, and never chains libpq's own exception, whose
connection details hold it.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import psycopg
from psycopg import errors

from omconnect.runtime.state.offsets import OffsetStoreError
from omconnect.runtime.state.postgres.location import StateLocation

T = TypeVar("T")

_CONFLICT_RETRIES = 8
_RECONNECT_DELAYS = (0.1, 0.5, 1.0, 2.0)
_CREDENTIAL_WORDS = (
    "password",
    "authentication",
    "role ",
    "pg_hba.conf",
    "not permitted to log in",
)
_CONNECTION_LOST = (errors.AdminShutdown, errors.CrashShutdown, errors.CannotConnectNow)
_LIBPQ_PREFIX = re.compile(
    r"^(connection failed: )?(connection to server (at|on socket) .*? failed: )?(FATAL: +)?"
)


def connect(location: StateLocation) -> psycopg.Connection:
    """A new session with the state's database.

    Raises:
        OffsetStoreError: the server cannot be reached, refuses the user or lacks the
            database (one line naming which, and what to check).
    """
    try:
        connection = psycopg.connect(location.conninfo, autocommit=True)
    except psycopg.Error as error:
        raise OffsetStoreError(connect_failure(location, error)) from None
    try:
        connection.execute("SET synchronous_commit TO on")
    except psycopg.Error as error:
        connection.close()
        raise OffsetStoreError(query_failure(location, error)) from None
    return connection


class StateConnection:
    """One session with the state's database, shared by the threads of one store.

    Args:
        location: the state.
        reconnect: open a new session when the server dropped this one (a store's session;
            not a lock's, whose locks end with it).
    """

    def __init__(self, location: StateLocation, reconnect: bool = True) -> None:
        self.location = location
        self._reconnect = reconnect
        self._lock = threading.Lock()
        self._connection = connect(location)
        self._lost = False  # the server dropped the session and no new one is open yet

    def run(self, work: Callable[[psycopg.Connection], T]) -> T:
        """``work(connection)`` in one transaction; what it returns.

        Exceptions ``work`` raises itself roll the transaction back and pass unchanged.

        Raises:
            OffsetStoreError: the database failed the work (one line, see the module).
        """
        with self._lock:
            conflicts = 0
            reconnected = False
            while True:
                if self._lost:
                    self._connection = self._new_session()
                    self._lost = False
                try:
                    with self._connection.transaction():
                        return work(self._connection)
                except (errors.SerializationFailure, errors.DeadlockDetected) as error:
                    conflicts += 1
                    if conflicts >= _CONFLICT_RETRIES:
                        raise OffsetStoreError(query_failure(self.location, error)) from None
                    time.sleep(0.01 * 2**conflicts)
                except psycopg.OperationalError as error:
                    self._lost = self._reconnect and self._connection.broken
                    if not self._lost or reconnected:
                        raise OffsetStoreError(query_failure(self.location, error)) from None
                    reconnected = True
                except psycopg.Error as error:
                    raise OffsetStoreError(query_failure(self.location, error)) from None

    def _new_session(self) -> psycopg.Connection:
        """A session in place of a dropped one, waiting a few seconds for a restarting
        server.

        Raises:
            OffsetStoreError: the server is still away (the next call tries again).
        """
        self._connection.close()
        for delay in _RECONNECT_DELAYS:
            try:
                return connect(self.location)
            except OffsetStoreError:
                time.sleep(delay)
        return connect(self.location)

    def close(self) -> None:
        with self._lock:
            self._connection.close()


def connect_failure(location: StateLocation, error: psycopg.Error) -> str:
    """Why a session could not be opened, and what to check."""
    reason = _reason(error)
    lowered = reason.lower()
    if lowered.startswith("database ") and "does not exist" in lowered:
        return (
            f"state: database {location.database} does not exist on PostgreSQL at "
            f"{location.host}:{location.port}; create it (CREATE DATABASE "
            f"{location.database}) or correct the database in state:"
        )
    if any(word in lowered for word in _CREDENTIAL_WORDS):
        return (
            f"state: {location.where} refused user {location.user}: {reason}; check the user "
            "and password in state: (or ~/.pgpass) and the server's pg_hba.conf"
        )
    return (
        f"state: cannot reach {location.where}: {reason}; check that the server runs and "
        "that the host and port in state: are right"
    )


def query_failure(location: StateLocation, error: psycopg.Error) -> str:
    """Why a statement of an open session failed, and what to check."""
    reason = _reason(error)
    if isinstance(error, errors.InsufficientPrivilege):
        grant = _grant(location, reason)
        return f"state: {location.where} refused user {location.user}: {reason}; {grant}"
    if isinstance(error, _CONNECTION_LOST) or (
        isinstance(error, psycopg.OperationalError) and not error.sqlstate
    ):
        return (
            f"state: lost the connection to {location.where}: {reason}; check that the server runs"
        )
    return f"state: {location.where}, schema {location.schema}: {reason}"


def _grant(location: StateLocation, reason: str) -> str:
    """The grant that would lift a ``permission denied for ...``."""
    schema, user = location.schema, location.user
    if "for database" in reason:
        return (
            f"let it create schema {schema} (GRANT CREATE ON DATABASE {location.database} TO "
            f"{user}) or create the schema for it (CREATE SCHEMA {schema} AUTHORIZATION {user})"
        )
    if "for schema" in reason:
        return f"GRANT USAGE, CREATE ON SCHEMA {schema} TO {user}"
    return (
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO {user}, "
        "or open the state as the user that created it"
    )


def _reason(error: psycopg.Error) -> str:
    """The server's or libpq's first line, without libpq's prefixes."""
    text = (error.diag.message_primary if error.sqlstate else None) or str(error)
    lines = [line for line in text.strip().splitlines() if line.strip()]
    first = _LIBPQ_PREFIX.sub("", lines[0]).strip() if lines else ""
    return first or type(error).__name__

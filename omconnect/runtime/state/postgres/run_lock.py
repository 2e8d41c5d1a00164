"""A pipeline's run lock in a Postgres state: a session-level advisory lock held for the run.

``AdvisoryRunLock`` is what ``PostgresState.pipeline_lock`` gives ``PipelineLock``: it takes
``pg_try_advisory_lock`` (exclusive: a pipeline with a source) or
``pg_try_advisory_lock_shared`` (the members of a sink-only pipeline) on the pipeline's key
(``advisory_keys``) in a session of its own, and keeps that session open until ``release``.
Workers on any machine that share the state therefore exclude each other as processes sharing a
state directory do with ``flock``.

The server ends the lock with the session: when the runner exits or is killed its socket closes
at once; when its machine vanishes, the TCP keepalives this session asks for end it within
about two minutes. A run asks ``still_held`` every few seconds and stops when the answer is no:
once the session is gone another worker may take the lock. A holder writes who it is
(``LockHolder``) into ``run_lock_holders``; a refused runner reads the record of the session
that ``pg_locks`` shows holding the key, so records of dead holders are never believed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time

import psycopg
from psycopg import sql

from omconnect.runtime.file_lock import LockHeldError, LockHolder
from omconnect.runtime.state.offsets import OffsetStoreError
from omconnect.runtime.state.postgres.advisory_keys import PIPELINE, advisory_key, key_halves
from omconnect.runtime.state.postgres.connection import StateConnection
from omconnect.runtime.state.postgres.location import StateLocation
from omconnect.runtime.state.postgres.tables import create_tables

_HOLDER_READS = 10
"""A holder writes its record just after taking the lock: a refused runner that finds none
looks again a few times (20 ms apart) before saying ``holder unknown``."""

_SESSION_SETTINGS = """
SELECT set_config(name, value, false)
FROM (VALUES ('tcp_keepalives_idle', '60'), ('tcp_keepalives_interval', '10'),
             ('tcp_keepalives_count', '6'), ('idle_session_timeout', '0')) AS s(name, value)
WHERE current_setting(name, true) IS NOT NULL
"""
_HOLDERS_OF_KEY = """
FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
AND l.classid = %(classid)s::bigint::oid AND l.objid = %(objid)s::bigint::oid
"""
_STATEMENTS = {
    "forget_dead": (
        "DELETE FROM {holders} h WHERE h.pipeline = %(pipeline)s AND NOT EXISTS "
        f"(SELECT 1 {_HOLDERS_OF_KEY} AND l.pid = h.backend_pid)"
    ),
    "record": (
        "INSERT INTO {holders} (pipeline, backend_pid, holder) "
        "VALUES (%(pipeline)s, pg_backend_pid(), %(holder)s) "
        "ON CONFLICT (pipeline, backend_pid) DO UPDATE SET holder = EXCLUDED.holder"
    ),
    "holder": (
        "SELECT h.holder FROM {holders} h JOIN LATERAL "
        f"(SELECT l.mode {_HOLDERS_OF_KEY} AND l.pid = h.backend_pid) l ON true "
        "WHERE h.pipeline = %(pipeline)s ORDER BY l.mode = 'ExclusiveLock' DESC LIMIT 1"
    ),
    "still_held": (f"SELECT EXISTS (SELECT 1 {_HOLDERS_OF_KEY} AND l.pid = pg_backend_pid())"),
    "unrecord": (
        "DELETE FROM {holders} WHERE pipeline = %(pipeline)s AND backend_pid = pg_backend_pid()"
    ),
}


class AdvisoryRunLock:
    """The run lock of ``pipeline`` in the Postgres state at ``location``."""

    def __init__(self, location: StateLocation, pipeline: str) -> None:
        self.location = location
        self.pipeline = pipeline
        self._key = advisory_key(PIPELINE, location.schema, pipeline)
        classid, objid = key_halves(self._key)
        self._params: dict[str, object] = {"pipeline": pipeline, "classid": classid, "objid": objid}
        holders = sql.Identifier(location.schema, "run_lock_holders")
        self._sql = {
            name: sql.SQL(text).format(holders=holders) for name, text in _STATEMENTS.items()
        }
        self._session: StateConnection | None = None
        self._shared = False

    @property
    def held(self) -> bool:
        return self._session is not None

    def acquire(self, holder: LockHolder | None = None, *, shared: bool = False) -> bool:
        """Take the lock without waiting, in a session kept until ``release``; always real.

        Raises:
            LockHeldError: another session holds it in a conflicting mode (``holder``: who).
            OffsetStoreError: the state cannot be reached or created (one line).
        """
        if self._session is not None:
            raise RuntimeError(f"the run lock of pipeline {self.pipeline!r}: acquired twice")
        session = StateConnection(self.location, reconnect=False)
        try:
            session.run(lambda c: create_tables(c, self.location))
            taken = session.run(lambda c: self._take(c, holder, shared))
            if not taken:
                raise LockHeldError(self._name(), self._holder(session))
        except BaseException:
            session.close()
            raise
        self._session, self._shared = session, shared
        return True

    def still_held(self) -> bool:
        """Whether this session still holds the lock: False when the session is gone (the
        server restarted, an administrator ended it, its keepalives failed) or the lock was
        released under it; then another worker may hold it now."""
        session = self._session
        if session is None:
            return False
        try:
            row = session.run(lambda c: c.execute(self._sql["still_held"], self._params).fetchone())
        except OffsetStoreError:
            return False
        return bool(row and row[0])

    def release(self) -> None:
        """Give the lock up and end its session."""
        session, self._session = self._session, None
        if session is None:
            return
        unlock = "pg_advisory_unlock_shared" if self._shared else "pg_advisory_unlock"

        def give_up(connection: psycopg.Connection) -> None:
            connection.execute(self._sql["unrecord"], self._params)
            connection.execute(f"SELECT {unlock}(%s)", [self._key])

        # A session the server already dropped took its lock with it: nothing is left to do.
        with contextlib.suppress(OffsetStoreError):
            session.run(give_up)
        session.close()

    def _take(
        self, connection: psycopg.Connection, holder: LockHolder | None, shared: bool
    ) -> bool:
        connection.execute(_SESSION_SETTINGS)
        take = "pg_try_advisory_lock_shared" if shared else "pg_try_advisory_lock"
        row = connection.execute(f"SELECT {take}(%s)", [self._key]).fetchone()
        if row is None or not row[0]:
            return False
        connection.execute(self._sql["forget_dead"], self._params)
        if holder is not None:
            record = json.dumps(dataclasses.asdict(holder))
            connection.execute(self._sql["record"], {**self._params, "holder": record})
        return True

    def _holder(self, session: StateConnection) -> LockHolder | None:
        """Who holds the lock, by the record of a session that holds it now."""
        for attempt in range(_HOLDER_READS):
            row = session.run(lambda c: c.execute(self._sql["holder"], self._params).fetchone())
            if row is not None:
                return LockHolder.from_bytes(str(row[0]).encode())
            if attempt + 1 < _HOLDER_READS:
                time.sleep(0.02)
        return None

    def _name(self) -> str:
        return (
            f"the run lock of pipeline {self.pipeline!r} (schema {self.location.schema}, "
            f"{self.location.where})"
        )

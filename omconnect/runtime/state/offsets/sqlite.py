"""``SqliteOffsetStore``: source positions in one SQLite file, the default offset store.

Rows are keyed by (namespace, ``partition_id(partition)``) and hold the partition and offset
dicts as tagged JSON (``schemas.position_codec``), so datetimes, decimals, bytes and UUIDs
come back as they went in; rows written as plain JSON read the same. The file is in WAL mode
and every write takes the write lock up front, so several processes (a running pipeline and
``omconnect offsets ...``) can share it.

Durability: ``synchronous="normal"`` survives a crash or SIGKILL of the process; a power loss
may lose the last puts (the pipeline then re-delivers from an earlier position, never skips).
Use ``"full"`` to fsync every put.

Errors: every SQLite or file system failure is raised as ``OffsetStoreError`` naming the file
(``the disk holding STATE/offsets.sqlite is full``, ``... is not an offset store``).
"""

from __future__ import annotations

import errno
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from omconnect.runtime.sqlite_wal import connect_wal
from omconnect.runtime.state.offsets.base import OffsetStore, OffsetStoreError
from omconnect.runtime.state.offsets.transfer import export_offsets, import_offsets
from omconnect.schemas.position_codec import decode_position_value, encode_position_value
from omconnect.schemas.record import Position, partition_id

_SCHEMA = """
CREATE TABLE IF NOT EXISTS source_offsets (
    namespace TEXT NOT NULL,
    partition_id TEXT NOT NULL,
    partition_json TEXT NOT NULL,
    offset_json TEXT NOT NULL,
    updated_ms INTEGER NOT NULL,
    PRIMARY KEY (namespace, partition_id)
) WITHOUT ROWID
"""
_SYNC_MODES = {"normal": "NORMAL", "full": "FULL"}


class SqliteOffsetStore(OffsetStore):
    """Offsets in the SQLite file ``path`` (its directory is created).

    Safe to use from several threads (calls are serialised by a lock) and several processes.

    Args:
        path: the database file, usually ``STATE_DIR/offsets.sqlite``.
        synchronous: ``"normal"`` or ``"full"`` (see the module docstring).
        busy_timeout: seconds a write waits for another process's lock before failing.
    """

    def __init__(
        self, path: str | Path, synchronous: str = "normal", busy_timeout: float = 30.0
    ) -> None:
        if synchronous.lower() not in _SYNC_MODES:
            raise ValueError(f"synchronous must be 'normal' or 'full', not {synchronous!r}")
        self.path = Path(path)
        self._lock = threading.Lock()
        with self._errors():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._connection = connect_wal(
                self.path, busy_timeout=busy_timeout, synchronous=_SYNC_MODES[synchronous.lower()]
            )
            try:
                with self._write() as connection:
                    connection.execute(_SCHEMA)
            except BaseException:
                self._connection.close()
                raise

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """Raise SQLite and file system failures as ``OffsetStoreError`` naming the file."""
        try:
            yield
        except (sqlite3.Error, OSError) as error:
            raise OffsetStoreError(_describe(error, self.path)) from error

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._connection.execute("BEGIN IMMEDIATE")
            try:
                yield self._connection
                self._connection.execute("COMMIT")
            except BaseException:
                # Also after a failed COMMIT (a full disk), so the next write can begin.
                if self._connection.in_transaction:
                    with suppress(sqlite3.Error):
                        self._connection.execute("ROLLBACK")
                raise

    def get(self, namespace: str, partition: Mapping[str, Any]) -> Mapping[str, Any] | None:
        """The stored offset of ``partition`` in ``namespace``, or None."""
        with self._errors(), self._lock:
            row = self._connection.execute(
                "SELECT offset_json FROM source_offsets WHERE namespace = ? AND partition_id = ?",
                (namespace, partition_id(partition)),
            ).fetchone()
        return None if row is None else decode_position_value(row[0])

    def all(self, namespace: str) -> list[Position]:
        """Every position of ``namespace``, ordered by partition."""
        with self._errors(), self._lock:
            rows = self._connection.execute(
                "SELECT partition_json, offset_json FROM source_offsets WHERE namespace = ? "
                "ORDER BY partition_id",
                (namespace,),
            ).fetchall()
        return [
            Position(decode_position_value(partition), decode_position_value(offset))
            for partition, offset in rows
        ]

    def put(self, namespace: str, positions: Iterable[Position]) -> None:
        """Store ``positions`` in one transaction; the last one wins for a repeated partition.

        Raises:
            TypeError: a partition or offset holds a value positions cannot hold (see
                ``position_codec``); nothing is stored.
        """
        now = int(time.time() * 1000)
        rows = [
            (
                namespace,
                partition_id(position.partition),
                encode_position_value(position.partition),
                encode_position_value(position.offset),
                now,
            )
            for position in positions
        ]
        if not rows:
            return
        with self._errors(), self._write() as connection:
            connection.executemany(
                "INSERT INTO source_offsets (namespace, partition_id, partition_json, "
                "offset_json, updated_ms) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (namespace, partition_id) DO UPDATE SET "
                "offset_json = excluded.offset_json, updated_ms = excluded.updated_ms",
                rows,
            )

    def delete(self, namespace: str, partition: Mapping[str, Any] | None = None) -> int:
        """Forget one partition, or every partition of ``namespace``; returns rows removed."""
        with self._errors(), self._write() as connection:
            if partition is None:
                cursor = connection.execute(
                    "DELETE FROM source_offsets WHERE namespace = ?", (namespace,)
                )
            else:
                cursor = connection.execute(
                    "DELETE FROM source_offsets WHERE namespace = ? AND partition_id = ?",
                    (namespace, partition_id(partition)),
                )
            return cursor.rowcount

    def namespaces(self) -> list[str]:
        """Every namespace with at least one stored position, sorted."""
        with self._errors(), self._lock:
            rows = self._connection.execute(
                "SELECT DISTINCT namespace FROM source_offsets ORDER BY namespace"
            ).fetchall()
        return [row[0] for row in rows]

    def export(self, namespace: str) -> list[dict[str, Any]]:
        """The positions of ``namespace`` as JSON-able ``{"partition": ..., "offset": ...}``
        rows (tagged, see ``export_offsets``)."""
        return export_offsets(self, namespace)

    def import_(self, namespace: str, rows: Iterable[Mapping[str, Any]]) -> int:
        """Store exported rows into ``namespace`` in one transaction; returns how many."""
        return import_offsets(self, namespace, rows)

    def close(self) -> None:
        with self._lock:
            self._connection.close()


_FULL = {"SQLITE_FULL"}
_NOT_A_STORE = {"SQLITE_NOTADB", "SQLITE_CORRUPT"}
_READ_ONLY = {"SQLITE_READONLY", "SQLITE_PERM", "SQLITE_AUTH"}


def _describe(error: sqlite3.Error | OSError, path: Path) -> str:
    """What went wrong with the store at ``path``, said so a person can act on it."""
    if isinstance(error, OSError):
        if error.errno == errno.ENOSPC:
            return f"the disk holding {path} is full"
        return f"cannot open the offset store {path}: {error.strerror or error}"
    name = getattr(error, "sqlite_errorname", "")
    if name.startswith(tuple(_FULL)):
        return f"the disk holding {path} is full"
    if name.startswith(tuple(_NOT_A_STORE)):
        return f"{path} is not an offset store (SQLite says: {error})"
    if name.startswith(tuple(_READ_ONLY)):
        return f"cannot write the offset store {path}: {error}"
    if name.startswith("SQLITE_CANTOPEN"):
        return f"cannot open the offset store {path}: {error}"
    return f"offset store {path}: {error}"

"""Locks on local files that other processes see, and that say who holds them.

A lock is an ``flock`` on a file, exclusive (one holder) or shared (any number of holders and
no exclusive one). The kernel drops it when the process dies, even by SIGKILL, so a lock is
never stale, needs no timeout and is immune to pid reuse. A holder writes who it is (pid,
host, command, start time) into the file so that a refusal can name it. ``flock`` locks
belong to an open file, not to a process: two ``FileLock`` objects of one process on one
file exclude each other too.

Where ``fcntl`` is missing (Windows) or the file system cannot lock, ``acquire`` succeeds
and returns False: nothing is checked there.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import time
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

_RECORD_BYTES = 1024
"""Every holder record is padded to this size, so that shared holders writing it in turn
never leave the tail of a longer one behind."""


@dataclass(frozen=True)
class LockHolder:
    """Who holds a lock: written into the lock file, read back by whoever is refused."""

    pid: int
    host: str
    command: str
    since: float
    pipeline: str | None = None

    @classmethod
    def this_process(cls, command: str | None = None, pipeline: str | None = None) -> LockHolder:
        """This process, now. ``command`` defaults to the program's name (``python x.py``)."""
        return cls(os.getpid(), socket.gethostname(), command or _program(), time.time(), pipeline)

    def describe(self) -> str:
        """``pid 1234 on host x, 'omconnect run', since 14:02:11``."""
        started = datetime.fromtimestamp(self.since)
        since = started.strftime("%H:%M:%S" if started.date() == datetime.now().date() else "%c")
        return f"pid {self.pid} on host {self.host}, {self.command!r}, since {since}"

    def to_bytes(self) -> bytes:
        record = asdict(self)
        record["command"] = self.command[:300]
        data = json.dumps(record).encode()[: _RECORD_BYTES - 1]
        return data.ljust(_RECORD_BYTES - 1) + b"\n"

    @classmethod
    def from_bytes(cls, data: bytes) -> LockHolder | None:
        try:
            record = json.loads(data)
            return cls(
                int(record["pid"]),
                str(record["host"]),
                str(record["command"]),
                float(record["since"]),
                record.get("pipeline"),
            )
        except (ValueError, TypeError, KeyError):
            return None


class LockHeldError(Exception):
    """Another holder has the lock (``holder``: who, when its file says so). ``path`` is the
    lock file, or the name of a lock that is not a file (a database's advisory lock)."""

    def __init__(self, path: Path | str, holder: LockHolder | None) -> None:
        described = holder.describe() if holder is not None else "holder unknown"
        super().__init__(f"{path} is locked ({described})")
        self.path = path
        self.holder = holder


class FileLock:
    """An ``flock`` on ``path`` (created with its parent directory when missing)."""

    can_be_lost = False
    """Whether the lock can end under its holder: never, so nobody needs to ask
    ``still_held`` while it is held (a run lock in a database can, see ``PipelineLock``)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self._shared = False

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self, holder: LockHolder | None = None, *, shared: bool = False) -> bool:
        """Take the lock without waiting and write ``holder`` into the file.

        Returns whether the lock is real (False: no ``flock`` here, nothing is excluded).

        Raises:
            LockHeldError: another open file holds it in a conflicting mode.
        """
        if self._fd is not None:
            raise RuntimeError(f"{self.path}: acquired twice")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            if fcntl is None:
                self._fd = fd
                return False
            try:
                fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise LockHeldError(self.path, read_holder(self.path)) from None
            except OSError:
                self._fd = fd  # no flock on this file system: keep the file, check nothing
                return False
            if _same_file(fd, self.path):
                break
            os.close(fd)  # removed (a dead holder's file) before it was locked: lock a new one
        self._fd, self._shared = fd, shared
        if holder is not None:
            os.pwrite(fd, holder.to_bytes(), 0)
        return True

    def still_held(self) -> bool:
        """An ``flock`` is held until released or the process ends: whether it was taken."""
        return self._fd is not None

    def release(self, *, remove: bool = False) -> None:
        """Give the lock up; with ``remove`` delete the file first (only an exclusive holder
        may: a shared one would pull it from under the others). An exclusive holder that
        keeps the file empties it, so that nobody reads its record as a later holder's."""
        if self._fd is None:
            return
        if remove:
            self.path.unlink(missing_ok=True)
        elif not self._shared:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
        os.close(self._fd)
        self._fd = None


def read_holder(path: Path, attempts: int = 10) -> LockHolder | None:
    """Who the file at ``path`` says holds it. A holder writes its record just after taking
    the lock: an empty file is read again a few times before giving up."""
    for attempt in range(attempts):
        try:
            holder = LockHolder.from_bytes(path.read_bytes())
        except OSError:
            return None
        if holder is not None:
            return holder
        if attempt + 1 < attempts:
            time.sleep(0.02)
    return None


def remove_if_unlocked(path: Path) -> bool:
    """Delete ``path`` unless a process holds a lock on it; whether it is gone now (false
    where locks cannot be checked)."""
    if fcntl is None:
        return False
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False  # held (BlockingIOError), or no flock on this file system
    else:
        path.unlink(missing_ok=True)
        return True
    finally:
        os.close(fd)


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.stat(path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        return False


def _program() -> str:
    name = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python"
    return f"python {name}" if name.endswith(".py") else name

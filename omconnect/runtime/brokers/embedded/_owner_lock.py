"""Whether the process that owns a producer or a group member is still alive, across
processes.

An owner is alive while it holds an exclusive ``flock`` on ``<log file>-<kind>/<owner>.lock``:
a transactional producer (kind ``producers``) takes it before its first transaction, a
consumer group member (kind ``members``) before it first joins, and both release it when they
close. The kernel drops the lock when the process dies, even by SIGKILL, and every process
sharing the log runs on the same kernel (WAL mode needs shared memory), so the check is exact
and immune to pid reuse. Without ``fcntl`` (Windows) every owner counts as alive and only the
timeouts (transaction, session) end it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

PRODUCERS: Final = "producers"
MEMBERS: Final = "members"


def _lock_path(log: Path, owner: str, kind: str) -> Path:
    return log.with_name(f"{log.name}-{kind}") / f"{owner}.lock"


class OwnerLock:
    """The lock that tells other processes a producer (or, with ``kind=MEMBERS``, a consumer
    group member) is alive."""

    def __init__(self, log: Path, owner: str, kind: str = PRODUCERS) -> None:
        self._path = _lock_path(log, owner, kind)
        self._fd: int | None = None

    def acquire(self) -> None:
        """Hold the lock until ``release`` or the end of the process, and delete the lock
        files of owners of the same kind that died (a producer without a transaction open, a
        member whose row expired). On a file system without ``flock`` the file alone stays:
        checkers cannot lock it either, so they take the owner for alive and only the timeout
        applies."""
        if fcntl is None or self._fd is not None:
            return
        self._path.parent.mkdir(parents=True, exist_ok=True)
        while self._fd is None:
            fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise
            except OSError:
                pass  # no flock here: keep the file (and the descriptor, closed by release)
            if _same_file(fd, self._path):
                self._fd = fd
            else:
                os.close(fd)  # a sweep removed the file before it was locked: lock a new one
        for path in self._path.parent.glob("*.lock"):
            if path != self._path:
                _remove_if_unlocked(path)

    def release(self) -> None:
        if self._fd is None:
            return
        self._path.unlink(missing_ok=True)
        os.close(self._fd)
        self._fd = None


def owner_is_alive(log: Path, owner: str, kind: str = PRODUCERS) -> bool:
    """Whether ``owner`` still holds its lock (always true where there are no locks); deletes
    the lock file of a dead owner.

    A missing file means a dead owner: the lock is taken before the owner's first row (an open
    transaction, a group member) is written, and only the owner's own ``release`` or a dead
    owner's checker deletes it. One ``open`` and one ``flock`` attempt.
    """
    if fcntl is None:
        return True
    return not _remove_if_unlocked(_lock_path(log, owner, kind))


def _remove_if_unlocked(path: Path) -> bool:
    """Delete ``path`` unless a process holds its lock; whether it is gone now."""
    assert fcntl is not None
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

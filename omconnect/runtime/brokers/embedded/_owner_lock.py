"""Whether the process that owns a producer or a group member is still alive, across
processes.

An owner is alive while it holds an exclusive lock (``runtime.file_lock``) on
``<log file>-<kind>/<owner>.lock``: a transactional producer (kind ``producers``) takes it
before its first transaction, a consumer group member (kind ``members``) before it first
joins, and both release it when they close. The kernel drops the lock when the process dies,
even by SIGKILL, and every process sharing the log runs on the same kernel (WAL mode needs
shared memory), so the check is exact and immune to pid reuse. Without ``fcntl`` (Windows)
every owner counts as alive and only the timeouts (transaction, session) end it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from omconnect.runtime.file_lock import FileLock, remove_if_unlocked

PRODUCERS: Final = "producers"
MEMBERS: Final = "members"


def _lock_path(log: Path, owner: str, kind: str) -> Path:
    return log.with_name(f"{log.name}-{kind}") / f"{owner}.lock"


class OwnerLock:
    """The lock that tells other processes a producer (or, with ``kind=MEMBERS``, a consumer
    group member) is alive."""

    def __init__(self, log: Path, owner: str, kind: str = PRODUCERS) -> None:
        self._lock = FileLock(_lock_path(log, owner, kind))

    def acquire(self) -> None:
        """Hold the lock until ``release`` or the end of the process, and delete the lock
        files of owners of the same kind that died (a producer without a transaction open, a
        member whose row expired). On a file system without ``flock`` the file alone stays:
        checkers cannot lock it either, so they take the owner for alive and only the timeout
        applies.

        Raises:
            LockHeldError: another open file holds this owner's lock (owner ids are unique).
        """
        if self._lock.held:
            return
        if not self._lock.acquire():
            return
        for path in self._lock.path.parent.glob("*.lock"):
            if path != self._lock.path:
                remove_if_unlocked(path)

    def release(self) -> None:
        self._lock.release(remove=True)


def owner_is_alive(log: Path, owner: str, kind: str = PRODUCERS) -> bool:
    """Whether ``owner`` still holds its lock (always true where there are no locks); deletes
    the lock file of a dead owner.

    A missing file means a dead owner: the lock is taken before the owner's first row (an open
    transaction, a group member) is written, and only the owner's own ``release`` or a dead
    owner's checker deletes it. One ``open`` and one ``flock`` attempt.
    """
    return not remove_if_unlocked(_lock_path(log, owner, kind))

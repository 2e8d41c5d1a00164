"""One runner per pipeline, and one pipeline per sink directory.

A run holds its pipeline's lock (the state backend's ``pipeline_lock``: the ``flock`` file
``STATE/locks/<pipeline>.lock`` of a state directory, an advisory lock in a Postgres state)
from before it opens the broker until everything is closed and committed: exclusively when the
pipeline has a source (a second runner would read and publish every record again), shared when
it only sinks topics (members of one consumer group split the partitions: that is how such a
pipeline scales out). A lock that can end under its holder (an advisory lock ends with its
database session) is checked every ``LOCK_CHECK_SECONDS`` while the run lasts, and the run
stops at once when it is gone (``PipelineLockLostError``); a file lock cannot end so and is
never checked (``PipelineLock.can_be_lost``). A second runner is refused with
``PipelineRunningError``, naming the holder. Commands that change stored positions take the
lock exclusively while they work, so they are refused while the pipeline runs, as Kafka Connect
refuses to alter a running connector's offsets.

A sink that writes files claims its directory (``TaskContext.claim_directory``): the run takes
an exclusive lock on ``DIR/.omconnect.lock`` (hidden, so file sources skip it) and keeps it
until the run ends, so two pipelines, or two runs of one, never write one directory at once.
These locks end with their holder: a killed runner leaves none behind.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from contextlib import contextmanager
from pathlib import Path

from omconnect.connectors.api.errors import ConnectorError
from omconnect.runtime.file_lock import FileLock, LockHeldError, LockHolder
from omconnect.runtime.state.backends import RunLock, open_state

SINK_DIRECTORY_LOCK = ".omconnect.lock"
LOCK_CHECK_SECONDS = 5.0
"""How often a run asks whether its lock is still held (a query on a Postgres state)."""


class PipelineRunningError(Exception):
    """The pipeline is running elsewhere; the message says where and what to do.

    Attributes:
        holder: who runs it (``pid 1234 on host x, 'omconnect run', since 14:02:11``).
    """

    def __init__(self, message: str, holder: str) -> None:
        super().__init__(message)
        self.holder = holder


class PipelineLockLostError(Exception):
    """A running pipeline's lock ended under it; the message says why and what to do."""


class PipelineLock:
    """The lock a run of ``pipeline`` holds in its ``state:`` (the backend's
    ``pipeline_lock``); with ``tasks``, the lock of a run of some of its source's tasks
    (none: a run of its sink alone).

    A run of some tasks (an orchestrator's mapped task, one split of the source) shares the
    pipeline's lock with the runs of its other tasks and holds the lock of each of its own
    tasks alone (``<pipeline>#task-<i>``: ``#`` is in no pipeline name), so runs of
    different tasks go side by side, a task runs once at a time, and a run of the whole
    pipeline excludes them all.
    """

    def __init__(self, state: str, pipeline: str, tasks: Collection[int] | None = None) -> None:
        self.pipeline = pipeline
        backend = open_state(state)
        self._lock = backend.pipeline_lock(pipeline)
        self._some_tasks = tasks is not None
        self._task_locks = [
            (task, backend.pipeline_lock(f"{pipeline}#task-{task}")) for task in sorted(tasks or ())
        ]
        self._taken: list[RunLock] = []

    def acquire(self, command: str | None = None, *, shared: bool = False) -> None:
        """Take the lock until ``release``; ``command`` names this process to whoever is
        refused (``omconnect run``).

        Raises:
            PipelineRunningError: another process runs the pipeline (or, ``shared``, runs it
                exclusively), or one of ``tasks``.
            OffsetStoreError: the state holding the lock cannot be reached (a database).
        """
        holder = LockHolder.this_process(command, self.pipeline)
        try:
            self._take(self._lock, holder, shared or self._some_tasks, "")
            for task, lock in self._task_locks:
                self._take(lock, holder, False, f"task {task} of ")
        except BaseException:
            self.release()
            raise

    def _take(self, lock: RunLock, holder: LockHolder, shared: bool, what: str) -> None:
        try:
            lock.acquire(holder, shared=shared)
        except LockHeldError as held:
            who = _who(held)
            raise PipelineRunningError(
                f"{what}pipeline {self.pipeline!r} is already running ({who}); stop it first", who
            ) from None
        self._taken.append(lock)

    @property
    def can_be_lost(self) -> bool:
        """Whether a lock taken can end under the run, so that the run must ``check`` it:
        an advisory lock in a database can (its session ends), an ``flock`` cannot. A lock
        that does not say (no ``can_be_lost`` attribute) counts as one that can."""
        return any(getattr(lock, "can_be_lost", True) for lock in self._taken)

    def check(self) -> None:
        """Raise ``PipelineLockLostError`` when the lock is no longer held.

        Raises:
            PipelineLockLostError: the lock ended under the run (its database session).
        """
        if not all(lock.still_held() for lock in self._taken):
            raise PipelineLockLostError(
                f"pipeline {self.pipeline!r} lost its run lock: the state database ended the "
                "session holding it (a restart, a dropped connection, or an administrator), so "
                "another worker may run the pipeline now; this run stopped without committing "
                "more positions. Start it again once the state database is back"
            )

    def release(self) -> None:
        while self._taken:
            self._taken.pop().release()


@contextmanager
def pipeline_stopped(state: str, pipeline: str, command: str) -> Iterator[None]:
    """Hold ``pipeline``'s lock exclusively for a change of its stored positions.

    Raises:
        PipelineRunningError: the pipeline runs now.
    """
    lock = PipelineLock(state, pipeline)
    try:
        lock.acquire(command)
    except PipelineRunningError as running:
        raise PipelineRunningError(
            f"pipeline {pipeline!r} is running ({running.holder}); "
            "stop it before changing its offsets",
            running.holder,
        ) from None
    try:
        yield
    finally:
        lock.release()


class DirectoryClaims:
    """The sink directories one run of ``pipeline`` holds; ``claim`` is what the run gives
    its tasks as ``TaskContext.on_claim_directory``."""

    def __init__(self, pipeline: str, command: str | None = None) -> None:
        self.pipeline = pipeline
        self.command = command
        self._locks: dict[Path, FileLock] = {}

    def claim(self, directory: Path) -> bool:
        """Lock ``directory`` (which exists) for this run; whether the lock is real (False:
        the file system cannot lock, other writers are not excluded).

        Raises:
            ConnectorError: another pipeline, or another run of this one, writes there.
        """
        key = directory.resolve()
        lock = self._locks.get(key)
        if lock is not None:
            return True
        lock = FileLock(key / SINK_DIRECTORY_LOCK)
        try:
            locked = lock.acquire(LockHolder.this_process(self.command, self.pipeline))
        except LockHeldError as held:
            holder = held.holder
            if holder is not None and holder.pipeline == self.pipeline:
                writer = f"another run of pipeline {self.pipeline!r}"
            elif holder is not None and holder.pipeline is not None:
                writer = f"pipeline {holder.pipeline!r}"
            else:
                writer = "another process"
            raise ConnectorError(
                f"{directory}: {writer} already writes into this directory ({_who(held)}); "
                "give each pipeline a sink path of its own"
            ) from None
        self._locks[key] = lock
        return locked

    def release(self) -> None:
        """Give every directory up (the run has ended; its tasks have stopped)."""
        for lock in self._locks.values():
            lock.release()
        self._locks.clear()


def _who(held: LockHeldError) -> str:
    return held.holder.describe() if held.holder is not None else "holder unknown"

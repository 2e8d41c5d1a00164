"""How far a scheduled pipeline's ticks were handled, kept in its ``state:`` across restarts.

``serve`` records a moment before which every tick of the pipeline was run (or skipped on
purpose): the tick (the cron time, not the moment the run started) before each scheduled run,
the start time when the pipeline is first served, the resume time after a pause. After a
restart of serve, the ticks after it are the ones missed while it was down
(``schedule.catchup``). The state's ``ScheduleProgressStore`` keeps it: a directory state in
``STATE/schedules/<pipeline>.json``, a ``postgresql://`` state in its ``schedule_progress``
table, so a worker on another machine sharing the state catches up from it too.

Reads and writes may block (a database round trip): the schedule loop calls them in a worker
thread. A store that cannot be reached costs the record, never the schedule: the failure is
logged and the moment kept in memory.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

from omconnect.runtime.config.loader import LoadedPipeline
from omconnect.runtime.state import ScheduleProgressStore, open_state
from omconnect.runtime.state.offsets import OffsetStoreError

log = logging.getLogger("omconnect.serve")

T = TypeVar("T")


class ScheduleProgress:
    """How far the pipeline ``name``'s ticks were handled: in ``store`` when given, or in the
    store ``open_store`` opens for each read or write (and closes after, so that a database
    session is held only for the round trip), else in memory only."""

    def __init__(
        self,
        store: ScheduleProgressStore | None,
        name: str = "",
        open_store: Callable[[], ScheduleProgressStore] | None = None,
    ) -> None:
        self.name = name
        self._store = store
        self._open_store = open_store
        self._tick: datetime | None = None
        self._read = store is None and open_store is None

    @classmethod
    def of(cls, loaded: LoadedPipeline) -> ScheduleProgress:
        """The record in the pipeline's own state; connects to nothing until first used."""
        try:
            state = open_state(loaded.config.state)
        except Exception:  # an unsupported or unreachable state: the run itself will say so
            return cls(None)
        return cls(None, loaded.config.name, state.open_schedule_progress)

    def caught_up_to(self) -> datetime | None:
        """The recorded moment (timezone-aware), or None if the pipeline was never served
        (or its state cannot be read: logged)."""
        if not self._read:
            self._read = True
            self._tick = self._use("read", lambda store: store.get(self.name))
        return self._tick

    def advance(self, moment: datetime) -> None:
        """Record ``moment``; a write that fails is logged, and the moment kept in memory."""
        self._tick, self._read = moment, True
        self._use("record", lambda store: store.put(self.name, moment))

    def _use(self, what: str, action: Callable[[ScheduleProgressStore], T]) -> T | None:
        """``action`` on the store; None, and a warning, when the state fails it."""
        try:
            if self._store is not None:
                return action(self._store)
            if self._open_store is None:
                return None
            store = self._open_store()
            try:
                return action(store)
            finally:
                store.close()
        except OffsetStoreError as error:
            log.warning(
                "pipeline %s: cannot %s the schedule's progress: %s", self.name, what, error
            )
            return None

"""How far a scheduled pipeline's ticks were handled, kept in its ``state:`` across restarts.

``serve`` records a moment before which every tick of the pipeline was run (or skipped on
purpose): the tick (the cron time, not the moment the run started) before each scheduled run,
the start time when the pipeline is first served, the resume time after a pause. After a
restart of serve, the ticks after it are the ones missed while it was down
(``schedule.catchup``). A directory state keeps it in ``STATE/schedules/<pipeline>.json``,
written atomically; a ``postgresql://`` state has no table for it yet, so there it lives in
memory and a restart of serve does not catch up what passed while it was down.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import datetime
from pathlib import Path

from omconnect.runtime.config.loader import LoadedPipeline
from omconnect.runtime.state import DirectoryState, open_state

log = logging.getLogger("omconnect.serve")

SCHEDULES_DIRECTORY = "schedules"


class ScheduleProgress:
    """How far one pipeline's ticks were handled; in ``path`` when given, else in memory."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._tick: datetime | None = None
        self._read = path is None

    @classmethod
    def of(cls, loaded: LoadedPipeline) -> ScheduleProgress:
        """The record in the pipeline's own state (in memory for a non-directory state)."""
        try:
            state = open_state(loaded.config.state)
        except Exception:  # an unsupported or unreachable state: the run itself will say so
            return cls(None)
        if not isinstance(state, DirectoryState):
            return cls(None)
        return cls(state.directory / SCHEDULES_DIRECTORY / f"{loaded.config.name}.json")

    def caught_up_to(self) -> datetime | None:
        """The recorded moment (timezone-aware), or None if the pipeline was never served."""
        if not self._read:
            self._read = True
            self._tick = self._load()
        return self._tick

    def advance(self, moment: datetime) -> None:
        """Record ``moment``; a write that fails is logged, and the moment kept in memory."""
        self._tick, self._read = moment, True
        if self.path is None:
            return
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            temporary.write_text(json.dumps({"caught_up_to": moment.isoformat()}) + "\n")
            os.replace(temporary, self.path)
        except OSError as error:
            log.warning("cannot record the schedule's progress in %s: %s", self.path, error)

    def _load(self) -> datetime | None:
        assert self.path is not None
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return None
        except OSError as error:
            log.warning("cannot read the schedule's progress from %s: %s", self.path, error)
            return None
        try:
            tick = datetime.fromisoformat(json.loads(text)["caught_up_to"])
        except (ValueError, KeyError, TypeError):
            log.warning("%s is not a schedule progress record: ignoring it", self.path)
            return None
        return tick if tick.tzinfo is not None else None

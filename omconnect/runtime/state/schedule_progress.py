"""How far each scheduled pipeline's ticks were handled, kept in its state so that a restarted
``omconnect serve`` catches up from there (``serve.schedule_state`` decides what to record).

``ScheduleProgressStore`` is the contract: ``get(pipeline)`` the recorded moment (timezone-
aware) or None, ``put(pipeline, moment)`` records one. A directory state keeps one small JSON
file per pipeline, ``STATE/schedules/<pipeline>.json``, replaced atomically
(``DirectoryScheduleProgress``); a ``postgresql://`` state keeps a row per pipeline in its
``schedule_progress`` table (``postgres.PostgresScheduleProgress``), shared by every worker.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import datetime
from pathlib import Path
from typing import Protocol

from omconnect.runtime.state.offsets import OffsetStoreError

log = logging.getLogger("omconnect.state")

SCHEDULES_DIRECTORY = "schedules"


class ScheduleProgressStore(Protocol):
    """The moment up to which each pipeline's ticks were handled."""

    def get(self, pipeline: str) -> datetime | None:
        """The recorded moment of ``pipeline`` (timezone-aware), None when there is none.

        Raises:
            OffsetStoreError: the state cannot be read.
        """
        ...

    def put(self, pipeline: str, moment: datetime) -> None:
        """Record ``moment`` (timezone-aware) for ``pipeline``, durably.

        Raises:
            OffsetStoreError: the state cannot be written.
        """
        ...

    def close(self) -> None:
        """Release what the store holds (a database session); idempotent."""
        ...


class DirectoryScheduleProgress:
    """``directory/<pipeline>.json`` per pipeline: ``{"caught_up_to": ISO 8601}``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def get(self, pipeline: str) -> datetime | None:
        path = self._path(pipeline)
        try:
            text = path.read_text()
        except FileNotFoundError:
            return None
        except OSError as error:
            raise OffsetStoreError(f"cannot read {path}: {error.strerror or error}") from None
        try:
            moment = datetime.fromisoformat(json.loads(text)["caught_up_to"])
        except (ValueError, KeyError, TypeError):
            log.warning("%s is not a schedule progress record: ignoring it", path)
            return None
        return moment if moment.tzinfo is not None else None

    def put(self, pipeline: str, moment: datetime) -> None:
        path = self._path(pipeline)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            temporary.write_text(json.dumps({"caught_up_to": moment.isoformat()}) + "\n")
            os.replace(temporary, path)
        except OSError as error:
            temporary.unlink(missing_ok=True)
            raise OffsetStoreError(f"cannot write {path}: {error.strerror or error}") from None

    def close(self) -> None:
        pass

    def _path(self, pipeline: str) -> Path:
        return self.directory / f"{pipeline}.json"

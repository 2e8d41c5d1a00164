"""What a task may ask of the runtime: its last positions, the error reporter, its identity."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from omconnect.connectors.api.errors import ErrorReporter


class OffsetReader(Protocol):
    """Reads the offsets committed for this pipeline. Read-only: the runtime writes them."""

    def get(self, partition: Mapping[str, Any]) -> Mapping[str, Any] | None:
        """The last committed offset of ``partition``, or None when it has none."""
        ...

    def all(self) -> list[tuple[Mapping[str, Any], Mapping[str, Any]]]:
        """Every (partition, offset) pair committed for this pipeline."""
        ...


@dataclass
class TaskContext:
    """Handed to ``start``. ``once`` is true under ``omconnect run --once``: a source should
    read what is there now and then return None from ``poll``."""

    pipeline: str
    task_id: int
    offsets: OffsetReader
    errors: ErrorReporter
    once: bool = False
    logger: logging.Logger = field(default_factory=lambda: logging.getLogger("omconnect.task"))
    on_commit_request: Callable[[], None] | None = field(default=None, repr=False)
    on_claim_directory: Callable[[Path], bool] | None = field(default=None, repr=False)

    def request_commit(self) -> None:
        """Ask the runtime to flush and commit soon rather than at the next interval (a sink
        that just finished a file). Safe to call from the task's thread."""
        if self.on_commit_request is not None:
            self.on_commit_request()

    def claim_directory(self, directory: Path) -> bool:
        """Make ``directory`` (a local directory this task writes files into, existing) this
        run's alone until the run ends: no other pipeline, and no other run of this one,
        writes there meanwhile. Call it from ``start``.

        Returns whether other writers are excluded: true when the runtime holds a lock on
        the directory, and when no runtime is there to ask (a test driving the task alone);
        false on a file system without locks. Only a task whose writers are excluded may
        delete files it did not write itself.

        Raises:
            ConnectorError: another pipeline or another run writes into ``directory``; the
                message names it. Not retried.
        """
        if self.on_claim_directory is None:
            return True
        return self.on_claim_directory(directory)

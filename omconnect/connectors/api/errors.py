"""Errors a connector raises, and the reporter that sends poison records to a dead letter topic."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from omconnect.schemas.record import RecordBatch


class ConnectorError(Exception):
    """A failure the runtime should not retry: the task stops (or, for one record, the record
    goes to the dead letter topic when ``errors.tolerance`` is ``all``)."""


class RetriableError(ConnectorError):
    """A transient failure (a dropped connection, a lock timeout). The runtime calls the same
    method again with exponential backoff until ``errors.retry_timeout`` runs out."""


class ConfigError(ConnectorError):
    """A connector's configuration is invalid. ``key`` is the dotted option path, if known."""

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


class ErrorReporter(Protocol):
    """Sends records that cannot be processed to the dead letter topic.

    A sink calls ``report`` from ``put`` for the rows it could not write and returns normally;
    a source calls ``report_raw`` for data it read but could not turn into rows (a ragged CSV
    line, a file that cannot be parsed) and reads on. The runtime delivers a report before it
    commits the positions that cover it. With ``errors.tolerance: none`` reporting fails the
    task instead (``report`` and ``report_raw`` raise; the runtime commits what was delivered
    before and stops).

    A sink that stores its own positions and finds rows it cannot write only in ``flush``
    (the database refused them) reports them there and calls ``delivered`` before it commits
    positions that cover them.
    """

    def report(
        self, batch: RecordBatch, rows: Sequence[int], error: BaseException, stage: str
    ) -> None: ...

    def report_raw(
        self,
        payloads: Sequence[bytes],
        error: BaseException | Sequence[BaseException],
        where: Mapping[str, Any] | Sequence[Mapping[str, Any]],
        stage: str = "read",
    ) -> None:
        """Dead-letter source data as it was read, one message per payload: ``error`` (one
        for all, or one per payload) gives the reason, ``where`` where it was found (for a file
        ``{"file": ..., "line": ...}``; one for all, or one per payload)."""
        ...

    def delivered(self) -> None:
        """Block until every report made so far is stored in the dead letter topic (from the
        task's thread, never the event loop's). Raises when one could not be stored."""
        ...


def per_payload(value: Any, count: int) -> list[Any]:
    """``report_raw``'s ``error`` or ``where`` as one item per payload (a single one is
    repeated)."""
    if isinstance(value, (BaseException, Mapping)):
        return [value] * count
    items = list(value)
    if len(items) != count:
        raise ValueError(f"report_raw got {len(items)} reasons or places for {count} payloads")
    return items

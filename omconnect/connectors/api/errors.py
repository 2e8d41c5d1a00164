"""Errors a connector raises, and the reporter that sends poison records to a dead letter topic."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

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
    the runtime delivers the report before it commits the positions that cover those rows.
    With ``errors.tolerance: none`` reporting a row fails the task instead.
    """

    def report(
        self, batch: RecordBatch, rows: Sequence[int], error: BaseException, stage: str
    ) -> None: ...

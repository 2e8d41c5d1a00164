"""Transforms: a batch in, a batch out, declared in a pipeline's ``transforms:`` list."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import ClassVar

from omconnect.connectors.api.errors import ConnectorError
from omconnect.connectors.api.spec import ConnectorSpec
from omconnect.schemas.record import RecordBatch
from omconnect.schemas.schema import Schema


class Transform(ABC):
    """Turns a batch into another. Called on the worker thread that converts the batch.

    Row-dropping transforms use ``RecordBatch.filter`` so positions stay covered. A transform
    that changes columns must also return the matching schema. ``TransformRowErrors`` sends
    the rows it names to the dead letter topic (stage ``transform``) and the rest on; any
    other exception but ``RetriableError`` sends all of the batch's rows there.
    """

    name: ClassVar[str]
    spec: ClassVar[type[ConnectorSpec]]
    description: ClassVar[str] = ""

    def __init__(self, config: ConnectorSpec) -> None:
        self.config = config

    def check(self, schema: Schema) -> None:  # noqa: B027 - optional hook
        """Refuse a schema this transform cannot apply to (raise ``ConfigError``)."""

    @abstractmethod
    def apply(self, batch: RecordBatch) -> RecordBatch | list[RecordBatch]:
        """The batch transformed; or a list of batches, to route rows to several streams or
        topics (``RecordBatch.stream`` / ``topic``). The input's positions are committed once
        every returned batch is acknowledged, whatever marks the outputs carry."""


class TransformRowErrors(ConnectorError):
    """Raised by ``Transform.apply`` when some rows cannot be transformed but the rest can.

    The runtime sends ``rows`` of the batch it passed to ``apply`` to the dead letter topic
    (stage ``transform``, each with its reason) and carries on with ``good``, the transformed
    batch of every other row. Build ``good`` with ``RecordBatch.filter``, so its positions
    still cover the failed rows: once ``good`` is delivered and the dead letters are written,
    those positions can be committed.

    Attributes:
        rows: index of a failed row in the input batch -> why it failed (a message or an
            exception; the dead letter's error header says it).
        good: the transformed batch of the rows that did not fail.
    """

    def __init__(self, rows: Mapping[int, str | BaseException], good: RecordBatch) -> None:
        if not rows:
            raise ValueError("TransformRowErrors needs at least one failed row")
        first = min(rows)
        super().__init__(f"{len(rows)} row(s) failed; first, row {first}: {rows[first]}")
        self.rows = dict(rows)
        self.good = good

    def failures(self) -> dict[int, BaseException]:
        """Each failed row with its reason as an exception, as a dead letter reporter takes
        them: a message becomes a ``ValueError``; an empty one, this error."""
        return {row: self._as_error(reason) for row, reason in self.rows.items()}

    def _as_error(self, reason: str | BaseException) -> BaseException:
        if isinstance(reason, BaseException):
            return reason
        return ValueError(reason) if reason else self

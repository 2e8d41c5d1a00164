"""Transforms: a batch in, a batch out, declared in a pipeline's ``transforms:`` list."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

from omconnect.connectors.api.spec import ConnectorSpec
from omconnect.schemas.record import RecordBatch
from omconnect.schemas.schema import Schema


class Transform(ABC):
    """Turns a batch into another. Called on the worker thread that converts the batch.

    Row-dropping transforms use ``RecordBatch.filter`` so positions stay covered. A transform
    that changes columns must also return the matching schema. Exceptions other than
    ``RetriableError`` send the batch's rows to the dead letter topic (stage ``transform``).
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

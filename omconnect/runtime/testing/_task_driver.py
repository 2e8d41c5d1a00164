"""Driving connector tasks the way the runtime does, without a broker: build the connector from
its registered name and a config dict, validate it, start a task, poll or put, stop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from omconnect.connectors.api import (
    AsyncSourceTask,
    ConnectorSpec,
    Position,
    RecordBatch,
    SinkConnector,
    SinkTask,
    SourceConnector,
    SourceTask,
    TaskContext,
    lookup,
)
from omconnect.runtime.testing._memory_offsets import CollectingErrorReporter, MemoryOffsetReader

# A source that never returns None under ``once`` would hang a test: stop it after this.
MAX_POLLS = 100_000


def spec_class(kind: Literal["source", "sink"], name: str) -> type[ConnectorSpec]:
    """The registered config spec of the ``kind`` called ``name``."""
    return lookup(kind, name).spec


class SourceDriver:
    """One source task, started from ``config`` with ``offsets`` (sync and async tasks alike)."""

    def __init__(
        self,
        name: str,
        config: Mapping[str, Any],
        offsets: MemoryOffsetReader | None = None,
        once: bool = True,
    ) -> None:
        registration = lookup("source", name)
        spec = registration.spec.model_validate(dict(config))
        connector = registration.cls(spec)
        assert isinstance(connector, SourceConnector)
        connector.validate()
        self.offsets = offsets if offsets is not None else MemoryOffsetReader()
        self.errors = CollectingErrorReporter()
        self.context = TaskContext(
            pipeline="conformance",
            task_id=0,
            offsets=self.offsets,
            errors=self.errors,
            once=once,
            logger=logging.getLogger("omconnect.testing"),
        )
        task_config = connector.task_configs(1)[0]
        self.task: SourceTask | AsyncSourceTask = connector.task_class()
        self._loop = asyncio.new_event_loop() if isinstance(self.task, AsyncSourceTask) else None
        self._call(self.task.start(task_config, self.context))

    def poll(self) -> list[RecordBatch] | None:
        """One poll, as batches (a list of records is grouped into batches), or None."""
        result = self._call(self.task.poll())
        if result is None:
            return None
        if isinstance(result, RecordBatch):
            return [result]
        return RecordBatch.from_records(result)

    def read_to_end(self) -> list[RecordBatch]:
        """Every batch until the task returns None (run under ``once``)."""
        batches: list[RecordBatch] = []
        for _ in range(MAX_POLLS):
            polled = self.poll()
            if polled is None:
                return batches
            batches.extend(polled)
        raise AssertionError(f"the source still returned data after {MAX_POLLS} polls")

    def commit(self, positions: Sequence[Position]) -> None:
        """Store ``positions`` and tell the task, as the runtime does after broker acks."""
        self.offsets.commit(positions)
        self._call(self.task.commit(positions))

    def stop(self) -> None:
        self._call(self.task.stop())
        if self._loop is not None:
            self._loop.close()

    def _call(self, result: Any) -> Any:
        if self._loop is not None:
            return self._loop.run_until_complete(result)
        return result


class SinkDriver:
    """One sink task started from ``config``."""

    def __init__(self, name: str, config: Mapping[str, Any]) -> None:
        registration = lookup("sink", name)
        spec = registration.spec.model_validate(dict(config))
        connector = registration.cls(spec)
        assert isinstance(connector, SinkConnector)
        connector.validate()
        self.errors = CollectingErrorReporter()
        self.context = TaskContext(
            pipeline="conformance",
            task_id=0,
            offsets=MemoryOffsetReader(),
            errors=self.errors,
            logger=logging.getLogger("omconnect.testing"),
        )
        self.task: SinkTask = connector.task_class()
        self.task.start(connector.task_configs(1)[0], self.context)

    def put_all(self, batches: Sequence[RecordBatch]) -> None:
        for batch in batches:
            self.task.put(batch)

    def flush(self, batches: Sequence[RecordBatch] = ()) -> None:
        """Flush, passing the last positions of ``batches`` like the runtime does."""
        last: dict[str, Position] = {}
        for batch in batches:
            for position in batch.positions:
                last[repr(sorted(position.partition.items()))] = position
        self.task.flush(list(last.values()))

    def stop(self) -> None:
        self.task.stop()

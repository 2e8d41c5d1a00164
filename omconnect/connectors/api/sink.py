"""Sink connectors: write record batches read from a topic into an external system.

Lifecycle:

1. ``SinkConnector(config)``, ``validate()``, ``task_configs(max_tasks)`` as for sources.
2. ``start(config, context)`` once per task.
3. ``put(batch)`` for each batch consumed, in topic-partition order. Its marks name the broker
   position: partition ``{"topic": t, "partition": p}``, offset ``{"offset": n}`` meaning
   "every message before n". ``put`` may buffer; rows it cannot write go to
   ``context.errors.report(...)``.
4. ``flush(positions)`` must make everything put so far durable (and visible). Only after it
   returns does the runtime commit ``positions`` to the consumer group.
   A sink with ``stores_positions = True`` writes the positions inside its own transaction in
   ``flush`` and returns them from ``stored_positions()`` on start: the runtime then seeks there
   and delivery is exactly-once.
5. ``stop()`` once, also after a failure; it must not flush.

Sync sinks run in a worker thread; ``RetriableError`` from ``put``/``flush`` is retried.
Writes must be idempotent under replay: after a crash the runtime redelivers everything
after the last committed position.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import ClassVar

from omconnect.connectors.api.context import TaskContext
from omconnect.connectors.api.spec import ConnectorSpec
from omconnect.schemas.record import Position, RecordBatch


class SinkTask(ABC):
    """Writes one share of a topic's partitions. See the module docstring for the lifecycle."""

    stores_positions: ClassVar[bool] = False

    @abstractmethod
    def start(self, config: ConnectorSpec, context: TaskContext) -> None: ...

    @abstractmethod
    def put(self, batch: RecordBatch) -> None:
        """Accept rows; may buffer until ``flush``."""

    @abstractmethod
    def flush(self, positions: Sequence[Position]) -> None:
        """Make everything put so far durable."""

    def stored_positions(self) -> list[Position]:
        """Positions the sink committed itself (only with ``stores_positions``)."""
        return []

    @abstractmethod
    def stop(self) -> None: ...


class SinkConnector(ABC):
    """A registered sink: its name, its spec, and how it splits work into tasks."""

    name: ClassVar[str]
    spec: ClassVar[type[ConnectorSpec]]
    task_class: ClassVar[type[SinkTask]]
    description: ClassVar[str] = ""

    def __init__(self, config: ConnectorSpec) -> None:
        self.config = config

    def validate(self) -> None:  # noqa: B027 - optional hook
        """Check the config against the target; raise ``ConfigError`` naming the option."""

    def task_configs(self, max_tasks: int) -> list[ConnectorSpec]:
        return [self.config]

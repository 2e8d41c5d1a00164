"""Sink connectors: write record batches read from topics into an external system.

The shape is Kafka Connect's ``SinkTask``. Lifecycle:

1. ``SinkConnector(config)``, ``validate()``, ``task_configs(max_tasks)`` as for sources.
2. ``start(config, context)`` once per task.
3. ``open(partitions)`` when the consumer group gives the task topic partitions (the first
   assignment included), ``close(partitions)`` when it takes them away (a rebalance, or the
   end of the run). After ``close`` the task must drop whatever it buffered for them without
   making it durable: the runtime has already flushed and committed what it could, and another
   task now owns them. A sink that writes per partition (a file per partition, an S3 upload)
   opens and finishes its writers here.
4. ``put(batch)`` for each batch consumed, in topic-partition order. ``batch.topic`` and
   ``batch.partition`` say where it was read from; its marks name the broker position:
   partition ``{"topic": t, "partition": p}``, offset ``{"offset": n}`` meaning "every message
   before n". Rows where ``batch.delete_mask()`` is true are deletes (tombstones): a key and
   no value. ``put`` may buffer; rows it cannot write go to ``context.errors.report(...)``.
   ``context.request_commit()`` asks for a flush and commit soon (after a file was rolled).
5. ``flush(positions)``: make what was put durable, as far as the sink wants to now, and
   return the positions that are durable (Kafka Connect's ``preCommit``): the runtime commits
   only those to the consumer group. Returning None means "all of ``positions``". A sink that
   uploads whole files returns the position of the last row of the last uploaded file.
   A sink with ``stores_positions = True`` writes the positions inside its own transaction in
   ``flush`` and returns them from ``stored_positions()``: the runtime seeks there on start and
   on assignment, and delivery is exactly-once. When such a flush fails (its transaction rolled
   back) the runtime rewinds to ``stored_positions()`` and delivers the rows again.
6. ``stop()`` once, also after a failure; it must not flush.

Sync sinks run on one worker thread of their own; ``RetriableError`` from ``put`` is retried,
from ``flush`` it is retried for a sink that keeps its buffer, and turned into a rewind for a
sink with ``stores_positions``. Writes must be idempotent under replay: after a crash the
runtime redelivers everything after the last committed position.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import ClassVar, NamedTuple

from omconnect.connectors.api.context import TaskContext
from omconnect.connectors.api.spec import ConnectorSpec
from omconnect.schemas.record import Position, RecordBatch


class TopicPartition(NamedTuple):
    """One partition of one topic, as assigned to a sink task."""

    topic: str
    partition: int


class SinkTask(ABC):
    """Writes one share of a topic's partitions. See the module docstring for the lifecycle."""

    stores_positions: ClassVar[bool] = False

    @abstractmethod
    def start(self, config: ConnectorSpec, context: TaskContext) -> None: ...

    def open(self, partitions: Sequence[TopicPartition]) -> None:  # noqa: B027 - optional
        """The task now owns ``partitions``; batches of them follow."""

    def close(self, partitions: Sequence[TopicPartition]) -> None:  # noqa: B027 - optional
        """The task no longer owns ``partitions``: drop what is buffered for them."""

    @abstractmethod
    def put(self, batch: RecordBatch) -> None:
        """Accept rows; may buffer until ``flush``."""

    @abstractmethod
    def flush(self, positions: Sequence[Position]) -> Sequence[Position] | None:
        """Make what was put durable; return the positions that now are (None: all of
        ``positions``)."""

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

"""What the loops of one pipeline run share (their settings, the converter, the dead letter
queue, the counters, the topics), and what each loop's task needs."""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from omconnect.connectors.api.context import TaskContext
from omconnect.connectors.api.sink import SinkTask
from omconnect.connectors.api.source import AsyncSourceTask, SourceTask
from omconnect.connectors.api.spec import ConnectorSpec
from omconnect.connectors.api.transform import Transform
from omconnect.runtime.brokers.base import Broker, Capabilities, TopicSettings
from omconnect.runtime.converters.base import Converter
from omconnect.runtime.worker.dead_letter import DeadLetterQueue
from omconnect.runtime.worker.metrics import PipelineMetrics
from omconnect.runtime.worker.published_batches import PublishedBatches
from omconnect.runtime.worker.task_thread import TaskThread
from omconnect.runtime.worker.waiting import retrying

SourceTaskType = SourceTask | AsyncSourceTask
TaskT = TypeVar("TaskT", SourceTask | AsyncSourceTask, SinkTask)


@dataclass(frozen=True)
class LoopSettings:
    """Batching, back-pressure, commit and retry settings shared by the source and sink loops."""

    topic: str
    once: bool = False
    max_rows: int = 50_000
    max_bytes: int = 16 * 1024 * 1024
    linger: float = 0.05
    max_in_flight_bytes: int = 128 * 1024 * 1024
    commit_interval: float = 5.0
    retry_timeout: float = 300.0
    retry_max_delay: float = 60.0
    exactly_once: bool = False

    def topic_for(self, stream: str | None) -> str:
        """The topic of a batch: ``<topic>.<stream>`` for multi-stream sources."""
        return f"{self.topic}.{stream}" if stream else self.topic


class PipelineTopics:
    """The topics a pipeline publishes to: each is created once, with the pipeline's topic
    settings, before the first message goes to it."""

    def __init__(self, broker: Broker, settings: TopicSettings) -> None:
        self.broker = broker
        self.settings = settings
        self.created: set[str] = set()
        self._lock = asyncio.Lock()

    async def ensure(self, topic: str) -> None:
        if topic in self.created:
            return
        async with self._lock:
            if topic not in self.created:
                await self.broker.create_topic(topic, self.settings)
                self.created.add(topic)


@dataclass(frozen=True)
class PipelineParts:
    """Shared by every loop of a run: the converter, the dead letter queue, the settings, the
    counters, the worker pool that transforms and converts batches, the topics and, when the
    run has a source and a sink, what the one published for the other."""

    pipeline: str
    converter: Converter
    dead_letters: DeadLetterQueue
    settings: LoopSettings
    metrics: PipelineMetrics
    pool: concurrent.futures.Executor
    topics: PipelineTopics
    published: PublishedBatches | None = None
    """The rows the source side published, decoded, for the sink side (both run here)."""

    @property
    def capabilities(self) -> Capabilities:
        """What the pipeline's broker offers."""
        return self.topics.broker.capabilities


@dataclass
class TaskSetup(Generic[TaskT]):
    """One connector task with its config, its context and the transforms its loop applies.

    ``factory`` builds a new task instance: a source that is rewound starts over with a fresh
    task, as after a restart.
    """

    task: TaskT
    config: ConnectorSpec
    context: TaskContext
    transforms: list[Transform] = field(default_factory=list)
    factory: Callable[[], TaskT] | None = None

    def thread(self, kind: str, fresh: bool = False) -> TaskThread[TaskT]:
        """The thread that calls the task; with ``fresh`` a new task instance replaces it."""
        if fresh and self.factory is not None:
            self.task = self.factory()
        return TaskThread(self.task, f"{self.context.pipeline}-{kind}-{self.context.task_id}")


async def start_task(
    thread: TaskThread[SourceTaskType] | TaskThread[SinkTask],
    setup: TaskSetup[SourceTaskType] | TaskSetup[SinkTask],
    settings: LoopSettings,
) -> None:
    """Call the task's ``start``, retrying ``RetriableError`` like every other task call."""
    await retrying(
        lambda: thread.call(thread.task.start, setup.config, setup.context),
        "task start",
        settings.retry_timeout,
        settings.retry_max_delay,
    )

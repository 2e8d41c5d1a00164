"""What the loops of one pipeline run share, and what each loop's task needs."""

from __future__ import annotations

import concurrent.futures
from dataclasses import dataclass, field
from typing import Any

from omconnect.connectors.api.context import TaskContext
from omconnect.connectors.api.spec import ConnectorSpec
from omconnect.connectors.api.transform import Transform
from omconnect.runtime.converters.base import Converter
from omconnect.runtime.worker.dead_letter import DeadLetterQueue
from omconnect.runtime.worker.metrics import PipelineMetrics
from omconnect.runtime.worker.retry import retrying
from omconnect.runtime.worker.settings import LoopSettings
from omconnect.runtime.worker.task_thread import TaskThread


@dataclass(frozen=True)
class PipelineParts:
    """Shared by every loop of a run: the converter, the dead letter queue, the settings, the
    counters and the worker pool that transforms and converts batches."""

    pipeline: str
    converter: Converter
    dead_letters: DeadLetterQueue
    settings: LoopSettings
    metrics: PipelineMetrics
    pool: concurrent.futures.Executor


@dataclass
class TaskSetup:
    """One connector task with its config, its context and the transforms its loop applies."""

    task: Any
    config: ConnectorSpec
    context: TaskContext
    transforms: list[Transform] = field(default_factory=list)

    def thread(self, kind: str) -> TaskThread:
        return TaskThread(self.task, f"{self.context.pipeline}-{kind}-{self.context.task_id}")


async def start_task(thread: TaskThread, setup: TaskSetup, settings: LoopSettings) -> None:
    """Call the task's ``start``, retrying ``RetriableError`` like every other task call."""
    await retrying(
        lambda: thread.call("start", setup.config, setup.context),
        "task start",
        settings.retry_timeout,
        settings.retry_max_delay,
    )

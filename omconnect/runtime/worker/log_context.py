"""The pipeline and task a log line belongs to, as context variables.

The runner sets the pipeline when a run starts and each source or sink loop sets its task;
asyncio tasks inherit both from the task that created them, and a task thread runs in a copy
of the context it was started from, and work handed to an executor is wrapped with
``in_log_context``. The log formatters read them (``current_log_context``).
"""

from __future__ import annotations

import contextvars
import functools
from collections.abc import Callable
from contextvars import ContextVar
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

PIPELINE: ContextVar[str | None] = ContextVar("omconnect_pipeline", default=None)
TASK: ContextVar[str | None] = ContextVar("omconnect_task", default=None)


def set_log_context(pipeline: str | None = None, task: str | None = None) -> None:
    """Name the pipeline and/or task of what the current context logs from now on."""
    if pipeline is not None:
        PIPELINE.set(pipeline)
    if task is not None:
        TASK.set(task)


def current_log_context() -> dict[str, str]:
    """``{"pipeline": ..., "task": ...}`` with the ones that are set."""
    found = {"pipeline": PIPELINE.get(), "task": TASK.get()}
    return {key: value for key, value in found.items() if value is not None}


def in_log_context(function: Callable[P, T]) -> Callable[P, T]:
    """``function`` to run in a copy of the current context (``loop.run_in_executor`` does
    not carry it into the pool's threads, ``asyncio.to_thread`` does)."""
    return functools.partial(contextvars.copy_context().run, function)

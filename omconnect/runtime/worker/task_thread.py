"""Runs a task's methods off the event loop: sync tasks on one dedicated thread each.

A sync task is always called from the same thread (its lifecycle contract says so), so a
client that is not thread-safe is safe inside a task. Async tasks run on the loop itself.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


class TaskThread:
    """Calls methods of ``task`` on its own single thread (or awaits them if async)."""

    def __init__(self, task: Any, name: str) -> None:
        self.task = task
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix=name)

    async def call(self, method: str, *args: Any) -> Any:
        bound = getattr(self.task, method)
        if inspect.iscoroutinefunction(bound):
            return await bound(*args)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, bound, *args)

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        """Run ``function`` on the task's thread, in order with the task's own calls (work
        that belongs to the task's sequence but should not hold up the event loop)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, function, *args)

    def submit(self, method: str, *args: Any) -> asyncio.Future[Any]:
        """Start a call without waiting for it (for hooks like ``commit``)."""
        return asyncio.ensure_future(self.call(method, *args))

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

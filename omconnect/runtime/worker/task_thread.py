"""Runs a task's methods off the event loop: sync tasks on one dedicated thread each.

A sync task is always called from the same thread (its lifecycle contract says so), so a
client that is not thread-safe is safe inside a task. Async tasks run on the loop itself.

A connector call may never return (a read from a server that stopped answering). Awaiting it
can always be cancelled, and the thread is a daemon: a worker that is stopping hard abandons
it (``stop_task`` says which call it was stuck in) instead of waiting for it forever, and the
process can still exit.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import inspect
import logging
import queue
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar

T = TypeVar("T")


class _Task(Protocol):
    """What every connector task has (sync or async): a ``stop``."""

    def stop(self) -> object: ...


TaskT = TypeVar("TaskT", bound=_Task)

log = logging.getLogger("omconnect.worker")

ABANDON_AFTER = 2.0
"""How long a hard stop waits for a busy task thread before abandoning it, in seconds."""

_Call = tuple[concurrent.futures.Future[Any], str, Callable[..., Any], tuple[Any, ...]]

_live: weakref.WeakSet[TaskThread] = weakref.WeakSet()


class TaskThread(Generic[TaskT]):
    """Calls methods of ``task`` on its own single thread (or awaits them if async).

    Calls name the method itself, ``thread.call(thread.task.poll)``, so that a renamed task
    method is a type error, not a string that no longer matches.
    """

    def __init__(self, task: TaskT, name: str) -> None:
        self.task = task
        self.name = name
        self._calls: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._busy: tuple[str, float] | None = None
        self._closed = False
        _live.add(self)

    async def call(self, method: Callable[..., Any], *args: Any) -> Any:
        """``method`` (a bound method of ``task``) on the task's thread, or awaited when the
        task is async."""
        if inspect.iscoroutinefunction(method):
            return await method(*args)
        return await self._on_thread(method.__name__, method, args)

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        """Run ``function`` on the task's thread, in order with the task's own calls (work
        that belongs to the task's sequence but should not hold up the event loop)."""
        name = getattr(function, "__name__", "function")
        return await self._on_thread(name, function, args)

    @property
    def busy(self) -> str | None:
        """``poll() for 12.3s`` while the thread is inside a call, else None."""
        busy = self._busy
        if busy is None:
            return None
        return f"{busy[0]}() for {time.monotonic() - busy[1]:.1f}s"

    async def stop_task(self) -> None:
        """Call the task's ``stop``, then end the thread.

        While the caller is being cancelled (a hard stop: the worker gave up waiting for a
        clean one), a thread still stuck in an earlier call gets ``ABANDON_AFTER`` seconds;
        then it is abandoned, with a warning naming the call, and ``stop`` is not called.
        """
        current = asyncio.current_task()
        try:
            if current is None or not current.cancelling():
                await self.call(self.task.stop)
                return
            try:
                async with asyncio.timeout(ABANDON_AFTER):
                    await self.call(self.task.stop)
            except TimeoutError:
                log.warning(
                    "task thread %s is stuck in %s: abandoned without calling stop()",
                    self.name,
                    self.busy or "a call",
                )
        finally:
            self.close()

    def close(self) -> None:
        """End the thread once its current call returns; calls not started are cancelled."""
        self._closed = True
        while True:
            try:
                pending = self._calls.get_nowait()
            except queue.Empty:
                break
            if pending is not None:
                pending[0].cancel()
        self._calls.put(None)

    async def _on_thread(
        self, name: str, function: Callable[..., Any], args: tuple[Any, ...]
    ) -> Any:
        if self._closed:
            raise RuntimeError(f"task thread {self.name} is closed")
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._calls.put((future, name, function, args))
        if self._thread is None:
            # In a copy of the caller's context: its lines name the pipeline and task.
            context = contextvars.copy_context()
            self._thread = threading.Thread(
                target=context.run, args=(self._serve,), name=self.name, daemon=True
            )
            self._thread.start()
        # Cancelling the wrapper cancels a call that has not started; one that has started
        # runs on, and its result is dropped.
        return await asyncio.wrap_future(future)

    def _serve(self) -> None:
        while (item := self._calls.get()) is not None:
            future, name, function, args = item
            if not future.set_running_or_notify_cancel():
                continue
            self._busy = (name, time.monotonic())
            try:
                result = function(*args)
            except BaseException as error:
                future.set_exception(error)
            else:
                future.set_result(result)
            finally:
                self._busy = None
            del item, future, function, args


def busy_task_threads() -> list[str]:
    """``thread NAME in poll() for 12.3s`` for every task thread inside a call now."""
    found = []
    for thread in list(_live):
        busy = thread.busy
        if busy is not None and not thread._closed:
            found.append(f"thread {thread.name} in {busy}")
        elif busy is not None:
            found.append(f"thread {thread.name} (abandoned) in {busy}")
    return sorted(found)

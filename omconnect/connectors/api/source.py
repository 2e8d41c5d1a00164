"""Source connectors: read an external system and emit record batches.

Lifecycle (the runtime drives it; a connector never calls it itself):

1. The runtime builds the connector from its validated spec: ``SourceConnector(config)``, then
   calls ``validate()`` (may reach the system to check it, raises ``ConfigError``) and
   ``task_configs(max_tasks)`` to split the work.
2. For each task config it builds ``task_class()`` and calls ``start(config, context)`` once.
   ``context.offsets.get(partition)`` gives the last committed offset of each partition; the
   task resumes after it.
3. It calls ``poll()`` repeatedly from one thread (sync tasks run in a worker thread, never on
   the event loop; ``AsyncSourceTask`` runs on the loop). ``poll`` may block briefly (up to
   about a second) waiting for data. It returns a ``RecordBatch``, a list of ``RecordBatch``
   (several streams or schemas at once, in order), a list of ``Record``, or None when nothing
   is available now (under ``run --once``: when everything there was is read). Rows of a
   batch with ``stream`` set go to ``<topic>.<stream>``, rows with ``topic`` set to that topic;
   rows marked in ``tombstones`` are deletes of their key.
4. After the broker has acknowledged every message up to a position and the runtime has
   stored it, ``commit(positions)`` tells the task (for example to confirm a replication slot
   LSN). It is called on the polling thread between polls.
5. ``stop()`` is called once, also after a failure. It must release connections.

``RetriableError`` from ``start``, ``poll`` or ``commit`` is retried with backoff; any other
exception fails the task.

Rewinds: when the broker refuses a send, the runtime keeps order by stopping the task (after
committing what the broker acknowledged), then building a new task and starting it again from
the committed positions, with backoff. A task is therefore always resumable from
``context.offsets``; it never needs a seek of its own.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from omconnect.connectors.api.context import TaskContext
from omconnect.connectors.api.spec import ConnectorSpec
from omconnect.schemas.record import Position, Record, RecordBatch

PollResult = RecordBatch | list[RecordBatch] | list[Record] | None


class SourceTask(ABC):
    """Reads one share of a source's work. See the module docstring for the lifecycle."""

    @abstractmethod
    def start(self, config: ConnectorSpec, context: TaskContext) -> None:
        """Open connections and seek to ``context.offsets``."""

    @abstractmethod
    def poll(self) -> PollResult:
        """The next records, or None when there is nothing now."""

    def commit(self, positions: Sequence[Position]) -> None:  # noqa: B027 - optional hook
        """The runtime durably stored ``positions`` (after the broker acknowledged them)."""

    @abstractmethod
    def stop(self) -> None:
        """Release everything ``start`` acquired. Called once, also after a failure."""


class AsyncSourceTask(ABC):
    """The asyncio twin of ``SourceTask`` for I/O-bound sources (devices, HTTP, brokers).

    Its methods run on the worker's event loop and must not block it.
    """

    @abstractmethod
    async def start(self, config: ConnectorSpec, context: TaskContext) -> None: ...

    @abstractmethod
    async def poll(self) -> PollResult: ...

    async def commit(self, positions: Sequence[Position]) -> None:  # noqa: B027
        """See ``SourceTask.commit``."""

    @abstractmethod
    async def stop(self) -> None: ...


class SourceConnector(ABC):
    """A registered source: its name, its spec, and how it splits work into tasks."""

    name: ClassVar[str]
    spec: ClassVar[type[ConnectorSpec]]
    task_class: ClassVar[type[SourceTask] | type[AsyncSourceTask]]
    description: ClassVar[str] = ""
    resumable: ClassVar[bool] = True
    """Whether a task resumes from its committed positions, so that across a stop and a
    restart every record is delivered (at least) once. False for a source that has nothing to
    resume from: a device polled for its current values (Modbus, OPC-UA reads), a
    subscription that only sees what is published while it listens (MQTT without a
    persistent session). Such a task starts reading the present whatever ``context.offsets``
    says, and what happened while it was stopped is lost; it must still start on the
    positions it committed itself. It may mark its batches with positions (a device and the
    time of a reading): the runtime derives message ids from them, so ids differ from one run
    to the next, and ``omconnect offsets list`` shows them. The conformance kit runs restart
    tests instead of resume tests for it."""

    def __init__(self, config: ConnectorSpec) -> None:
        self.config = config

    def validate(self) -> None:  # noqa: B027 - optional hook
        """Check the config against the system (paths exist, tables exist); raise
        ``ConfigError`` naming the option. Called before anything runs."""

    def validate_offset(  # noqa: B027 - optional hook
        self, partition: Mapping[str, Any], offset: Mapping[str, Any]
    ) -> None:
        """Check a position a person is about to store (``omconnect offsets set`` and
        ``offsets import``) before it is stored; raise ``ConfigError`` when a task could not
        resume from it, with ``key`` naming what is wrong (``"offset.row"``).

        Called on a connector built from the pipeline's spec, without ``validate()`` and
        without any task; it should not reach the system. Values arrive as ``offsets list``
        shows them decoded (tagged datetimes, decimals, bytes and UUIDs as Python values).
        Accept keys you do not know, so positions written by other versions of the connector
        still pass. The default accepts every position.
        """

    def task_configs(self, max_tasks: int) -> list[ConnectorSpec]:
        """Split the work into at most ``max_tasks`` task configs (default: one task)."""
        return [self.config]

    def streams(self) -> list[str]:
        """The streams the source will produce, when it knows them before it runs (the tables
        of a database). Their topics ``<topic>.<stream>`` are created up front and the
        pipeline's sink subscribes to them; streams found later are picked up as they come."""
        return []

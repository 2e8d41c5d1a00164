"""Running one loaded pipeline: the same code path for the CLI, ``serve`` and orchestrators.

The runner takes the pipeline's lock (``pipeline_lock``: one runner per pipeline with a
source), opens the broker, the offset store and the schema registry named by the pipeline,
builds the connector tasks, and runs a ``SourceLoop`` per source task and a ``SinkLoop``
concurrently on the current event loop. Under ``--once`` the sink stops when it has consumed
every message the source published in this run (the topic's end offsets once the source is
done); otherwise both run until ``stop`` is set.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
from collections.abc import Collection
from typing import Any, cast

from omconnect.connectors.api.context import OffsetReader, TaskContext
from omconnect.connectors.api.sink import SinkConnector, SinkTask
from omconnect.connectors.api.source import SourceConnector
from omconnect.connectors.api.transform import Transform
from omconnect.runtime.brokers import open_broker, parse_broker_url
from omconnect.runtime.brokers.base import (
    Broker,
    BrokerError,
    Consumer,
    RebalanceListener,
    TopicPartition,
    TopicSettings,
)
from omconnect.runtime.brokers.direct import DirectBroker
from omconnect.runtime.config.loader import LoadedPipeline, validate_connectors
from omconnect.runtime.converters import make_converter
from omconnect.runtime.converters.refused_schemas import RefusedSchemaRows
from omconnect.runtime.state import (
    LOCK_CHECK_SECONDS,
    DirectoryClaims,
    OffsetStore,
    PipelineLock,
    open_schema_registry,
)
from omconnect.runtime.state.backends import open_pipeline_offset_store
from omconnect.runtime.state.schema_registry import HttpSchemaRegistry
from omconnect.runtime.worker.dead_letter import DeadLetterQueue
from omconnect.runtime.worker.log_context import set_log_context
from omconnect.runtime.worker.loop_parts import (
    LoopSettings,
    PipelineParts,
    PipelineTopics,
    SourceTaskType,
    TaskSetup,
)
from omconnect.runtime.worker.metrics import PipelineMetrics
from omconnect.runtime.worker.offset_reader import (
    NamespaceOffsetReader,
    TransactionPositionReader,
)
from omconnect.runtime.worker.published_batches import PublishedBatches
from omconnect.runtime.worker.sink_loop import SinkLoop
from omconnect.runtime.worker.source_loop import SourceLoop

log = logging.getLogger("omconnect.runner")

POOL_THREADS = 2


def consumer_group(pipeline: str) -> str:
    """The consumer group a pipeline's sink reads its topic with."""
    return f"omconnect.{pipeline}"


def settings_for(loaded: LoadedPipeline, once: bool) -> LoopSettings:
    cfg = loaded.config
    return LoopSettings(
        topic=cfg.effective_topic,
        once=once,
        max_rows=cfg.batching.max_rows,
        max_bytes=int(cfg.batching.max_bytes),
        linger=float(cfg.batching.linger),
        max_in_flight_bytes=int(cfg.max_in_flight_bytes),
        commit_interval=float(cfg.commit_interval),
        retry_timeout=float(cfg.errors.retry_timeout),
        retry_max_delay=float(cfg.errors.retry_max_delay),
        exactly_once=cfg.exactly_once,
    )


async def open_sink_consumer(
    broker: Broker, loaded: LoadedPipeline, listener: RebalanceListener | None = None
) -> Consumer:
    """A member of the pipeline's consumer group subscribed to everything its sink reads."""
    topics, pattern = loaded.config.sink_subscription
    return await broker.consumer(
        consumer_group(loaded.config.name), topics, pattern=pattern, listener=listener
    )


def source_task_count(loaded: LoadedPipeline) -> int:
    """How many tasks the pipeline's source splits into (its ``task_configs`` for the
    pipeline's ``tasks:``; 0 without a source): the indexes ``PipelineRunner(tasks=...)``
    takes. A source may reach its system to count them (the tables a glob matches)."""
    connector = source_connector(loaded)
    return 0 if connector is None else len(connector.task_configs(loaded.config.tasks))


def source_connector(loaded: LoadedPipeline) -> SourceConnector | None:
    """The pipeline's source connector, built from its validated spec (None without one)."""
    source = loaded.source
    if source is None:
        return None
    return cast(SourceConnector, source.registration.cls(source.spec))


class PipelineRunner:
    """Runs ``loaded`` once or continuously; ``metrics`` can be watched while it runs."""

    def __init__(
        self,
        loaded: LoadedPipeline,
        once: bool = False,
        broker: Broker | None = None,
        command: str | None = None,
        tasks: Collection[int] | None = None,
        sink: bool = True,
    ) -> None:
        """``broker`` replaces the one the pipeline's ``broker:`` URL names (a wrapped or
        shared one); the runner closes it at the end either way. ``command`` names this
        process in the pipeline's lock (``omconnect run``), for a runner that is refused.
        ``tasks`` runs only those of the source's tasks (indexes into what
        ``source_task_count`` counts), so that the tasks of one pipeline can run in separate
        processes or on separate machines (an orchestrator's mapped tasks); each keeps its own
        positions, and runs of different tasks go side by side (see ``PipelineLock``); no
        tasks runs none. ``sink=False`` leaves the sink out: the fan-out of an orchestrator
        runs the source's tasks without it, then the sink alone (``tasks=[]``), which, like
        every sink of a pipeline with a source, takes records its transforms already made."""
        if tasks is not None:
            count = source_task_count(loaded)
            unknown = sorted(set(tasks) - set(range(count)))
            if unknown:
                raise ValueError(
                    f"pipeline {loaded.config.name!r} has no source task {unknown[0]}: its "
                    f"source splits into {count} task(s), numbered from 0"
                )
        self.loaded = loaded
        self.once = once
        self.broker = broker
        self.tasks = frozenset(tasks) if tasks is not None else None
        self.runs_sink = sink and loaded.sink is not None
        self.metrics = PipelineMetrics(loaded.config.name)
        self._claims = DirectoryClaims(loaded.config.name, command)
        self._command = command
        self._source: SourceConnector | None = None  # built per run (it may keep what it found)

    async def run(self, stop: asyncio.Event | None = None) -> PipelineMetrics:
        """Run until done (``once``) or ``stop``.

        Raises:
            PipelineRunningError: another process runs this pipeline (see ``pipeline_lock``:
                a pipeline with a source runs once at a time; sink-only ones may share).
        """
        stop = stop or asyncio.Event()
        set_log_context(pipeline=self.loaded.config.name)
        self._source = source_connector(self.loaded)
        validate_connectors(self.loaded, self._source)
        cfg = self.loaded.config
        lock = PipelineLock(cfg.state, cfg.name, self.tasks)
        try:
            lock.acquire(self._command, shared=self.loaded.source is None)
        except BaseException:  # running elsewhere, or a state database that is unreachable
            if self.broker is not None:
                await self.broker.close()
            raise
        try:
            await self._run_watching(lock, stop)
        finally:
            self._claims.release()
            lock.release()
        return self.metrics

    async def _run_watching(self, lock: PipelineLock, stop: asyncio.Event) -> None:
        """The run, ended at once when its lock ends under it (``PipelineLock.check``, every
        ``LOCK_CHECK_SECONDS``): cancelled, so that it commits nothing more once another
        worker may be running the pipeline. A lock that cannot end so (a file lock) is not
        checked: no thread hop every few seconds per pipeline for an answer known ahead."""
        if not lock.can_be_lost:
            await self._run_locked(stop)
            return
        run = asyncio.ensure_future(self._run_locked(stop))
        try:
            while True:
                done, _ = await asyncio.wait({run}, timeout=LOCK_CHECK_SECONDS)
                if done:
                    return run.result()
                await asyncio.to_thread(lock.check)
        finally:
            if not run.done():
                run.cancel()
                with contextlib.suppress(BaseException):
                    await run

    async def _run_locked(self, stop: asyncio.Event) -> None:
        cfg = self.loaded.config
        settings = settings_for(self.loaded, self.once)
        # In a thread: a store in the broker connects and reads its topic or bucket.
        offsets = await asyncio.to_thread(
            open_pipeline_offset_store, cfg.state, cfg.offsets, cfg.broker
        )
        try:
            broker = self._open_broker(offsets, settings)
        except BaseException:
            offsets.close()
            raise
        registry = (
            HttpSchemaRegistry(cfg.schema_registry)
            if cfg.schema_registry
            else open_schema_registry(cfg.state)
        )
        pool = concurrent.futures.ThreadPoolExecutor(POOL_THREADS, thread_name_prefix="omc-work")
        try:
            await self._run(broker, offsets, registry, settings, pool, stop)
        except BaseExceptionGroup as group:
            # A failing loop cancels its siblings; report the failure, not the group.
            raise _first_failure(group) from None
        finally:
            pool.shutdown(wait=True)
            offsets.close()
            if hasattr(registry, "close"):  # an embedded registry's file or database session
                registry.close()
            await broker.close()

    async def _run(
        self,
        broker: Broker,
        offsets: OffsetStore,
        registry: Any,
        settings: LoopSettings,
        pool: concurrent.futures.Executor,
        stop: asyncio.Event,
    ) -> None:
        cfg = self.loaded.config
        loop = asyncio.get_running_loop()
        if cfg.exactly_once and not broker.capabilities.transactions:
            raise ValueError(
                f"exactly_once needs a broker with transactions; {broker.url.split(':')[0]}:// "
                "has none"
            )
        # Without a broker (``broker: none``) the sink takes the source's rows in this process.
        direct = broker if isinstance(broker, DirectBroker) else None
        topics = PipelineTopics(broker, TopicSettings(partitions=cfg.partitions))
        producer = await broker.producer()
        # Without a broker, dead letters go to the embedded one of the state directory.
        dead_letter_broker = open_broker(f"embedded://{cfg.state}") if direct else None
        dead_letter_producer = (
            await dead_letter_broker.producer() if dead_letter_broker is not None else producer
        )
        dead_letters = DeadLetterQueue(
            dead_letter_producer,
            cfg.effective_dead_letter_topic,
            cfg.name,
            tolerate=cfg.errors.tolerance == "all",
            loop=loop,
            metrics=self.metrics,
        )
        converter = make_converter(
            cfg.format,
            registry,
            pipeline=cfg.name,
            broker_scheme=_scheme(broker.url),
            cloudevents_mode=cfg.cloudevents_mode,
            cloudevents_type=cfg.cloudevents_type,
        )
        if cfg.errors.incompatible_schema == "dead_letter":
            converter = RefusedSchemaRows(converter)
        parts = PipelineParts(
            cfg.name,
            converter,
            dead_letters,
            settings,
            self.metrics,
            pool,
            topics,
            # Only a log's offsets name the messages a producer published: a queue's are
            # each consumer's own count, which would match the wrong published rows.
            PublishedBatches()
            if self.loaded.source
            and self.tasks != frozenset()
            and self.runs_sink
            and broker.capabilities.log
            and direct is None  # it hands the rows over as they are
            else None,
        )
        sink_loop = None
        if self.runs_sink and self.loaded.sink is not None:
            sink_loop = SinkLoop(
                parts,
                self._sink_task(parts, transformed=self.loaded.source is not None),
                lambda listener: open_sink_consumer(broker, self.loaded, listener),
            )
            if sink_loop.stores_positions and not broker.capabilities.log:
                raise ValueError(
                    f"sink {self.loaded.sink.registration.name!r} stores its own positions "
                    "and needs a broker it can seek; this one hands out messages with acks"
                )
            if direct is not None:
                direct.on_commit_wanted = sink_loop.request_commit
                # Numbered from the sink's own positions, never behind them: a number it
                # stored is never given to rows it did not write (brokers/direct.py).
                direct.sink_stores_positions = sink_loop.stores_positions
        source = self._source
        source_loops = []
        if source is not None:
            await topics.ensure(settings.topic)
            for stream in source.streams():
                await topics.ensure(settings.topic_for(stream))
            source_loops = [
                SourceLoop(parts, setup, producer, offsets)
                for setup in self._source_tasks(source, offsets, parts)
            ]
        if sink_loop is not None:
            # Subscribed before the source publishes: a queue keeps messages only for
            # subscriptions that exist.
            await sink_loop.open_consumer()
        until: asyncio.Future[dict[TopicPartition, int] | None] = loop.create_future()
        try:
            async with asyncio.TaskGroup() as group:
                sources = [group.create_task(s.run(stop)) for s in source_loops]
                if sink_loop is not None:
                    # Without a broker the sources' sends are acknowledged by the sink's
                    # commits: the sink ends where they stopped sending (under --once and at a
                    # stop alike), not at the stop itself, which would leave them waiting.
                    group.create_task(
                        _run_direct_sink(sink_loop, direct, until)
                        if direct is not None
                        else sink_loop.run(stop, until)
                    )
                if direct is not None and sink_loop is not None:
                    await _all_sent(source_loops, sources)
                    await direct.sends_numbered()
                    until.set_result(await self._end_offsets(sink_loop))
                for running in sources:
                    await running
                self.metrics.source_done = True
                if self.once and sink_loop is not None and not until.done():
                    until.set_result(await self._end_offsets(sink_loop))
            await dead_letters.drain()
        finally:
            if sink_loop is not None and sink_loop.consumer is not None:
                await sink_loop.consumer.close()
            await producer.close()
            if dead_letter_broker is not None:
                await dead_letter_producer.close()
                await dead_letter_broker.close()

    async def _end_offsets(self, sink_loop: SinkLoop) -> dict[TopicPartition, int] | None:
        """Where ``--once`` stops the sink: the high-water of every topic it reads, taken
        once the source is done (None on a broker without end offsets)."""
        if not sink_loop.parts.capabilities.end_offsets:
            return None
        return await (await sink_loop.open_consumer()).end_offsets()

    def _open_broker(self, offsets: OffsetStore, settings: LoopSettings) -> Broker:
        """The broker given to the runner, else the pipeline's; with ``broker: none`` the
        in-process one (``brokers/direct.py``), for a run of both the source and the sink."""
        cfg = self.loaded.config
        if self.broker is not None:
            return self.broker
        if not cfg.without_broker:
            return open_broker(cfg.broker)
        if not self.runs_sink or self.loaded.source is None or self.tasks == frozenset():
            raise ValueError(
                f"pipeline {cfg.name!r} has broker: none, so its source and its sink run "
                "together in one process; it cannot run one without the other"
            )
        return DirectBroker(offsets, cfg.name, settings.max_in_flight_bytes // 2)

    def _transforms(self) -> list[Transform]:
        return [cast(Transform, reg.cls(spec)) for reg, spec in self.loaded.transforms]

    def _context(self, task_id: int, offsets: OffsetReader, parts: PipelineParts) -> TaskContext:
        return TaskContext(
            pipeline=parts.pipeline,
            task_id=task_id,
            offsets=offsets,
            errors=parts.dead_letters,
            once=self.once,
            logger=logging.getLogger(f"omconnect.task.{parts.pipeline}"),
            on_claim_directory=self._claims.claim,
        )

    def _source_tasks(
        self, connector: SourceConnector, offsets: OffsetStore, parts: PipelineParts
    ) -> list[TaskSetup[SourceTaskType]]:
        """One setup per source task; transforms run on the source side."""
        setups = []
        for i, config in enumerate(connector.task_configs(self.loaded.config.tasks)):
            if self.tasks is not None and i not in self.tasks:
                continue
            reader: OffsetReader = (
                TransactionPositionReader()
                if self.loaded.config.exactly_once
                else NamespaceOffsetReader(offsets, parts.pipeline)
            )
            setups.append(
                TaskSetup(
                    connector.task_class(),
                    config,
                    self._context(i, reader, parts),
                    self._transforms(),
                    factory=connector.task_class,
                )
            )
        return setups

    def _sink_task(self, parts: PipelineParts, transformed: bool) -> TaskSetup[SinkTask]:
        """The sink task; it applies the transforms only when no source side did."""
        sink = self.loaded.sink
        assert sink is not None
        connector = cast(SinkConnector, sink.registration.cls(sink.spec))
        return TaskSetup(
            connector.task_class(),
            connector.task_configs(1)[0],
            self._context(0, _NoOffsets(), parts),
            [] if transformed else self._transforms(),
        )


async def _run_direct_sink(
    sink_loop: SinkLoop,
    broker: DirectBroker,
    until: asyncio.Future[dict[TopicPartition, int] | None],
) -> None:
    """The sink of a run without a broker, to where the sources stopped sending; a sink whose
    last flush left rows it was given not durable fails the run (their senders would wait
    for an ack forever; the source reads them again next run)."""
    await sink_loop.run(asyncio.Event(), until)
    unwritten = broker.unwritten()
    if unwritten:
        raise BrokerError(
            f"the sink's last flush left {unwritten} row(s) it was given not durable; "
            "broker: none needs a sink that makes everything it was given durable when it "
            "stops (they are read again next run)"
        )


async def _all_sent(loops: list[SourceLoop], runs: list[asyncio.Task[None]]) -> None:
    """Until every source loop has sent everything (or ended)."""
    for loop, run in zip(loops, runs, strict=True):
        sent = asyncio.ensure_future(loop.all_sent.wait())
        try:
            await asyncio.wait({sent, run}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sent.cancel()


def _scheme(url: str) -> str | None:
    """The scheme of a broker's URL (which CloudEvents binding its headers follow)."""
    try:
        return parse_broker_url(url).scheme
    except ValueError:
        return None


def _first_failure(group: BaseExceptionGroup[BaseException]) -> BaseException:
    for error in group.exceptions:
        if isinstance(error, BaseExceptionGroup):
            return _first_failure(error)
        if not isinstance(error, asyncio.CancelledError):
            return error
    return group


class _NoOffsets:
    """Sinks read their positions from the consumer group, not the offset store."""

    def get(self, partition: Any) -> None:
        return None

    def all(self) -> list[Any]:
        return []

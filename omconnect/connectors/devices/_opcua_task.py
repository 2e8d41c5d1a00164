"""The ``opcua`` source's task: a subscription whose data changes wait in memory until the
next poll takes them, as one record batch.

The task runs on the worker's event loop (asyncua is asyncio-native), so notifications arrive
while the runtime does other work; ``poll`` returns what came since the last poll, waiting at
most a second when nothing did. At most ``MAX_BUFFERED`` changes wait: when the pipeline
cannot keep up, the oldest are dropped, with a warning saying how many.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from typing import TYPE_CHECKING

from omconnect.connectors.api import (
    AsyncSourceTask,
    ConfigError,
    ConnectorSpec,
    PollResult,
    TaskContext,
)
from omconnect.connectors.devices._opcua_readings import Reading, ReadingBatches
from omconnect.connectors.devices._opcua_spec import OpcuaSourceSpec

if TYPE_CHECKING:
    from omconnect.connectors.devices._opcua_session import OpcuaSession

log = logging.getLogger("omconnect.opcua")

MAX_BUFFERED = 100_000
"""The most data changes that wait for a poll."""
POLL_WAIT = 1.0
"""The longest a poll waits for a first data change, in seconds."""


class OpcuaSourceTask(AsyncSourceTask):
    """Subscribes on ``start``; each ``poll`` returns the changes that arrived since the last.

    Under ``run --once`` the first poll waits (up to ``timeout``) until every node has sent its
    current value; the task then takes no more changes and ends when those are delivered.
    Positions: nothing to resume from; each batch is marked with when its last change arrived
    (see ``ReadingBatches``), and ``commit`` has nothing to do.
    """

    def __init__(self) -> None:
        self._session: OpcuaSession | None = None
        self._batches: ReadingBatches | None = None
        self._readings: deque[Reading] = deque()
        self._arrived = asyncio.Event()
        self._dropped = 0
        self._reported: set[int] = set()
        self._once = False
        self._settled = False
        self._config: OpcuaSourceSpec | None = None

    async def start(self, config: ConnectorSpec, context: TaskContext) -> None:
        """Connect, find the nodes and subscribe.

        Raises:
            RetriableError: the server cannot be reached now.
            ConfigError: a node does not exist, or the server refused the identity or the
                security settings.
        """
        assert isinstance(config, OpcuaSourceSpec)
        try:
            from omconnect.connectors.devices._opcua_session import OpcuaSession
        except ImportError as error:
            raise ConfigError(
                f"the opcua source needs asyncua: pip install 'omconnect[opcua]' ({error})"
            ) from None
        self._config = config
        self._once = context.once
        session = await OpcuaSession.open(config)
        try:
            await session.subscribe(self._deliver)
        except BaseException:
            await session.close()
            raise
        self._session = session
        self._batches = ReadingBatches(config.url, session.watched)
        log.info("subscribed to %d nodes of %s", len(session.watched), config.url)

    async def poll(self) -> PollResult:
        """The data changes since the last poll (at most ``batch_size``), or None."""
        assert self._config is not None and self._batches is not None
        if self._once:
            if not self._settled:
                await self._wait_for_every_node(self._config.timeout)
        elif not self._readings:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(POLL_WAIT):
                    await self._arrived.wait()
        self._arrived.clear()
        if self._dropped:
            log.warning(
                "dropped %d OPC-UA data changes: the pipeline did not keep up with %s",
                self._dropped,
                self._config.url,
            )
            self._dropped = 0
        if not self._readings:
            return None
        count = min(len(self._readings), self._config.batch_size)
        return self._batches.batch([self._readings.popleft() for _ in range(count)])

    async def stop(self) -> None:
        """End the subscription and the session."""
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    def _deliver(self, reading: Reading) -> None:
        if self._settled:  # run --once: the current values are in; later changes are not
            return
        if len(self._readings) >= MAX_BUFFERED:
            self._readings.popleft()
            self._dropped += 1
        self._readings.append(reading)
        self._reported.add(reading.node)
        self._arrived.set()

    async def _wait_for_every_node(self, timeout: float) -> None:
        assert self._batches is not None
        nodes = self._batches.nodes
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while len(self._reported) < len(nodes):
                    self._arrived.clear()
                    await self._arrived.wait()
        silent = [n.node_id for i, n in enumerate(nodes) if i not in self._reported]
        if silent:
            log.warning(
                "no value within %gs from nodes %s: delivered without them", timeout, silent
            )
        self._settled = True

"""librdkafka clients for one ``kafka://`` URL: their settings and the threads that run their
blocking calls.

Every librdkafka call that may wait on the network runs on a worker thread of the broker's own
pool (never on the event loop, never on the loop's default executor, which rebalance callbacks
could exhaust), bounded by a timeout: librdkafka retries a down broker forever, so every wait
here ends with a ``BrokerError`` instead.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, ParamSpec, TypeVar

from omconnect.runtime.brokers.base import BrokerError
from omconnect.runtime.brokers.kafka._errors import ConnectionProblems
from omconnect.runtime.brokers.kafka._options import KafkaOptions

P = ParamSpec("P")
T = TypeVar("T")

# librdkafka's own log lines (connection failures and the like), at their syslog levels.
CLIENT_LOG = logging.getLogger("omconnect.broker.kafka.client")

# Enough threads for every consumer's poll, producer's enqueue and the calls made from inside
# rebalance callbacks at once.
_THREADS = 32


class BlockingCalls:
    """The worker threads of one broker's librdkafka calls.

    Args:
        servers: the bootstrap servers, for messages.
    """

    def __init__(self, servers: str) -> None:
        self.servers = servers
        self._pool = ThreadPoolExecutor(max_workers=_THREADS, thread_name_prefix="omconnect-kafka")

    async def run(
        self,
        what: str,
        limit: float,
        function: Callable[P, T],
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """``function(*args, **kwargs)`` on a worker thread.

        Raises:
            BrokerError: it did not return within ``limit`` seconds (the thread finishes
                the call on its own; librdkafka bounds it by its own timeouts).
        """
        future = asyncio.get_running_loop().run_in_executor(
            self._pool, partial(function, *args, **kwargs)
        )
        try:
            async with asyncio.timeout(limit):
                return await future
        except TimeoutError:
            raise BrokerError(
                f"kafka: {what} took longer than {limit:g} s; check that the broker at "
                f"{self.servers} is up"
            ) from None

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def common_config(options: KafkaOptions, problems: ConnectionProblems) -> dict[str, Any]:
    """Settings every client of the URL shares."""
    return {
        "bootstrap.servers": options.servers,
        "client.id": "omconnect",
        # librdkafka refuses less than 1000 (the driver's own waits still end in time).
        "socket.connection.setup.timeout.ms": max(1000, options.connect_timeout_ms),
        "reconnect.backoff.max.ms": 1000,
        "error_cb": problems.note,
        "logger": CLIENT_LOG,
    }


def producer_config(
    options: KafkaOptions, problems: ConnectionProblems, transactional_id: str | None = None
) -> dict[str, Any]:
    """An idempotent producer (acks from every in-sync replica, retries that keep each
    partition's order and never duplicate), transactional with ``transactional_id``."""
    config = {
        **common_config(options, problems),
        "enable.idempotence": True,
        "acks": "all",
        "max.in.flight.requests.per.connection": 5,
        "linger.ms": options.linger_ms,
        "compression.type": options.compression,
        "message.timeout.ms": options.delivery_timeout_ms,
        "request.timeout.ms": min(options.request_timeout_ms, options.delivery_timeout_ms),
        "queue.buffering.max.messages": 1_000_000,
        "queue.buffering.max.kbytes": 1_048_576,
        "batch.num.messages": 100_000,
    }
    if transactional_id is not None:
        config["transactional.id"] = transactional_id
        config["transaction.timeout.ms"] = options.transaction_timeout_ms
    return config


def consumer_config(
    options: KafkaOptions, problems: ConnectionProblems, group: str, start: str
) -> dict[str, Any]:
    """A consumer-group member that commits explicitly and reads committed messages only."""
    return {
        **common_config(options, problems),
        "group.id": group,
        "partition.assignment.strategy": "range",
        "session.timeout.ms": options.session_timeout_ms,
        "heartbeat.interval.ms": options.heartbeat_ms,
        "max.poll.interval.ms": options.max_poll_interval_ms,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": start,
        "isolation.level": "read_committed",
        "fetch.wait.max.ms": options.fetch_wait_ms,
        "fetch.error.backoff.ms": 100,
        "topic.metadata.refresh.interval.ms": options.metadata_refresh_ms,
    }


def reader_config(
    options: KafkaOptions, problems: ConnectionProblems, committed_only: bool
) -> dict[str, Any]:
    """A consumer used by assignment only (no group membership, no commits): it reads the
    tails of partitions and reports each partition's end as it reaches it."""
    return {
        **common_config(options, problems),
        "group.id": "omconnect-reader",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "enable.partition.eof": True,
        "isolation.level": "read_committed" if committed_only else "read_uncommitted",
        "fetch.wait.max.ms": 10,
        "fetch.error.backoff.ms": 20,
    }

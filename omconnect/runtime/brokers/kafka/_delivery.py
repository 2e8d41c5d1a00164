"""The librdkafka producer of a ``KafkaProducer``, and the delivery reports of its sends.

librdkafka hands delivery reports to whoever calls ``poll``; here that is one thread per
client (``ProducerClient``), so reports never wait for the event loop. A send counts its
reports (``Delivery``) and wakes the loop once, when the last one arrived.

What runs per message is kept small, because it is most of the driver's cost next to
librdkafka's own: ``produce`` with positional arguments from prebuilt lists, and a report
callback (one bound method per send) that appends the offset and bumps a counter, with no
lock. ``itertools.count`` and ``list.append`` are single steps under the GIL, so two threads
serving reports at once (the poll thread and a ``flush``) still count each report once;
where each partition's messages landed is worked out once, when the send completes.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, cast

import numpy as np
from confluent_kafka import KafkaError, KafkaException, Message
from confluent_kafka import Producer as LibrdkafkaProducer

from omconnect.runtime.brokers.kafka._records import OutgoingRows
from omconnect.schemas.message_batch import MessageBatch

_POLL_INTERVAL = 0.05
_QUEUE_FULL_PAUSE = 0.002

Report = Callable[[KafkaError | None, Message], None]


class Delivery:
    """The delivery reports of one send: where each partition's messages landed, or the
    first error. ``done`` is resolved on the loop when every message has its report.

    Args:
        targets: the partition of each message of the send, in order.
        loop: the loop ``done`` belongs to.
    """

    def __init__(self, targets: np.ndarray, loop: asyncio.AbstractEventLoop) -> None:
        self.done: asyncio.Future[None] = loop.create_future()
        self.count = len(targets)
        self._loop = loop
        self._last = self.count - 1
        self._reported = itertools.count()
        # ``Message.offset()`` and ``partition()`` are typed optional; a successful report
        # has both.
        self._offsets: list[Any] = []
        self._partitions: list[Any] = []
        self._errors: list[KafkaError] = []
        # One partition (every unkeyed send, any send to a topic of one): no need to ask
        # each report where it landed.
        single = self.count > 0 and bool((targets == targets[0]).all())
        self.partition: int | None = int(targets[0]) if single else None
        self.callback: Report = self._one_partition if single else self._many_partitions

    @property
    def error(self) -> KafkaError | None:
        """The first error reported, if any."""
        return self._errors[0] if self._errors else None

    def landed(self) -> dict[int, tuple[int, int]]:
        """Partition -> (its first offset, how many messages it took), once ``done``."""
        if not self._offsets:
            return {}
        if self.partition is not None:
            return {self.partition: _first_and_count(self._offsets)}
        if None not in self._offsets:
            partitions = np.asarray(self._partitions, dtype=np.int64)
            offsets = np.asarray(self._offsets, dtype=np.int64)
            landed: dict[int, tuple[int, int]] = {}
            for partition in np.unique(partitions).tolist():
                mine = offsets[partitions == partition]
                landed[partition] = (int(mine.min()), len(mine))
            return landed
        by_partition: dict[int, list[int | None]] = {}
        for partition, offset in zip(self._partitions, self._offsets, strict=True):
            by_partition.setdefault(partition, []).append(offset)
        return {p: _first_and_count(offsets) for p, offsets in by_partition.items()}

    def _one_partition(self, error: KafkaError | None, message: Message) -> None:
        """librdkafka's ``on_delivery`` for a send to one partition."""
        if error is None:
            self._offsets.append(message.offset())
        else:
            self._errors.append(error)
        if next(self._reported) == self._last:
            self._loop.call_soon_threadsafe(self._finish)

    def _many_partitions(self, error: KafkaError | None, message: Message) -> None:
        """librdkafka's ``on_delivery`` for a send spread over partitions."""
        if error is None:
            self._partitions.append(message.partition())
            self._offsets.append(message.offset())
        else:
            self._errors.append(error)
        if next(self._reported) == self._last:
            self._loop.call_soon_threadsafe(self._finish)

    def abandon(self, count: int, error: KafkaError) -> None:
        """``count`` messages were never queued (``produce`` refused them)."""
        self._errors.append(error)
        for _ in range(count):
            if next(self._reported) == self._last:
                self._loop.call_soon_threadsafe(self._finish)

    def _finish(self) -> None:
        if not self.done.done():
            self.done.set_result(None)


def _first_and_count(offsets: list[int | None]) -> tuple[int, int]:
    """The first offset of a partition's messages (its reports in order) and their count.

    A report can be a success without an offset (librdkafka's ``OFFSET_INVALID``: an
    idempotent retry of a request whose answer was lost); the first offset is then counted
    back from the first report that has one, and is -1 when none has.
    """
    if None not in offsets:
        return min(cast(list[int], offsets)), len(offsets)
    for index, offset in enumerate(offsets):
        if offset is not None:
            return offset - index, len(offsets)
    return -1, len(offsets)


class ProducerClient:
    """A librdkafka producer and the thread that serves its delivery reports."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.producer = LibrdkafkaProducer(config)
        self._stopped = threading.Event()
        self._thread = threading.Thread(
            target=self._serve, name="omconnect-kafka-deliveries", daemon=True
        )
        self._thread.start()

    def _serve(self) -> None:
        while not self._stopped.is_set():
            self.producer.poll(_POLL_INTERVAL)

    def enqueue(
        self, topic: str, messages: MessageBatch, targets: np.ndarray, report: Delivery
    ) -> None:
        """Queue every message for ``topic`` in order, the ``i``-th on partition
        ``targets[i]`` (blocking while librdkafka's queue is full). Runs on the producer's
        single enqueue thread, so the messages of concurrent sends never interleave within a
        partition."""
        rows = OutgoingRows(messages)
        partitions: Iterable[int] = (
            itertools.repeat(report.partition) if report.partition is not None else targets.tolist()
        )
        produce, callback = self.producer.produce, report.callback
        header_lists: list[Any] = rows.headers  # librdkafka takes (name, bytes | None) pairs
        # Positional: topic, value, key, partition, on_delivery, callback, timestamp, headers.
        for row, (value, key, partition, stamp, headers) in enumerate(
            zip(rows.values, rows.keys, partitions, rows.timestamps, header_lists, strict=False)
        ):
            try:
                produce(topic, value, key, partition, callback, None, stamp, headers)
            except BufferError:
                arguments = (topic, value, key, partition, callback, None, stamp, headers)
                refused = self._produce_when_room(arguments)
                if refused is not None:
                    report.abandon(len(rows) - row, refused)
                    return
            except KafkaException as error:
                report.abandon(len(rows) - row, error.args[0])
                return

    def _produce_when_room(self, arguments: tuple[Any, ...]) -> KafkaError | None:
        """``produce`` once librdkafka's queue has room; the error when it refuses."""
        while True:
            time.sleep(_QUEUE_FULL_PAUSE)  # the poll thread makes room
            try:
                self.producer.produce(*arguments)
                return None
            except BufferError:
                continue
            except KafkaException as error:
                return error.args[0]

    def flush(self, timeout: float) -> int:
        """Wait up to ``timeout`` seconds for every queued message; the number still queued."""
        return self.producer.flush(timeout)

    def close(self, timeout: float) -> None:
        try:
            self.producer.flush(timeout)
        finally:
            self._stopped.set()
            self._thread.join(timeout=1.0)

"""The librdkafka producer of a ``KafkaProducer``, and the delivery reports of its sends.

librdkafka hands delivery reports to whoever calls ``poll``; here that is one thread per
client (``ProducerClient``), so reports never wait for the event loop. A send counts its
reports (``Delivery``) and wakes the loop once, when the last one arrived.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import numpy as np
from confluent_kafka import KafkaError, KafkaException, Message
from confluent_kafka import Producer as LibrdkafkaProducer

from omconnect.runtime.brokers.kafka._records import OutgoingRows
from omconnect.schemas.message_batch import MessageBatch

_POLL_INTERVAL = 0.05
_QUEUE_FULL_PAUSE = 0.002


class Delivery:
    """The delivery reports of one send: where each partition's messages landed, or the
    first error. ``done`` is resolved on the loop when every message has its report."""

    def __init__(self, count: int, loop: asyncio.AbstractEventLoop) -> None:
        self.done: asyncio.Future[None] = loop.create_future()
        self.first: dict[int, int] = {}
        self.counts: dict[int, int] = {}
        self.error: KafkaError | None = None
        self._loop = loop
        self._remaining = count
        self._lock = threading.Lock()

    def __call__(self, error: KafkaError | None, message: Message) -> None:
        """librdkafka's ``on_delivery``, on the client's poll thread."""
        with self._lock:
            if error is not None:
                if self.error is None:
                    self.error = error
            else:
                partition = message.partition() or 0
                offset = message.offset() or 0
                first = self.first.get(partition)
                if first is None or offset < first:
                    self.first[partition] = offset
                self.counts[partition] = self.counts.get(partition, 0) + 1
            self._remaining -= 1
            finished = self._remaining == 0
        if finished:
            self._loop.call_soon_threadsafe(self._finish)

    def abandon(self, count: int, error: KafkaError) -> None:
        """``count`` messages were never queued (``produce`` refused them)."""
        with self._lock:
            if self.error is None:
                self.error = error
            self._remaining -= count
            finished = self._remaining == 0
        if finished:
            self._loop.call_soon_threadsafe(self._finish)

    def _finish(self) -> None:
        if not self.done.done():
            self.done.set_result(None)


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
        partitions: list[int] = targets.tolist()
        produce = self.producer.produce
        keys, values, stamps = rows.keys, rows.values, rows.timestamps
        headers: list[Any] = rows.headers  # librdkafka takes (name, bytes | None) pairs
        for row in range(len(rows)):
            while True:
                try:
                    produce(
                        topic,
                        values[row],
                        keys[row],
                        partition=partitions[row],
                        on_delivery=report,
                        timestamp=stamps[row],
                        headers=headers[row],
                    )
                    break
                except BufferError:
                    time.sleep(_QUEUE_FULL_PAUSE)  # the poll thread makes room
                except KafkaException as error:
                    report.abandon(len(rows) - row, error.args[0])
                    return

    def flush(self, timeout: float) -> int:
        """Wait up to ``timeout`` seconds for every queued message; the number still queued."""
        return self.producer.flush(timeout)

    def close(self, timeout: float) -> None:
        try:
            self.producer.flush(timeout)
        finally:
            self._stopped.set()
            self._thread.join(timeout=1.0)

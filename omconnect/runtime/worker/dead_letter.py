"""The dead letter queue: records that cannot be converted, transformed or written.

Each dead letter carries the reason, the stage and the original position in headers
(``omconnect.error.*``), like Kafka Connect's ``__connect.errors.*``. Reports are sent
asynchronously; the loops ``await drain()`` before committing any position that covers a
reported row, so a committed position never hides a lost record. With ``tolerance: none``
a report fails the pipeline instead.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa

from omconnect.connectors.api.errors import ConnectorError, per_payload
from omconnect.runtime.brokers.base import Producer
from omconnect.runtime.worker.metrics import PipelineMetrics
from omconnect.schemas.message_batch import MessageBatch
from omconnect.schemas.record import RecordBatch

HEADER_PREFIX = "omconnect.error."

log = logging.getLogger("omconnect.dlq")


class RecordFailedError(ConnectorError):
    """A record failed and errors.tolerance is ``none``: the pipeline stops."""


class DeadLetterQueue:
    """Sends failed rows to ``topic``; implements the connector API's ``ErrorReporter``."""

    def __init__(
        self,
        producer: Producer,
        topic: str,
        pipeline: str,
        tolerate: bool,
        loop: asyncio.AbstractEventLoop,
        metrics: PipelineMetrics | None = None,
    ) -> None:
        self.producer = producer
        self.topic = topic
        self.pipeline = pipeline
        self.tolerate = tolerate
        self.loop = loop
        self.metrics = metrics
        self._pending: list[concurrent.futures.Future[Any] | asyncio.Future[Any]] = []

    def report(
        self, batch: RecordBatch, rows: Sequence[int], error: BaseException, stage: str
    ) -> None:
        """Dead-letter ``rows`` of a record batch, all for one ``error``."""
        self.report_rows(batch, dict.fromkeys(rows, error), stage)

    def report_rows(
        self, batch: RecordBatch, failures: Mapping[int, BaseException], stage: str
    ) -> None:
        """Dead-letter the rows of ``failures`` (row -> error) as one message batch; each
        value is its row as JSON."""
        if not failures:
            return
        rows = list(failures)
        picked = batch.values.take(pa.array(rows, pa.int64()))
        bodies = [
            json.dumps(row, default=str, ensure_ascii=False).encode() for row in picked.to_pylist()
        ]
        headers = []
        for row in rows:
            position = batch.position_of(row)
            where = (
                {"partition": dict(position.partition), "offset": dict(position.offset)}
                if position
                else None
            )
            headers.append(self._headers(failures[row], stage, {"position": where, "row": row}))
        self._send(MessageBatch.build(values=bodies, headers=headers), failures[rows[0]], stage)

    def report_raw(
        self,
        payloads: Sequence[bytes],
        error: BaseException | Sequence[BaseException],
        where: Mapping[str, Any] | Sequence[Mapping[str, Any]],
        stage: str = "read",
    ) -> None:
        """Dead-letter source data that never became rows, as it was read (one message per
        payload; its place, such as file and line, in ``omconnect.error.position``)."""
        if not payloads:
            return
        errors = per_payload(error, len(payloads))
        places = per_payload(where, len(payloads))
        headers = [
            self._headers(reason, stage, dict(place))
            for reason, place in zip(errors, places, strict=True)
        ]
        self._send(MessageBatch.build(values=list(payloads), headers=headers), errors[0], stage)

    def report_messages(
        self,
        messages: MessageBatch,
        failures: Mapping[int, BaseException],
        stage: str,
        topic: str,
        partition: int,
    ) -> None:
        """Dead-letter the consumed messages of ``failures`` (row -> error) as they were
        (original key, value and headers), as one message batch."""
        if not failures:
            return
        rows = list(failures)
        picked = messages.take(rows)
        offsets = picked.offsets
        headers = []
        for i, row in enumerate(rows):
            original = picked.header_dict(i)
            offset = int(offsets[i].as_py()) if offsets is not None else None
            where = {"topic": topic, "partition": partition, "offset": offset}
            original.update(self._headers(failures[row], stage, where))
            headers.append(original)
        dead = MessageBatch.build(
            values=picked.values, keys=picked.keys, timestamps=picked.timestamps, headers=headers
        )
        self._send(dead, failures[rows[0]], stage)

    def delivered(self) -> None:
        """Block a task's thread until every report so far is acknowledged by the broker (a
        sink storing its positions in ``flush`` calls this before committing them)."""
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self.loop:
            raise RuntimeError("delivered() blocks: call it from a task's thread")
        for future in list(self._pending):
            if isinstance(future, concurrent.futures.Future):
                future.result()

    async def drain(self) -> None:
        """Wait until every report so far is acknowledged by the broker."""
        pending, self._pending = self._pending, []
        for future in pending:
            if isinstance(future, concurrent.futures.Future):
                await asyncio.wrap_future(future)
            else:
                await future

    def _headers(self, error: BaseException, stage: str, where: dict[str, Any]) -> dict[str, bytes]:
        return {
            f"{HEADER_PREFIX}stage": stage.encode(),
            f"{HEADER_PREFIX}reason": str(error).encode(),
            f"{HEADER_PREFIX}exception": type(error).__name__.encode(),
            f"{HEADER_PREFIX}pipeline": self.pipeline.encode(),
            f"{HEADER_PREFIX}position": json.dumps(where, default=str).encode(),
        }

    def _send(self, messages: MessageBatch, error: BaseException, stage: str) -> None:
        if not self.tolerate:
            raise RecordFailedError(
                f"{stage} failed and errors.tolerance is none: {error}"
            ) from error
        if self.metrics is not None:
            self.metrics.rows_dead_lettered += len(messages)
            if stage == "sink":  # rows the sink took (counted written) and then refused
                self.metrics.rows_written -= len(messages)
        log.warning("%d record(s) to %s (%s): %s", len(messages), self.topic, stage, error)
        coroutine = self.producer.send(self.topic, messages)
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self.loop:
            self._pending.append(self.loop.create_task(coroutine))
        else:
            self._pending.append(asyncio.run_coroutine_threadsafe(coroutine, self.loop))

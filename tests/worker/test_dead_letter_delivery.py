"""``DeadLetterQueue.delivered``: a task's thread that reported rows waits there until the
broker acknowledged them, and learns when it could not."""

from __future__ import annotations

import asyncio

import pytest

from omconnect.connectors.api import ConnectorError
from omconnect.runtime.testing import sink_batches, standard_rows
from omconnect.runtime.worker.dead_letter import DeadLetterQueue
from omconnect.schemas.message_batch import MessageBatch


class GatedProducer:
    """Takes each send once ``gate`` is set (or fails it, with ``fail``)."""

    def __init__(self, fail: bool = False) -> None:
        self.gate = asyncio.Event()
        self.fail = fail
        self.sent: list[int] = []

    async def send(self, topic: str, messages: MessageBatch) -> list:
        await self.gate.wait()
        if self.fail:
            raise ConnectionError("the broker went away")
        self.sent.append(len(messages))
        return []


def report_and_wait(queue: DeadLetterQueue, order: list[str]) -> None:
    """What a sink's flush does on its thread: report a row, wait for it."""
    (batch,) = sink_batches(
        standard_rows(0, 3), topic="t", partition=0, first_offset=0, batch_rows=3
    )
    queue.report(batch, [1], ConnectorError("refused"), "sink")
    order.append("reported")
    queue.delivered()
    order.append("delivered")


def test_a_thread_waits_until_its_reports_are_acknowledged() -> None:
    async def body() -> tuple[list[str], list[int]]:
        producer = GatedProducer()
        queue = DeadLetterQueue(producer, "t.dlq", "p", True, asyncio.get_running_loop())  # type: ignore[arg-type]
        order: list[str] = []
        waiting = asyncio.ensure_future(asyncio.to_thread(report_and_wait, queue, order))
        while "reported" not in order and not waiting.done():
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)
        order.append("acknowledging")
        producer.gate.set()
        await waiting
        return order, producer.sent

    order, sent = asyncio.run(body())
    assert order == ["reported", "acknowledging", "delivered"]
    assert sent == [1]


def test_a_report_the_broker_did_not_take_fails_the_wait() -> None:
    async def body() -> None:
        producer = GatedProducer(fail=True)
        producer.gate.set()
        queue = DeadLetterQueue(producer, "t.dlq", "p", True, asyncio.get_running_loop())  # type: ignore[arg-type]
        with pytest.raises(ConnectionError, match="went away"):
            await asyncio.to_thread(report_and_wait, queue, [])

    asyncio.run(body())


def test_waiting_on_the_event_loop_is_refused() -> None:
    async def body() -> None:
        queue = DeadLetterQueue(GatedProducer(), "t.dlq", "p", True, asyncio.get_running_loop())  # type: ignore[arg-type]
        with pytest.raises(RuntimeError, match="task's thread"):
            queue.delivered()

    asyncio.run(body())

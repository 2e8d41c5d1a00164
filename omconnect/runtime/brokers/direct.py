"""``broker: none``: the sink takes the source's batches in this process, with no topic between.

For pipelines that land a source in a sink on one machine (a table into Parquet files, dlt's
and sling's job): nothing is encoded, stored in a log or read back. A topic costs a pipeline
like B1a (PostgreSQL -> Parquet) about as much CPU as reading the table: Avro encoding, the
embedded log's appends and compression, and the sink reading it back (B1 at 9b5456a: 2.89 s of
client CPU per 1M rows through the embedded topic, 1.86 s without). Without one the source's
Arrow columns reach the sink as they are (``format`` does not apply).

This is a departure from DESIGN.md, where every pipeline goes through its topic; it is opt-in
per pipeline. The runtime's loops stay as they are: ``DirectBroker`` is a broker to them whose
one partition per topic holds the batches the source loop sends, in memory, until the sink loop
has made them durable.

Delivery stays at least once, as Redpanda Connect's does between an input and an output:

* a send is acknowledged only when the sink loop commits past its last message, that is after
  the sink's flush made it durable; the source loop stores its positions after that ack, so a
  stored source position never covers a row the sink has not written;
* messages are numbered per topic from where the sink's last commit left off, stored in the
  pipeline's offset store (namespace ``<pipeline>:sink``) before the acks go back. After a
  crash the source resumes from its stored positions and the rows it reads again get the
  numbers they had, so a file sink replaces the files it wrote but never had committed (as it
  does when a topic is replayed to it). A crash between storing the sink's commit and the
  source's delivers the rows in between once more, under new numbers: duplicates bounded by
  one commit;
* a sink that stores its own positions in its transaction (the sql sink) is ahead of the
  offset store after a crash between the two: its topics are numbered from the sink's first
  seek, to those positions, and sends wait for it (``_TopicLog.numbered``; where the sink
  ends, the runner asks once no send waits, ``sends_numbered``). Numbered from the
  offset store, rows read again could get numbers the sink had stored and be skipped, lost
  when the source read other rows than before (a changed table). So such a sink is at least
  once here, not exactly once as through a topic: what it wrote before the source stored its
  position comes again under new numbers;
* the sink commits every ``commit_interval`` as always, and as soon as what it was given and not
  yet committed reaches half of ``max_in_flight_bytes`` (``on_commit_wanted``), so a source
  never waits on its in-flight budget for long; the runner ends the sink at the log's end
  once every source task has stopped polling and sent what it polled (``SourceLoop.all_sent``:
  under ``--once`` and at a stop alike), so what is in flight is delivered, and a sink whose
  last flush keeps some of it back fails the run (``unwritten``) rather than leave its
  senders waiting.

Not here: rows for a topic the sink does not read (a batch with a topic of its own): nothing
would keep them (``check_read``). Dead letters go to the embedded broker of the pipeline's
state directory (the runner opens it), not through this broker.
"""

from __future__ import annotations

import asyncio
import re
from collections import deque
from collections.abc import Callable, Mapping, Sequence, Set
from dataclasses import dataclass

from omconnect.runtime.brokers.base import (
    Broker,
    BrokerError,
    Capabilities,
    ConsumedBatch,
    Consumer,
    ConsumerStart,
    Producer,
    RebalanceListener,
    SendResult,
    TopicInfo,
    TopicPartition,
    TopicSettings,
    UnsupportedOperation,
)
from omconnect.runtime.state.offsets.base import OffsetStore
from omconnect.schemas.message_batch import MessageBatch
from omconnect.schemas.record import Position, RecordBatch

NO_BROKER = "none"
"""The ``broker:`` value of a pipeline without a broker."""


def sink_namespace(pipeline: str) -> str:
    """Where the offset store keeps the sink's commits of a pipeline without a broker (``:``
    is not allowed in a pipeline name, so no pipeline's own positions are there)."""
    return f"{pipeline}:sink"


def _partition(topic: str) -> dict[str, object]:
    return {"topic": topic, "partition": 0}


@dataclass
class _Sent:
    """One batch the source loop sent: its messages (numbered), its rows as the source gave
    them, and the ack its sender awaits."""

    messages: MessageBatch
    records: RecordBatch
    acked: asyncio.Future[None]
    first: int

    @property
    def end(self) -> int:
        return self.first + len(self.messages)


class _TopicLog:
    """What is sent to one topic and not yet committed by the sink, in order. Sends wait
    until the log is ``numbered``: at once, or, for a sink that stores its own positions,
    once the sink has said where it stands (``DirectConsumer.seek``)."""

    def __init__(self, topic: str, committed: int, numbered: bool) -> None:
        self.topic = topic
        self.committed = committed
        self.end = committed
        self.held: deque[_Sent] = deque()
        self.numbered = asyncio.Event()
        if numbered:
            self.numbered.set()

    def number_from(self, offset: int) -> None:
        """Number the sends from ``offset`` on, if that is ahead (nothing was sent yet)."""
        self.committed = self.end = max(self.committed, offset)
        self.numbered.set()


class DirectBroker(Broker):
    """The broker of a pipeline with ``broker: none``: one partition per topic, in memory."""

    capabilities = Capabilities(log=True, end_offsets=True, partitions=False, groups=False)

    def __init__(self, offsets: OffsetStore, pipeline: str, commit_bytes: int) -> None:
        """``offsets`` keeps the sink's commits; ``commit_bytes``: what the sink may hold
        uncommitted before it is asked to commit."""
        self.url = NO_BROKER
        self.offsets = offsets
        self.namespace = sink_namespace(pipeline)
        self.commit_bytes = commit_bytes
        self.on_commit_wanted: Callable[[], None] | None = None
        """Asks the sink loop to flush and commit soon (set by the runner)."""
        self.sink_stores_positions = False
        """The sink keeps its own positions (set by the runner before anything is sent): each
        topic is numbered from the sink's first seek, where those positions are."""
        self.logs: dict[str, _TopicLog] = {}
        self._appended = asyncio.Event()
        self._unnumbered_sends = 0
        self._sends_numbered = asyncio.Event()
        self._sends_numbered.set()
        self._consumer: DirectConsumer | None = None
        self.closed = False

    async def producer(self) -> Producer:
        return DirectProducer(self)

    async def consumer(
        self,
        group: str,
        topics: Sequence[str] = (),
        *,
        pattern: str | None = None,
        listener: RebalanceListener | None = None,
        start: ConsumerStart = "earliest",
    ) -> Consumer:
        if self._consumer is not None:
            raise BrokerError("broker: none has one consumer, the pipeline's own sink")
        self._consumer = DirectConsumer(self, topics, pattern, listener)
        return self._consumer

    async def create_topic(self, name: str, settings: TopicSettings | None = None) -> None:
        """Start ``name``'s log where the sink's last commit left it (0 the first time)."""
        if name in self.logs:
            return
        stored = await asyncio.to_thread(self.offsets.get, self.namespace, _partition(name))
        committed = int(stored["offset"]) if stored is not None else 0
        self.logs.setdefault(name, _TopicLog(name, committed, not self.sink_stores_positions))
        self.wake()

    async def list_topics(self) -> list[TopicInfo]:
        return [TopicInfo(log.topic, 1, log.end - log.committed) for log in self.logs.values()]

    async def close(self) -> None:
        """Fail the sends still waiting for the sink: it will not write them in this run."""
        self.closed = True
        for log in self.logs.values():
            log.numbered.set()  # a send waiting for it sees the broker closed
            for sent in log.held:
                if not sent.acked.done():
                    sent.acked.set_exception(
                        BrokerError("the run ended before the sink wrote these rows")
                    )
            log.held.clear()

    async def sends_numbered(self) -> None:
        """Until no send waits for its topic to be numbered: every batch a source sent is in
        its log, and the log's end is where the sink ends (the runner asks before it takes
        the ends; the sink numbers a topic on its first poll of it)."""
        await self._sends_numbered.wait()

    async def wait_for_numbering(self, log: _TopicLog) -> None:
        """Until ``log`` is numbered; counted by ``sends_numbered``. The caller appends in
        the same step as this returns."""
        if log.numbered.is_set():
            return
        self._unnumbered_sends += 1
        self._sends_numbered.clear()
        try:
            await log.numbered.wait()
        finally:
            self._unnumbered_sends -= 1
            if not self._unnumbered_sends:
                self._sends_numbered.set()

    def sink_reads(self, topic: str) -> bool:
        """Whether the sink's consumer reads ``topic`` (true before it subscribed)."""
        return self._consumer is None or self._consumer.reads(topic)

    def unwritten(self) -> int:
        """How many messages were sent and not committed by the sink."""
        return sum(log.end - log.committed for log in self.logs.values())

    def wake(self) -> None:
        self._appended.set()

    async def wait_for_sends(self, timeout: float) -> None:
        """Until the next send (or a new topic), at most ``timeout`` seconds."""
        self._appended.clear()
        try:
            async with asyncio.timeout(timeout):
                await self._appended.wait()
        except TimeoutError:
            pass

    async def store_commits(self, offsets: Mapping[str, int]) -> None:
        """Store the sink's commits, then acknowledge every send they cover."""
        positions = [Position(_partition(topic), {"offset": o}) for topic, o in offsets.items()]
        await asyncio.to_thread(self.offsets.put, self.namespace, positions)
        for topic, offset in offsets.items():
            log = self.logs[topic]
            log.committed = max(log.committed, offset)
            while log.held and log.held[0].end <= log.committed:
                sent = log.held.popleft()
                if not sent.acked.done():
                    sent.acked.set_result(None)


class DirectProducer(Producer):
    """Hands the source loop's batches to the sink of the same run."""

    def __init__(self, broker: DirectBroker) -> None:
        self.broker = broker

    async def send(
        self, topic: str, messages: MessageBatch, partition: int | None = None
    ) -> list[SendResult]:
        raise UnsupportedOperation(
            "broker: none carries a pipeline's own rows to its sink (send_records), no messages"
        )

    def check_read(self, topic: str) -> None:
        """Refuse rows for a topic the sink does not read (a batch with a topic of its own,
        routed away from the pipeline's): without a broker nothing would keep them.

        Raises:
            ValueError: the pipeline's sink does not read ``topic``.
        """
        if not self.broker.sink_reads(topic):
            raise ValueError(
                f"rows for topic {topic!r}, which the sink does not read: with broker: none "
                "there is no broker to keep them; set a broker to publish them"
            )

    async def send_records(
        self, topic: str, messages: MessageBatch, records: RecordBatch
    ) -> list[SendResult]:
        """Give ``records`` (whose message metadata is ``messages``) to the sink; returns once
        the sink has committed them."""
        if self.broker.closed:
            raise BrokerError("broker: none is closed")
        log = self.broker.logs.get(topic)
        if log is None:
            raise BrokerError(f"no topic {topic!r}: create it first")
        await self.broker.wait_for_numbering(log)
        if self.broker.closed:
            raise BrokerError("broker: none is closed")
        first = log.end
        sent = _Sent(
            messages.with_offsets(first),
            records,
            asyncio.get_running_loop().create_future(),
            first,
        )
        log.end = sent.end
        log.held.append(sent)
        self.broker.wake()
        await sent.acked
        return [SendResult(topic, 0, first, len(messages))]

    async def close(self) -> None:
        pass


class DirectConsumer(Consumer):
    """The sink loop's side: reads what was sent, whole batches at a time, and commits."""

    def __init__(
        self,
        broker: DirectBroker,
        topics: Sequence[str],
        pattern: str | None,
        listener: RebalanceListener | None,
    ) -> None:
        self.broker = broker
        self.topics = set(topics)
        self.pattern = re.compile(pattern) if pattern is not None else None
        self.listener = listener
        self.assigned: set[str] = set()
        self.paused: set[str] = set()
        self.position: dict[str, int] = {}
        self._uncommitted_bytes = 0
        self._commit_asked = False

    def reads(self, topic: str) -> bool:
        """Whether the sink reads ``topic`` (its topics, or its pattern)."""
        return topic in self.topics or (
            self.pattern is not None and self.pattern.fullmatch(topic) is not None
        )

    async def _assign_new(self) -> None:
        new = {t for t in self.broker.logs if t not in self.assigned and self.reads(t)}
        if not new:
            return
        for topic in new:
            self.position[topic] = self.broker.logs[topic].committed
        self.assigned |= new
        if self.listener is not None:
            await self.listener.on_partitions_assigned({(t, 0) for t in new})

    async def poll(self, max_messages: int, timeout: float) -> list[ConsumedBatch]:
        """Whole sent batches (at least one when there is one, up to ``max_messages``
        messages), waiting up to ``timeout`` for a send."""
        await self._assign_new()
        batches = self._take(max_messages)
        if not batches and timeout > 0:
            await self.broker.wait_for_sends(timeout)
            await self._assign_new()
            batches = self._take(max_messages)
        if (
            self._uncommitted_bytes >= self.broker.commit_bytes
            and not self._commit_asked
            and self.broker.on_commit_wanted is not None
        ):
            self._commit_asked = True
            self.broker.on_commit_wanted()
        return batches

    def _take(self, max_messages: int) -> list[ConsumedBatch]:
        taken: list[ConsumedBatch] = []
        count = 0
        for topic in sorted(self.assigned - self.paused):
            log = self.broker.logs[topic]
            at = self.position[topic]
            for sent in log.held:
                if sent.end <= at:
                    continue
                if taken and count + len(sent.messages) > max_messages:
                    return taken
                skip = max(0, at - sent.first)
                messages, records = sent.messages, sent.records
                if skip:  # a seek into the batch
                    messages = messages.slice(skip)
                    records = records.slice(skip, records.num_rows - skip)
                taken.append(ConsumedBatch(topic, 0, messages, records=records))
                count += len(messages)
                self._uncommitted_bytes += records.nbytes
                at = self.position[topic] = sent.end
        return taken

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        await self.broker.store_commits({topic: offset for (topic, _), offset in offsets.items()})
        self._uncommitted_bytes = sum(
            sent.records.nbytes
            for topic in self.assigned
            for sent in self.broker.logs[topic].held
            if sent.end <= self.position[topic]
        )
        self._commit_asked = False

    async def committed(self) -> dict[TopicPartition, int]:
        return {(t, 0): log.committed for t, log in self.broker.logs.items() if self.reads(t)}

    async def end_offsets(self) -> dict[TopicPartition, int]:
        return {(t, 0): log.end for t, log in self.broker.logs.items() if self.reads(t)}

    async def seek(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Read from these offsets next, within what is held: before the last commit is
        gone (written and committed), past the end is refused. The first seek of a topic not
        yet numbered (a sink that stores its own positions, seeking to them) numbers it from
        there."""
        for (topic, _), offset in offsets.items():
            log = self.broker.logs[topic]
            if not log.numbered.is_set():
                log.number_from(offset)
            if offset > log.end:
                raise BrokerError(
                    f"cannot seek {topic} to {offset}: broker: none has sent up to {log.end}"
                )
            self.position[topic] = max(offset, log.committed)

    async def assignment(self) -> set[TopicPartition]:
        return {(t, 0) for t in self.assigned}

    async def pause(self, partitions: Set[TopicPartition]) -> None:
        self.paused |= {topic for topic, _ in partitions}

    async def resume(self, partitions: Set[TopicPartition]) -> None:
        self.paused -= {topic for topic, _ in partitions}

    async def close(self) -> None:
        pass

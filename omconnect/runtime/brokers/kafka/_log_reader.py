"""``LogReader``: where partitions end, found by reading their tails.

Kafka's ListOffsets tells the high-water, but not where a reader of committed messages ends:
the last offsets of a partition may be transaction markers or aborted messages, which no
reader ever gets, so a ``--once`` run waiting for the high-water would wait forever. And some
servers answer ListOffsets wrongly (Tansu 0.6 answers the first offset of the newest batch,
plus one). So the ends here come from reading: an assign-only consumer starts a little before
the end of each partition and reads until librdkafka reports the partition's end (EOF), which
it does at the high-water (``read_uncommitted``) or at the last stable offset
(``read_committed``), both from fetch responses. The last message read before it is the last
one a reader gets; when the tail holds no message, the window grows backwards (16, 256, ...
offsets) until one is found or the partition's start is reached. A partition costs one fetch
when its last record is a message, a few more after a transaction's marker.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable

from confluent_kafka import Consumer, KafkaError, Message, TopicPartition

from omconnect.runtime.brokers.base import BrokerError
from omconnect.runtime.brokers.base import TopicPartition as Partition
from omconnect.runtime.brokers.kafka._errors import ConnectionProblems
from omconnect.runtime.brokers.kafka._librdkafka import reader_config
from omconnect.runtime.brokers.kafka._options import KafkaOptions

# librdkafka's logical offset "one message before the end" (RD_KAFKA_OFFSET_TAIL(1)).
_LAST_MESSAGE = -2001
_BEGINNING = -2
_MISSING = frozenset(
    {KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_PARTITION, KafkaError._UNKNOWN_TOPIC}
)
_GROWTH = 16


class LogReader:
    """One assign-only consumer, used by one call at a time from worker threads.

    Args:
        options: the URL's options (servers, timeouts).
        problems: where connection errors are noted.
        committed_only: read as a ``read_committed`` consumer (ends are last stable
            offsets, aborted and open transactions' messages are skipped) or see everything.
    """

    def __init__(
        self, options: KafkaOptions, problems: ConnectionProblems, committed_only: bool
    ) -> None:
        self._config = reader_config(options, problems, committed_only)
        self._timeout = options.request_timeout_ms / 1000
        self._lock = threading.Lock()
        self._client: Consumer | None = None
        self._known: set[str] = set()
        self._closed = False

    def high_waters(self, partitions: Iterable[Partition]) -> dict[Partition, tuple[int, int]]:
        """Each partition's start and end: ``(low, high)``, ``high`` where a reader stops."""
        with self._lock:
            wanted = dict.fromkeys(partitions, _LAST_MESSAGE)
            if not wanted:
                return {}
            ends, _, lows = self._scan(wanted)
            return {tp: (lows[tp], end) for tp, end in ends.items()}

    def readable_ends(self, partitions: Iterable[Partition]) -> dict[Partition, int]:
        """The offset after the last message a reader gets from each partition (its start
        when it has none)."""
        with self._lock:
            starts = dict.fromkeys(partitions, _LAST_MESSAGE)
            found: dict[Partition, int] = {}
            window = 1
            while starts:
                ends, last, lows = self._scan(starts)
                retry: dict[Partition, int] = {}
                for tp, start in starts.items():
                    if tp in last:
                        found[tp] = last[tp] + 1
                    elif ends[tp] <= lows[tp] or 0 <= start <= lows[tp]:
                        found[tp] = min(ends[tp], lows[tp])  # no message at all
                    else:
                        retry[tp] = max(lows[tp], ends[tp] - window * _GROWTH)
                starts = retry
                window *= _GROWTH
            return found

    def read_all(self, tp: Partition, keep: Callable[[Message], None]) -> None:
        """Hand every message of ``tp``, from its start to its end, to ``keep``."""
        with self._lock:
            self._scan({tp: _BEGINNING}, keep)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._client is not None:
                self._client.close()
                self._client = None

    def _consumer(self) -> Consumer:
        if self._closed:
            raise BrokerError("kafka: the broker was closed")
        if self._client is None:
            self._client = Consumer(self._config)
        return self._client

    def _scan(
        self, starts: dict[Partition, int], keep: Callable[[Message], None] | None = None
    ) -> tuple[dict[Partition, int], dict[Partition, int], dict[Partition, int]]:
        """Read from ``starts`` to each partition's end: the ends, the offset of the last
        message read of each partition that had one, and the partitions' starts."""
        client = self._consumer()
        topics = {t for t, _ in starts}
        if not topics <= self._known:
            # Without the partitions' leaders, librdkafka retries a tail offset only after a
            # half-second timer; with them, it asks at once.
            client.list_topics(timeout=self._timeout)
            self._known |= topics
        client.assign([TopicPartition(t, p, offset) for (t, p), offset in starts.items()])
        pending = set(starts)
        ends: dict[Partition, int] = {}
        last: dict[Partition, int] = {}
        lows: dict[Partition, int] = {}
        deadline = time.monotonic() + self._timeout
        try:
            while pending:
                if time.monotonic() > deadline:
                    raise BrokerError(
                        f"kafka: reading to the end of {len(pending)} partition(s) took longer "
                        f"than {self._timeout:g} s; check that the broker is up"
                    )
                for message in client.consume(10_000, 0.05):
                    tp = (message.topic() or "", message.partition() or 0)
                    if tp not in pending:
                        continue
                    error = message.error()
                    if error is None:
                        last[tp] = message.offset() or 0
                        if keep is not None:
                            keep(message)
                    elif error.code() == KafkaError._PARTITION_EOF:
                        ends[tp] = message.offset() or 0
                        low, _ = client.get_watermark_offsets(TopicPartition(*tp), cached=True)
                        lows[tp] = max(0, low)
                        pending.discard(tp)
                    elif error.code() in _MISSING:
                        ends[tp] = lows[tp] = 0
                        pending.discard(tp)
                    elif error.fatal():
                        raise BrokerError(f"kafka: reading {tp[0]}[{tp[1]}] failed: {error.str()}")
        finally:
            client.unassign()
        return ends, last, lows

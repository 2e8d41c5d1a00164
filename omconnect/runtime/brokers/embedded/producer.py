"""``EmbeddedProducer``: appends message batches to the embedded log, in transactions or not."""

from __future__ import annotations

import logging
import os
import sqlite3
import time
import uuid
from collections.abc import Mapping

import pyarrow.compute as pc

from omconnect.runtime.brokers.base import BrokerError, Producer, SendResult, TopicSettings
from omconnect.runtime.brokers.embedded import _log_store, _retention, _transactions
from omconnect.runtime.brokers.embedded._append_signal import AppendSignal
from omconnect.runtime.brokers.embedded._log_store import PendingSegment
from omconnect.runtime.brokers.embedded._owner_lock import OwnerLock
from omconnect.runtime.brokers.embedded._segment_codec import SegmentCodec
from omconnect.runtime.brokers.embedded._sqlite_thread import SqliteThread
from omconnect.runtime.brokers.embedded._transactions import (
    OpenTransaction,
    TransactionAbortedError,
)
from omconnect.runtime.brokers.key_partitioning import KeyPartitioner
from omconnect.schemas.message_batch import MessageBatch

log = logging.getLogger("omconnect.broker.embedded")

# How often a producer enforces the retention of the topics it sends to (and aborts dangling
# transactions): on its first send to a topic, then at most this often. A few indexed SELECTs
# when there is nothing to trim.
UPKEEP_INTERVAL = 2.0


class EmbeddedProducer(Producer):
    """Publishes batches through its own SQLite connection and thread.

    A send partitions the batch (Kafka's murmur2 of the key; messages without a key all go to
    one partition, rotating per send), encodes one segment per partition touched (more for
    very large batches) and appends them in one transaction. Topics are created with default
    settings (one partition) on first send. Concurrent sends, begins, commits and aborts of one
    producer are applied in call order.

    Transactions: sends between ``begin_transaction`` and ``commit_transaction`` take offsets
    as usual but no consumer sees them (nor any later message of their partitions) until the
    commit; ``abort_transaction`` deletes them, leaving a gap in the offsets. A transaction
    open longer than ``transaction_timeout`` seconds, or whose producer's process died, is
    aborted by the next reader or writer that meets it; its producer's next send or commit
    then fails with ``BrokerError`` (see ``_transactions``).

    Retention: on its first send to a topic with ``retention_ms`` or ``retention_bytes`` and
    then every ``UPKEEP_INTERVAL`` seconds, the producer trims that topic's old segments.
    """

    def __init__(
        self,
        thread: SqliteThread,
        codec: SegmentCodec,
        signal: AppendSignal,
        segment_bytes: int,
        transaction_timeout: float = 60.0,
    ) -> None:
        if not transaction_timeout > 0:
            raise ValueError(f"transaction_timeout must be positive, got {transaction_timeout}")
        self._thread = thread
        self._codec = codec
        self._signal = signal
        self._segment_bytes = segment_bytes
        self._transaction_timeout_ms = int(transaction_timeout * 1000)
        self.producer_id = f"{os.getpid()}-{uuid.uuid4().hex}"
        # Only touched on the connection's thread.
        self._topics: dict[str, TopicSettings] = {}
        self._partitioner = KeyPartitioner()
        self._upkeep_due: dict[str, float] = {}
        self._transaction: OpenTransaction | None = None
        self._owner_lock: OwnerLock | None = None
        self._closed = False

    async def send(
        self, topic: str, messages: MessageBatch, partition: int | None = None
    ) -> list[SendResult]:
        """Append ``messages`` to ``topic``; returns once the SQLite transaction committed
        (inside a producer transaction: stored, and invisible until its commit).

        Raises:
            ValueError: ``partition`` does not exist in ``topic``.
            BrokerError: the open transaction was aborted meanwhile (past its
                ``transaction_timeout``); nothing was appended: abort it and start again.
        """
        if len(messages) == 0:
            return []
        results = await self._thread.run(self._send_on_thread, topic, messages, partition)
        self._signal.notify()
        return results

    def _send_on_thread(
        self,
        connection: sqlite3.Connection,
        topic: str,
        messages: MessageBatch,
        partition: int | None,
    ) -> list[SendResult]:
        settings = self._topics.get(topic)
        if settings is None:
            settings = _log_store.ensure_topic(connection, topic, TopicSettings())
            self._topics[topic] = settings
        segments: list[PendingSegment] = []
        for number, group in self._partitioner.split(messages, settings.partitions, partition):
            segments.extend(self._encode(number, group))
        appended = _log_store.append(connection, topic, segments, self._transaction)
        if time.monotonic() >= self._upkeep_due.get(topic, 0.0):
            self._upkeep(connection, topic, settings)
        return [SendResult(topic, p, first, count) for p, first, count in appended]

    def _upkeep(self, connection: sqlite3.Connection, topic: str, settings: TopicSettings) -> None:
        # The send is committed: a failure here must not fail it, the next upkeep retries.
        self._upkeep_due[topic] = time.monotonic() + UPKEEP_INTERVAL
        try:
            _retention.enforce_retention(connection, topic, settings)
            _transactions.abort_dangling(connection)
        except sqlite3.OperationalError as exc:
            log.warning(
                "embedded broker: retention of topic %r (and dangling transactions) left to "
                "the next check: %s",
                topic,
                exc,
            )

    async def begin_transaction(self) -> None:
        """Start a transaction; the sends that follow are invisible until the commit. Aborts
        other producers' dangling transactions first.

        Raises:
            BrokerError: this producer has a transaction open already.
        """
        await self._thread.run(self._begin_on_thread)

    def _begin_on_thread(self, connection: sqlite3.Connection) -> None:
        if self._transaction is not None:
            raise BrokerError("a transaction is open already: commit or abort it first")
        if self._owner_lock is None:
            lock = OwnerLock(_transactions.log_path(connection), self.producer_id)
            lock.acquire()
            self._owner_lock = lock
        _transactions.abort_dangling(connection)
        now = _transactions.now_ms()
        self._transaction = OpenTransaction(
            self.producer_id, now, now + self._transaction_timeout_ms
        )

    async def commit_transaction(
        self, namespace: str | None = None, positions: Mapping[str, str] | None = None
    ) -> None:
        """Make every send of the transaction visible and store ``positions`` under
        ``namespace``, atomically; durable when it returns.

        Raises:
            BrokerError: no transaction is open, or it was aborted (past its
                ``transaction_timeout``); then nothing was stored and none is open.
            ValueError: ``positions`` without a ``namespace``.
        """
        if positions and namespace is None:
            raise ValueError("commit_transaction needs a namespace to store positions under")
        await self._thread.run(self._commit_on_thread, namespace, dict(positions or {}))
        self._signal.notify()

    def _commit_on_thread(
        self, connection: sqlite3.Connection, namespace: str | None, positions: dict[str, str]
    ) -> None:
        transaction = self._transaction
        if transaction is None:
            raise BrokerError("no transaction is open: call begin_transaction first")
        try:
            _transactions.commit(connection, transaction, namespace, positions)
        except TransactionAbortedError:
            self._transaction = None
            raise
        self._transaction = None

    async def abort_transaction(self) -> None:
        """Drop every send of the open transaction (none open: nothing happens)."""
        await self._thread.run(self._abort_on_thread)
        self._signal.notify()  # messages sent after the transaction's may be readable now

    def _abort_on_thread(self, connection: sqlite3.Connection) -> None:
        transaction = self._transaction
        if transaction is not None and transaction.id is not None:
            _transactions.abort(connection, transaction.id)
        self._transaction = None

    def _encode(self, partition: int, messages: MessageBatch) -> list[PendingSegment]:
        rows = len(messages)
        per_segment = max(1, rows * self._segment_bytes // max(1, messages.nbytes))
        segments = []
        for start in range(0, rows, per_segment):
            part = messages.slice(start, per_segment)
            max_timestamp = pc.max(part.timestamps).as_py()
            segments.append(
                PendingSegment(
                    partition=partition,
                    count=len(part),
                    max_timestamp=int(max_timestamp or 0),
                    body=self._codec.encode(part),
                )
            )
        return segments

    async def close(self) -> None:
        """Abort the open transaction, if any, and release the connection."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._owner_lock is not None:  # it began transactions
                await self._thread.run(self._close_on_thread)
        finally:
            await self._thread.close()

    def _close_on_thread(self, connection: sqlite3.Connection) -> None:
        try:
            self._abort_on_thread(connection)
        finally:
            if self._owner_lock is not None:
                self._owner_lock.release()

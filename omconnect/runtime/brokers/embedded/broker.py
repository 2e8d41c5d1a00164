"""``EmbeddedBroker``: a durable, multi-partition log in one SQLite file, no server needed.

The log lives in ``DIRECTORY/broker.sqlite`` in WAL mode, so several processes can use it at
once (a pipeline producing while ``omconnect topics tail`` reads). Messages are stored as
batches: one ``segments`` row per partition per send holds an Arrow IPC stream of the
messages. A send returns after its transaction committed.

Durability: with ``sync=full`` (the default) every send is fsynced before it is acknowledged,
so an acknowledged message survives a crash, SIGKILL or power loss; sends are whole batches,
so this costs one fsync per batch. ``sync=normal`` survives a crash or SIGKILL of any process
but a power loss or OS crash may lose the last transactions, which the offset store may
already have committed. A transaction's commit (its messages and its positions) is one
SQLite transaction, as durable as a send.

Transactions: a producer's sends between ``begin_transaction`` and ``commit_transaction`` are
invisible to every consumer until the commit, which also stores source positions
(``transaction_positions``); an abort deletes them, leaving a gap in the offsets. As in Kafka,
consumers read each partition up to its last stable offset, the first offset of its oldest
open transaction, so later messages of that partition wait for the transaction to end. A
transaction whose producer died (even by SIGKILL) is aborted by the next consumer or producer
that meets it, and one open longer than ``transaction_timeout`` seconds (default 60) too.

Retention: topics created with ``retention_ms`` or ``retention_bytes`` lose their oldest whole
segments once older (by append time) or bigger than that; producers enforce it on their first
send to the topic and every few seconds after. ``delete_before`` trims by hand. The embedded
broker does not compact: a ``compacted`` topic is stored as such but keeps every message until
retention trims it (``Capabilities.compaction`` is false).

Consumer groups live in the same file, so members in any process of the machine share them:
the members of a group split the partitions (Kafka's range assignment), hand them over with
rebalance callbacks when a member joins, leaves or stops heartbeating for ``session_timeout``
seconds, and a stale member's commits are refused (see ``EmbeddedConsumer``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import partial
from pathlib import Path

from omconnect.runtime.brokers.base import (
    Capabilities,
    ConsumerStart,
    OwningBroker,
    RebalanceListener,
    TopicInfo,
    TopicSettings,
)
from omconnect.runtime.brokers.embedded import _log_store, _transactions
from omconnect.runtime.brokers.embedded._append_signal import append_signal
from omconnect.runtime.brokers.embedded._segment_codec import SegmentCodec
from omconnect.runtime.brokers.embedded._sqlite_thread import SqliteThread
from omconnect.runtime.brokers.embedded.consumer import EmbeddedConsumer
from omconnect.runtime.brokers.embedded.producer import EmbeddedProducer

log = logging.getLogger("omconnect.broker.embedded")

LOG_FILE_NAME = "broker.sqlite"
_SYNC_MODES = {"normal": "NORMAL", "full": "FULL"}


class EmbeddedBroker(OwningBroker):
    """An access point to the embedded log under ``directory``.

    Args:
        directory: where ``broker.sqlite`` lives; created on first use. Relative paths are
            relative to the current directory.
        sync: ``"normal"`` or ``"full"`` (see the module docstring).
        compression: IPC compression of segment bodies: ``"lz4"``, ``"zstd"`` or ``"none"``.
        busy_timeout: seconds a write waits for another process's write lock.
        segment_bytes: a send is split into segments of about this many bytes, so a consumer
            reading a few messages never decodes a huge batch.
        url: the URL this broker was opened from (for display).
        session_timeout: seconds a consumer group member may go without a heartbeat before
            the other members take its partitions.
        transaction_timeout: seconds a producer's transaction may stay open before any
            reader or writer aborts it.
    """

    capabilities = Capabilities(transactions=True, retention=True)  # a log, not compacted

    def __init__(
        self,
        directory: str | Path,
        *,
        sync: str = "full",
        compression: str = "lz4",
        busy_timeout: float = 30.0,
        segment_bytes: int = 4 * 1024 * 1024,
        url: str | None = None,
        session_timeout: float = 10.0,
        transaction_timeout: float = 60.0,
    ) -> None:
        if sync.lower() not in _SYNC_MODES:
            raise ValueError(f"embedded broker sync must be 'normal' or 'full', not {sync!r}")
        if not session_timeout > 0:
            raise ValueError(
                f"embedded broker session_timeout must be positive seconds, not {session_timeout}"
            )
        self.session_timeout = session_timeout
        if not transaction_timeout > 0:
            raise ValueError(
                "embedded broker transaction_timeout must be positive seconds, "
                f"not {transaction_timeout}"
            )
        super().__init__(url or f"embedded://{directory}")
        self._transaction_timeout = transaction_timeout
        self.directory = Path(directory)
        self.log_path = self.directory / LOG_FILE_NAME
        self._synchronous = _SYNC_MODES[sync.lower()]
        self._codec = SegmentCodec(compression)
        self._busy_timeout = busy_timeout
        self._segment_bytes = segment_bytes
        # The watcher's connection only reads: the signal keeps no broker alive.
        self._signal = append_signal(
            self.log_path, partial(SqliteThread, self.log_path, "NORMAL", busy_timeout)
        )
        self._admin = self._connection()

    def _connection(self) -> SqliteThread:
        return SqliteThread(self.log_path, self._synchronous, self._busy_timeout)

    async def producer(self) -> EmbeddedProducer:
        """A producer with its own connection; sends are durable when they return."""
        return self._owned(
            EmbeddedProducer(
                self._connection(),
                self._codec,
                self._signal,
                self._segment_bytes,
                transaction_timeout=self._transaction_timeout,
            )
        )

    async def consumer(
        self,
        group: str,
        topics: Sequence[str] = (),
        *,
        pattern: str | None = None,
        listener: RebalanceListener | None = None,
        start: ConsumerStart = "earliest",
    ) -> EmbeddedConsumer:
        """A member of ``group`` reading ``topics`` and every topic whose whole name matches
        the regular expression ``pattern`` (topics created later included), with its own
        connection. It joins the group on its first poll and gets the partitions the group
        assigns it; ``listener`` hears about changes. ``start`` says where a partition without
        a committed offset begins: its first message, or its high-water.
        """
        if start not in ("earliest", "latest"):
            raise ValueError(f"start must be 'earliest' or 'latest', not {start!r}")
        return self._owned(
            EmbeddedConsumer(
                self._connection(),
                self._signal,
                group,
                topics,
                pattern=pattern,
                listener=listener,
                start=start,
                session_timeout=self.session_timeout,
            )
        )

    async def create_topic(self, name: str, settings: TopicSettings | None = None) -> None:
        """Create ``name`` with ``settings`` (default: one partition, no retention); an
        existing topic keeps the settings it was created with.

        Raises:
            ValueError: an empty name, no partitions, or a retention that is not positive.
        """
        wanted = settings or TopicSettings()
        await self._admin.run(_log_store.ensure_topic, name, wanted)
        if wanted.compacted:
            log.warning(
                "topic %r is marked compacted, but the embedded broker does not compact: it "
                "keeps every message until retention trims it",
                name,
            )

    async def topic_settings(self, name: str) -> TopicSettings | None:
        """The settings ``name`` was created with, or None if it does not exist."""
        return await self._admin.run(_log_store.topic_settings, name)

    async def list_topics(self) -> list[TopicInfo]:
        """Every topic with its partitions and the number of messages it holds (the offsets
        between its start and its high-water, aborted ones included)."""
        return await self._admin.run(_log_store.topic_infos)

    async def transaction_positions(self, namespace: str) -> dict[str, str]:
        """The positions committed under ``namespace`` by ``commit_transaction``."""
        return await self._admin.run(_transactions.load_positions, namespace)

    async def delete_before(self, topic: str, partition: int, offset: int) -> int:
        """Trim a partition so ``offset`` is its first readable message; returns the new
        start offset. Whole segments before it are deleted."""
        return await self._admin.run(_log_store.delete_before, topic, partition, offset)

    async def _close_connection(self) -> None:
        await self._admin.close()

"""``EmbeddedBroker``: a durable, multi-partition log in one SQLite file, no server needed.

The log lives in ``DIRECTORY/broker.sqlite`` in WAL mode, so several processes can use it at
once (a pipeline producing while ``omconnect topics tail`` reads). Messages are stored as
batches: one ``segments`` row per partition per send holds an Arrow IPC stream of the
messages. A send returns after its transaction committed.

Durability: with ``sync=full`` (the default) every send is fsynced before it is acknowledged,
so an acknowledged message survives a crash, SIGKILL or power loss; sends are whole batches,
so this costs one fsync per batch. ``sync=normal`` survives a crash or SIGKILL of any process
but a power loss or OS crash may lose the last transactions, which the offset store may
already have committed.

Retention: topics grow until trimmed with ``delete_before``; nothing is deleted automatically.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from omconnect.runtime.brokers.base import Broker, TopicInfo
from omconnect.runtime.brokers.embedded import _log_store
from omconnect.runtime.brokers.embedded._append_signal import AppendSignal
from omconnect.runtime.brokers.embedded._segment_codec import SegmentCodec
from omconnect.runtime.brokers.embedded._sqlite_thread import SqliteThread
from omconnect.runtime.brokers.embedded.consumer import EmbeddedConsumer
from omconnect.runtime.brokers.embedded.producer import EmbeddedProducer

LOG_FILE_NAME = "broker.sqlite"
_SYNC_MODES = {"normal": "NORMAL", "full": "FULL"}


class EmbeddedBroker(Broker):
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
    """

    def __init__(
        self,
        directory: str | Path,
        *,
        sync: str = "full",
        compression: str = "lz4",
        busy_timeout: float = 30.0,
        segment_bytes: int = 4 * 1024 * 1024,
        url: str | None = None,
    ) -> None:
        if sync.lower() not in _SYNC_MODES:
            raise ValueError(f"embedded broker sync must be 'normal' or 'full', not {sync!r}")
        self.directory = Path(directory)
        self.log_path = self.directory / LOG_FILE_NAME
        self.url = url or f"embedded://{directory}"
        self._synchronous = _SYNC_MODES[sync.lower()]
        self._codec = SegmentCodec(compression)
        self._busy_timeout = busy_timeout
        self._segment_bytes = segment_bytes
        self._signal = AppendSignal()
        self._admin = self._connection()
        self._clients: list[EmbeddedProducer | EmbeddedConsumer] = []

    def _connection(self) -> SqliteThread:
        return SqliteThread(self.log_path, self._synchronous, self._busy_timeout)

    async def producer(self) -> EmbeddedProducer:
        """A producer with its own connection; sends are durable when they return."""
        producer = EmbeddedProducer(
            self._connection(), self._codec, self._signal, self._segment_bytes
        )
        self._clients.append(producer)
        return producer

    async def consumer(
        self,
        group: str,
        topics: Sequence[str],
        start: Literal["earliest", "latest"] = "earliest",
    ) -> EmbeddedConsumer:
        """A consumer of ``group`` reading every partition of ``topics``.

        This is a single-machine broker: there is no partition assignment between members;
        each consumer reads all partitions of its topics. ``start`` says where a partition
        without a committed offset begins: its first message, or its high-water.
        """
        if start not in ("earliest", "latest"):
            raise ValueError(f"start must be 'earliest' or 'latest', not {start!r}")
        consumer = EmbeddedConsumer(self._connection(), self._signal, group, topics, start)
        self._clients.append(consumer)
        return consumer

    async def create_topic(self, name: str, partitions: int = 1) -> None:
        """Create ``name`` with ``partitions`` partitions; an existing topic keeps its count."""
        await self._admin.run(_log_store.ensure_topic, name, partitions)

    async def list_topics(self) -> list[TopicInfo]:
        """Every topic with its partitions and the number of messages it holds."""
        return await self._admin.run(_log_store.topic_infos)

    async def delete_before(self, topic: str, partition: int, offset: int) -> int:
        """Trim a partition so ``offset`` is its first readable message; returns the new
        start offset. Whole segments before it are deleted."""
        return await self._admin.run(_log_store.delete_before, topic, partition, offset)

    async def close(self) -> None:
        """Close every producer and consumer made by this broker, then the broker itself."""
        for client in self._clients:
            await client.close()
        self._clients.clear()
        await self._admin.close()

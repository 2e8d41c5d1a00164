"""The ``redis://`` broker driver: the broker contract on Redis Streams, through redis-py's
asyncio client (the ``omconnect[redis]`` extra, imported only inside this package).

What maps to what, and why:

* **A topic partition is a stream**, ``<prefix>:<topic>:<partition>`` (``_keys``). Streams
  are ordered logs with ids, and one per partition lets each be read, trimmed and owned on
  its own, as a Kafka partition is. Keyed messages go to the partition Kafka's murmur2 picks
  (``key_partitioning``), as with every driver; the topics and their settings (partition
  count, retention) are fields of the hash ``<prefix>:topics`` (``_catalog``).
* **Offsets are entry ids.** Every entry is added with ``XADD key 0-* ...``: the server
  numbers a stream's entries ``0-1``, ``0-2``... from its own last id, so the offset of
  ``0-<n>`` is ``n - 1``: from 0, without gaps, whichever producer writes, kept by trimming,
  and the high-water is the stream's last generated id. (Time-based ``*`` ids have gaps.)
  The streams must therefore be written through omconnect (or with ``0-*`` ids).
* **A message is an entry's fields**: ``value``, ``key``, ``timestamp`` (the born time, epoch
  ms), ``message_id``, and one ``h:<name>`` field per header: the OpenMessaging header and
  extension fields (``oms.<name>``), content type, CloudEvents attributes, user properties;
  absent fields are nulls, so null and empty stay apart (``_scripts``, ``_entry_codec``).
  Other Redis clients read them as plain fields; an entry written by another client with
  fields of its own reads back with them as headers. The schema id is inside the value
  (the Confluent wire format of the ``avro`` converter).
* **The producer** appends a whole batch with one Lua script call per partition (all of a
  batch's calls in one pipeline: one round trip), which runs the ``XADD`` calls on the server
  atomically. A script rather than a MULTI of ``XADD`` commands because redis-py parses every
  reply in Python: a MULTI of 1000 commands has 2000 of them, a script one. ``send`` returns
  once the server replied; what that is worth depends on the server's persistence
  (``appendonly yes`` with ``appendfsync always`` for no loss; ``everysec``, the default,
  can lose about a second of acknowledged messages in a crash).
* **Consumer groups** (``consumer``, ``_group_storage``, ``_heartbeats``, ``_reader``):
  members of a group split the partitions with Kafka's range assignor, agreeing through a
  group document changed by WATCH/MULTI compare-and-set, with rebalance callbacks and
  generation fencing (the protocol is shared with nats://,
  ``omconnect.runtime.brokers.groups``). Each owned partition is read through a Redis
  consumer group of the same name on its stream (``XGROUP CREATE ... MKSTREAM``,
  ``XREADGROUP ... >``): its last delivered id is the member's read position, and its
  pending entries list (PEL) holds exactly what was read and not committed, because
  ``commit`` stores the next offset (``<prefix>:group:<g>:offsets``) and ``XACK``s every
  entry below it in one atomic step. A member that dies stops its heartbeats; after
  ``claim_idle`` seconds (and a little) the others drop it, and the new owner of each of its
  partitions first ``XAUTOCLAIM``s its pending entries idle for ``claim_idle`` (immediately
  for a member that left cleanly) and delivers them, in order, before reading on: what it
  had not committed is delivered again, once.
* **log, not acks**: the runtime's sink loop commits offsets after each flush, reads the
  committed offsets when it gains a partition, seeks a sink that stores its own positions
  (exactly-once), and under ``--once`` waits for the ``end_offsets`` and for the other
  members' commits. Streams support all of it (``XGROUP SETID`` seeks, the last id is the
  high-water). Declaring ``acks`` as well would make the runtime acknowledge batches instead
  of committing, and the committed offsets that ``--once`` and assignment read would have to
  be derived from the PEL; ``commit`` already ends in ``XACK``, so the Redis-native
  acknowledgement is there without a second bookkeeping.
* **No transactions**: a MULTI or a script is atomic, but the entries it adds are readable
  the moment it ends; there is no way to add entries that stay invisible until a later
  commit (aborted entries could only be deleted after readers may have seen them). So
  ``transactions`` is not declared, and exactly-once source pipelines need another broker.
* **Retention** is applied as messages are added: ``retention_bytes`` (per partition, as
  Kafka's) becomes ``XTRIM MAXLEN ~`` with the count those bytes hold at the batch's mean
  entry size, ``retention_ms`` ``XTRIM MINID ~`` from per-stream time checkpoints; ``~`` trims
  whole stream nodes, as Kafka deletes whole segments. Streams cannot compact by key:
  ``compaction`` is not declared.

URL: ``redis://[[user]:password@]host[:port][/db][?option=value&...]``, also
``oms:redis://...``. Options: ``prefix`` (``omconnect``; keeps one deployment's keys apart
from another's), ``connect_timeout`` (3 s), ``timeout`` (10 s, one command), ``claim_idle``
(10 s), ``ssl`` (``false``). Needs Redis 7.0 or newer, standalone (or a Sentinel-managed
primary; not Redis Cluster: scripts touch several keys), with scripting allowed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from omconnect.runtime.brokers.resolution import client_library, lazy_exports
from omconnect.runtime.brokers.url import BrokerUrl

if TYPE_CHECKING:
    from omconnect.runtime.brokers.redis._options import RedisOptions, RedisUrlError
    from omconnect.runtime.brokers.redis.broker import RedisBroker
    from omconnect.runtime.brokers.redis.consumer import RedisConsumer
    from omconnect.runtime.brokers.redis.producer import RedisProducer

__all__ = [
    "RedisBroker",
    "RedisConsumer",
    "RedisOptions",
    "RedisProducer",
    "RedisUrlError",
    "open_redis_broker",
]

# The public classes, imported on first use: redis-py is an extra.
__getattr__ = lazy_exports(
    __name__,
    {
        "RedisBroker": "broker",
        "RedisConsumer": "consumer",
        "RedisProducer": "producer",
        "RedisOptions": "_options",
        "RedisUrlError": "_options",
    },
)


def open_redis_broker(url: BrokerUrl, *, create: bool = True) -> RedisBroker:
    """The broker of ``redis://[[user]:password@]host[:port][/db][?option=value...]``.

    ``create`` changes nothing: the server is there or not, opening does no I/O, and
    read-only commands create no topic either way.

    Raises:
        RedisUrlError: the URL is malformed or has an unknown option (a ``ValueError``).
        UnsupportedBrokerError: redis-py is not installed.
    """
    del create
    from omconnect.runtime.brokers.redis._options import parse_options

    options = parse_options(url)
    with client_library("redis", "redis-py", "redis", "redis"):
        from omconnect.runtime.brokers.redis.broker import RedisBroker
    return RedisBroker(options, url.shown)

"""The ``nats://`` broker: NATS JetStream as an OpenMessaging log with consumer groups.

How the contract maps onto JetStream, and why:

- **A topic partition is a stream.** Topic ``orders`` with 3 partitions is the streams
  ``OMC_orders-0`` .. ``OMC_orders-2``, each listening on the subject ``orders.<partition>``
  (names in ``_naming``). A stream's sequence numbers are the only gap-free numbering
  JetStream has, and they count a whole stream, not a subject: with one stream per topic and
  a subject per partition, a partition's messages would be numbered 1, 4, 5, 9... So one
  stream per partition makes the offset of a message simply its stream sequence less one:
  from 0, contiguous, and the high-water is the stream's last sequence. It is also the
  layout NATS recommends for partitioned, ordered consumption, and it lets retention
  (``max_bytes``, ``max_age``) apply per partition, as Kafka's does.
- **Keys** travel in a header (``Om-Key``); keyed messages go to the partition Kafka's
  murmur2 picks (``key_partitioning``), as with every driver. Keys are not subjects, so
  ``max_msgs_per_subject=1`` cannot compact a topic: ``compaction`` is not declared.
- **Producers** publish every message of a send without waiting for the previous one's
  acknowledgement (``_acks`` collects the ``PubAck``s on a reply inbox) and return once all
  came back, failing only when none came for ``ack_timeout``. Each message's id is its
  ``Nats-Msg-Id``, so a send repeated within the stream's duplicate window
  (``duplicate_window``, 2 minutes by default) stores nothing twice: publishing is
  effectively once. Headers, keys, null values
  and timestamps map to NATS headers losslessly (``_message_codec``).
- **Offsets and groups live in a key-value bucket** (``OMC_groups``), one document per
  group: members, the partition owners, committed offsets, changed by compare-and-set
  (``_group_storage``; the document and the membership protocol are shared with the other
  drivers, ``omconnect.runtime.brokers.groups``). A JetStream durable consumer cannot hold a
  Kafka-style position: its ack floor only moves forward (``omconnect offsets reset``
  commits 0), it would move on ``seek`` (a seek must not commit), and two members of one
  durable compete for messages instead of splitting partitions. So a member reads each
  partition it owns through its own ephemeral pull consumer (no acks) created at its
  position (``_reader``), and ``commit`` stores "the next offset" in the group document,
  checking atomically that the member is current and owns the partition
  (``CommitFencedError`` otherwise).
- **Groups** split partitions with Kafka's range assignor and rebalance callbacks
  (``consumer``, ``groups``). A member whose process dies is noticed within about two
  seconds (it no longer answers pings, ``_liveness``), one that hangs after
  ``session_timeout`` seconds: that is this driver's "ack wait". Its partitions go to the
  others, which read on from the last committed offsets, so everything it had not committed
  is delivered again.
- **No transactions**: JetStream has no multi-message transactions. Before 2.12 nothing
  publishes several messages atomically, and 2.12's atomic batches cover one stream (one
  partition here), cannot store source positions with them and are not hidden from readers
  until a commit; so ``transactions`` is not declared and ``exactly_once`` pipelines need
  another broker (publishing is still effectively once, by message id).

URL: ``nats://[user:password@]host[:port][,host2:port2...][?option=value&...]``, also
``oms:nats://...``. Options (seconds unless said): ``connect_timeout`` (3), ``session_timeout``
(10), ``ack_timeout`` (30, how long a send waits without any acknowledgement before it
fails; a large send to a slow server waits as long as acknowledgements keep coming),
``duplicate_window`` (120), ``reconnect_wait`` (1), ``replicas`` (1, for topics created
here), ``storage`` (``file`` or ``memory``) and ``namespace`` (keeps the streams, subjects
and groups of one deployment apart from another's on a shared server).

The account needs JetStream and permission to publish and subscribe on the topics'
subjects, ``$JS.API.>``, ``_INBOX.>`` (replies) and ``_OMC.member.>`` (the members' pings).
nats-py (the ``omconnect[nats]`` extra) is imported only inside this package, on first use:
the core imports without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from omconnect.runtime.brokers.nats._options import parse_options
from omconnect.runtime.brokers.resolution import client_library, lazy_exports
from omconnect.runtime.brokers.url import BrokerUrl

if TYPE_CHECKING:
    from omconnect.runtime.brokers.nats.broker import NatsBroker
    from omconnect.runtime.brokers.nats.consumer import NatsConsumer
    from omconnect.runtime.brokers.nats.producer import NatsProducer

__all__ = ["NatsBroker", "NatsConsumer", "NatsProducer", "open_nats_broker"]

# The public classes, imported on first use: nats-py is an extra.
__getattr__ = lazy_exports(
    __name__, {"NatsBroker": "broker", "NatsConsumer": "consumer", "NatsProducer": "producer"}
)


def open_nats_broker(url: BrokerUrl, *, create: bool = True) -> NatsBroker:
    """The broker of a ``nats://`` URL (see the module docstring for its options).

    Opening does no I/O. ``create`` is accepted for the common opener signature; the
    server is there or not, and read-only commands create no topic either way.

    Raises:
        ValueError: a malformed location or an unknown option.
        UnsupportedBrokerError: nats-py is not installed.
    """
    del create
    try:
        options = parse_options(url)
    except ValueError as exc:
        raise ValueError(f"{url.scheme}:// broker URL: {exc}") from None
    with client_library("nats", "nats-py", "nats", "nats"):
        from omconnect.runtime.brokers.nats.broker import NatsBroker
    return NatsBroker(options, url.shown)

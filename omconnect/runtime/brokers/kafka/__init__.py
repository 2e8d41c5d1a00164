"""The ``kafka://`` broker driver: the broker contract on a Kafka-protocol cluster, through
librdkafka (confluent-kafka, the ``omconnect[kafka]`` extra, imported only here).

What maps to what, and why:

* A ``MessageBatch`` row is a Kafka record: key, value and born timestamp are the record's
  key, value and CreateTime; the header map is the record headers, name for name, so other
  Kafka clients see the OpenMessaging fields (``oms.<name>``) and user properties as plain
  headers. The row's message id travels as the ``oms.message_id`` header (Kafka has no message
  id); ``_records`` has the two other reserved headers that keep a round trip lossless.
* ``Producer.send`` is an idempotent librdkafka producer (``enable.idempotence``, ``acks=all``,
  at most five requests in flight): a send returns when every message has its delivery report,
  and retries neither reorder nor duplicate. Keys are partitioned like Kafka's Java client
  (murmur2), so keys land where Java producers put them, and where the embedded broker does.
* Transactions are Kafka transactions (a transactional ``transactional.id`` per producer);
  the positions of ``commit_transaction`` are records of a compacted topic per namespace,
  written in the same transaction (``_positions``); consumers read committed records only.
  ``transactions=false`` in the URL declares a server without complete ones (Tansu 0.6 lets
  readers see aborted transactions): then the broker offers none.
* Messages go through librdkafka's per-message ``produce``: its ``produce_batch`` carries neither
  headers nor timestamps, so it cannot keep a row. Rows are turned into Python values a
  column at a time (``_records``), on a thread of their own.
* ``Consumer`` is a librdkafka consumer-group member (range assignor, explicit synchronous
  commits); librdkafka's ``on_assign`` / ``on_revoke`` / ``on_lost`` run the
  ``RebalanceListener`` inside ``poll`` (``_membership``).
* ``end_offsets`` and topic message counts come from reading the tails of partitions
  (``_log_reader``): a committed reader's end skips transaction markers, and some servers
  (Tansu 0.6) answer ListOffsets wrongly.
* Everything that waits on the network runs on the broker's worker threads with a bound
  (``_librdkafka``): librdkafka retries a down broker forever, this driver never hangs.

URL: ``kafka://host:port[,host:port][?option=value...]`` (``oms:kafka://`` too); the options
are in ``_options.KafkaOptions``; an unknown one is an error.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from omconnect.runtime.brokers.resolution import client_library, lazy_exports
from omconnect.runtime.brokers.url import BrokerUrl

if TYPE_CHECKING:
    from omconnect.runtime.brokers.kafka._options import KafkaOptions, KafkaUrlError
    from omconnect.runtime.brokers.kafka.broker import KafkaBroker
    from omconnect.runtime.brokers.kafka.consumer import KafkaConsumer
    from omconnect.runtime.brokers.kafka.producer import KafkaProducer

__all__ = [
    "KafkaBroker",
    "KafkaConsumer",
    "KafkaOptions",
    "KafkaProducer",
    "KafkaUrlError",
    "open_kafka_broker",
]

# The public classes, imported on first use: confluent-kafka is an extra.
__getattr__ = lazy_exports(
    __name__,
    {
        "KafkaBroker": "broker",
        "KafkaConsumer": "consumer",
        "KafkaProducer": "producer",
        "KafkaOptions": "_options",
        "KafkaUrlError": "_options",
    },
)


def open_kafka_broker(url: BrokerUrl, *, create: bool = True) -> KafkaBroker:
    """The broker of ``kafka://host:port[,host:port][?option=value...]``.

    ``create`` changes nothing: a Kafka cluster exists or not, and opening does no I/O (the
    first producer, consumer or admin call connects, failing within ``connect_timeout_ms``
    when nothing answers).

    Raises:
        KafkaUrlError: the URL is malformed or has an unknown option (a ``ValueError``).
        UnsupportedBrokerError: confluent-kafka is not installed.
    """
    with client_library("kafka", "confluent-kafka", "kafka", "confluent_kafka"):
        from omconnect.runtime.brokers.kafka._options import parse_kafka_url
        from omconnect.runtime.brokers.kafka.broker import KafkaBroker
    return KafkaBroker(parse_kafka_url(url), url.text or f"kafka://{url.location}")

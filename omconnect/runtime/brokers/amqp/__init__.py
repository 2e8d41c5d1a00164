"""The ``amqp://`` broker driver: the broker contract on RabbitMQ (AMQP 0-9-1), through
aio-pika (the ``omconnect[rabbitmq]`` extra, imported only inside this package).

RabbitMQ is a queue broker: a message is handed to one consumer, acknowledged, and gone. So
the driver declares ``acks`` and ``groups`` and not ``log``, ``end_offsets`` or ``partitions``:
there is no replay, seek or ``offsets reset``, ``--once`` stops once the sink was idle after
the source finished, and sinks that store their own positions need a log broker.

What maps to what, and why:

* **A topic is an exchange**, durable, of type fanout, named after the topic (``p.<topic>``
  with ``?prefix=p``; ``_naming``). Fanout because every group's queue bound to a topic gets
  all its messages, whatever the routing key. Each topic's exchange is also bound to the
  prefix's all-topics exchange (a topic exchange), and every message is published with its
  topic as the routing key, so a pattern subscription can bind there and receive topics
  created after it (``_topology``).
* **A consumer group is a queue**, durable, bound to the exchanges of its topics: quorum
  queues by default on servers that have them (replicated Raft queues, RabbitMQ
  3.8+), ``?queue_type=classic`` for classic ones. The queue is declared when a member
  subscribes, so it holds what is published from then on; groups are independent, each with
  its own queue. Members of a group are competing consumers of that queue; each poll
  receives with a prefetch of what it asked for, so a member holds no more than it polls for
  and idle members leave the queue to the others (``consumer``).
* **Acknowledgements are per message**: a batch's ``ack_token`` names its deliveries and
  ``ack`` acknowledges exactly those, returning once RabbitMQ has (``_delivery_tags``).
  ``prefetch`` (50000) bounds what a member holds unacknowledged; the runtime acknowledges
  after each sink flush (every ``commit_interval``), so a member reads at most ``prefetch``
  messages per flush. What a member holds when it closes, or when its connection dies, goes
  back to the queue and to another member. Offsets are each consumer's own increasing
  sequence, for order only (``consumer``). On RabbitMQ 4 a quorum queue drops (or
  dead-letters) a message after 20 deliveries by default.
* **Producers** publish with publisher confirms, persistent, pipelined: ``send`` returns
  once RabbitMQ confirmed every message, i.e. every bound queue has it, failing only when
  no confirm came for ``confirm_timeout`` (``producer``, ``_confirms``).
* **Messages**: the value is the body, the key the ``om-key`` header, the message id the
  ``message_id`` property, the born time the ``timestamp`` property (seconds) and ``om-time``
  (milliseconds), the headers map entries of the headers table (``content-type`` the
  ``content_type`` property), with their order, repeats and nulls, losslessly
  (``_message_codec``).
* **Patterns** bind the group's queue to the all-topics exchange with the narrowest routing
  key that covers the regular expression (``orders\\..+`` binds ``orders.#``); messages of
  topics the expression does not match are acknowledged unread (``_pattern_binding``).
* **Topics are listed from a catalog**: AMQP cannot list exchanges and the management
  plugin may be absent, so the driver writes each topic and group it declares in a stream
  queue of the prefix and reads it back; without stream queues (before RabbitMQ 3.9) only
  the topics this process declared are listed (``_catalog``).
* **No transactions**: AMQP 0-9-1 transactions cannot store source positions with the
  messages and are atomic only for one queue, so ``exactly_once`` needs another broker.

URL: ``amqp://[user[:password]@]host[:port][/vhost][?option=value&...]``, also
``oms:amqp://...``; the vhost is percent-encoded (``/`` is the default, ``%2F``), the user
``guest`` without one. Options: ``prefix`` (none; keeps one deployment's exchanges and queues
apart from another's on a vhost), ``queue_type`` (``quorum`` or ``classic``), ``prefetch``
(50000, up to 65535), ``connect_timeout`` (3 s), ``confirm_timeout`` (30 s, how long a
send waits without any confirm before it fails; a large send to a slow server waits as long
as confirms keep coming) and ``ssl`` (``false``). The user needs configure, write and read
permissions on the vhost for the names of its prefix.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from omconnect.runtime.brokers.resolution import client_library, lazy_exports
from omconnect.runtime.brokers.url import BrokerUrl

if TYPE_CHECKING:
    from omconnect.runtime.brokers.amqp._options import AmqpOptions, AmqpUrlError
    from omconnect.runtime.brokers.amqp.broker import AmqpBroker
    from omconnect.runtime.brokers.amqp.consumer import AmqpConsumer
    from omconnect.runtime.brokers.amqp.producer import AmqpProducer

__all__ = [
    "AmqpBroker",
    "AmqpConsumer",
    "AmqpOptions",
    "AmqpProducer",
    "AmqpUrlError",
    "open_amqp_broker",
]

# The public classes, imported on first use: aio-pika is an extra.
__getattr__ = lazy_exports(
    __name__,
    {
        "AmqpBroker": "broker",
        "AmqpConsumer": "consumer",
        "AmqpProducer": "producer",
        "AmqpOptions": "_options",
        "AmqpUrlError": "_options",
    },
)


def open_amqp_broker(url: BrokerUrl, *, create: bool = True) -> AmqpBroker:
    """The broker of ``amqp://[user[:password]@]host[:port][/vhost][?option=value...]``.

    Opening does no I/O. With ``create`` false (read-only commands), listing topics does not
    declare the catalog stream where there is none.

    Raises:
        AmqpUrlError: the URL is malformed or has an unknown option (a ``ValueError``).
        UnsupportedBrokerError: aio-pika is not installed.
    """
    from omconnect.runtime.brokers.amqp._options import parse_options

    options = parse_options(url)
    with client_library("amqp", "aio-pika", "rabbitmq", "aio_pika", "aiormq", "pamqp"):
        from omconnect.runtime.brokers.amqp.broker import AmqpBroker
    return AmqpBroker(options, url.shown, create)

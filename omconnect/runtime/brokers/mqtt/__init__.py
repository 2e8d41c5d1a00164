"""The ``mqtt://`` broker driver: the broker contract on an MQTT 5 server (Mosquitto 2, or any
MQTT 5 server with shared subscriptions), through paho-mqtt (the ``omconnect[mqtt]`` extra,
imported only inside this package).

MQTT is a queue, not a log: the server routes each message to the subscriptions that exist
when it arrives and forgets it once they acknowledged it. So the driver declares ``acks`` and
``groups`` and nothing of a log: no offsets to commit, no seek, no end offsets, no replay,
no partitions, no transactions, no retention and no compaction (a retained message keeps the
last message of one MQTT topic for new subscribers; that is not compaction by key). What maps
to what, and why:

* **A topic is one MQTT topic level under the prefix**: ``orders.eu`` is
  ``omconnect/orders.eu`` (``_naming``). Its partition is 0. Names with '/', '+' or '#' are
  refused. Other MQTT clients see plain topics.
* **A message is an MQTT 5 PUBLISH at QoS 1**: the value is the payload; key, born
  timestamp, message id and the headers map (OpenMessaging's ``oms.*`` headers, user
  properties) are MQTT 5 user properties, in order, text as it is and anything else base64;
  a first ``content-type`` header is the content type property (``_message_codec``).
* **The producer** queues a whole batch on its connection and returns once every PUBACK
  arrived, with as many messages in flight as the server's receive maximum allows
  (``producer``, ``omconnect.clients.mqtt_acks``). "No matching subscribers" means nobody
  got the message: it is logged once per topic.
* **Groups are shared subscriptions**, ``$share/<group>/<prefix>/<topic>``; a ``pattern``
  subscribes to every topic (``<prefix>/+``: a regular expression has no MQTT wildcard
  equivalent within one level) and the consumer drops, acknowledging them, the messages of
  topics whose whole name does not match. Consumers acknowledge with manual PUBACKs:
  ``ack(tokens)`` acknowledges exactly a batch's messages. Offsets are the consumer's own
  increasing sequence. The group's queue holds what was published after it subscribed.
* **Members keep persistent sessions** (``clean_start`` false and ``session_expiry``): what
  Mosquitto does with a member's unacknowledged messages was found by experiment (Mosquitto
  2.0.11) and decides the rest (``_membership``, ``_session``):

  - a member that closes its connection, or dies, keeps its unacknowledged messages in its
    session; Mosquitto never gives them to the other members of the shared subscription.
    They are sent again only to a client that connects with the same client id. A session
    that ends (expiry 0) drops them;
  - Mosquitto picks the member of each message when it is published, round robin, whether
    that member is connected or busy: an offline member's session keeps taking its share,
    and a busy member keeps what it was given while an idle one waits.

  So members take numbered slots whose client ids are stable (a retained claim per slot says
  who holds it, and a will marks the slot parked when its member dies): a new member takes
  the session a gone member left (parked) and gets its unacknowledged messages and what
  arrived meanwhile, a restarted worker takes its own back. A member that sees another join
  hands the messages it holds and has not returned back to the group (through the group's
  requeue topic), so the newcomer shares the backlog. Closing with other members live hands
  everything unacknowledged back and ends the session; the last member parks its session
  with its subscriptions, so the group's queue lives on until the next member comes (for
  ``session_expiry`` seconds). A member that dies and that nobody replaces keeps its
  messages, and its share of new ones, in its parked session until a new member of the
  group arrives or the session expires; run a replacement (or restart the worker).
* **Topics and groups live in retained messages** under ``<prefix>/.topics/`` and
  ``<prefix>/.groups/`` (``_server``): ``create_topic`` and a first send enter a topic in
  the catalog, ``list_topics`` reads it (topics other MQTT clients publish to are not
  listed; message counts are 0: the server does not say).

Server settings that matter (``mosquitto.conf``): ``persistence true`` keeps sessions and
retained messages across a restart; ``max_queued_messages`` (1000 by default) caps what an
offline member's session keeps, the rest is dropped: raise it (or 0, no limit) with
``max_queued_bytes`` as the memory bound. ``max_inflight_messages`` (20) bounds a producer's
messages in flight; a consumer's ``receive_maximum`` goes in its CONNECT (without one,
Mosquitto sends an MQTT 5 client no more than ``max_inflight_messages`` unacknowledged
messages, and the runtime acknowledges only after its sink flushed). Message order holds
within one consumer, not across a group.

URL: ``mqtt://[user[:password]@]host[:port][?option=value&...]``, also ``oms:mqtt://...``.
Options: ``prefix`` (``omconnect``; topic levels that keep one deployment's topics, groups
and sessions apart from another's), ``client_id`` (what client ids start with; the prefix by
default), ``connect_timeout`` (3 s), ``keepalive`` (30 s), ``session_expiry`` (3600 s),
``ack_timeout`` (30 s, how long a send waits without any PUBACK before it fails; a large
send to a slow server waits as long as they keep coming), ``receive_maximum`` (65535, how
many unacknowledged messages a consumer may hold) and ``tls`` (``false``).

The connection, its acknowledgements and its inbox live in ``omconnect.clients``
(``mqtt_connection``, ``mqtt_acks``, ``mqtt_inbox``), shared with the ``mqtt`` source
connector; the names' checks (``_naming``) and the message codec (``_message_codec``,
``_publish_properties``) import nothing of the broker contract either.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from omconnect.runtime.brokers.resolution import client_library, lazy_exports
from omconnect.runtime.brokers.url import BrokerUrl

if TYPE_CHECKING:
    from omconnect.runtime.brokers.mqtt._options import MqttOptions, MqttUrlError
    from omconnect.runtime.brokers.mqtt.broker import MqttBroker
    from omconnect.runtime.brokers.mqtt.consumer import MqttConsumer
    from omconnect.runtime.brokers.mqtt.producer import MqttProducer

__all__ = [
    "MqttBroker",
    "MqttConsumer",
    "MqttOptions",
    "MqttProducer",
    "MqttUrlError",
    "open_mqtt_broker",
]

# The public classes, imported on first use: paho-mqtt is an extra.
__getattr__ = lazy_exports(
    __name__,
    {
        "MqttBroker": "broker",
        "MqttConsumer": "consumer",
        "MqttProducer": "producer",
        "MqttOptions": "_options",
        "MqttUrlError": "_options",
    },
)


def open_mqtt_broker(url: BrokerUrl, *, create: bool = True) -> MqttBroker:
    """The broker of ``mqtt://[user[:password]@]host[:port][?option=value...]``.

    Opening does no I/O. ``create`` changes nothing: the server is there or not, and
    read-only commands create no topic either way.

    Raises:
        MqttUrlError: the URL is malformed or has an unknown option (a ``ValueError``).
        UnsupportedBrokerError: paho-mqtt is not installed.
    """
    del create
    from omconnect.runtime.brokers.mqtt._options import parse_options

    options = parse_options(url)
    with client_library("mqtt", "paho-mqtt", "mqtt", "paho"):
        from omconnect.runtime.brokers.mqtt.broker import MqttBroker
    return MqttBroker(options, url.shown)

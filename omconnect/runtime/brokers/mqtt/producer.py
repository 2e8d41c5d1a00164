"""``MqttProducer``: publishes message batches at QoS 1 and returns once every PUBACK came."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from omconnect.clients.mqtt_connection import NO_SUBSCRIBERS, MqttConnection, Outgoing
from omconnect.runtime.brokers.base import BrokerError, Producer, SendResult
from omconnect.runtime.brokers.mqtt._message_codec import encode_rows
from omconnect.runtime.brokers.mqtt._naming import check_topic
from omconnect.runtime.brokers.mqtt._server import MqttServer, check_published
from omconnect.runtime.brokers.send_progress import SendProgress
from omconnect.schemas.message_batch import MessageBatch

log = logging.getLogger("omconnect.broker.mqtt")

# Messages whose PUBACKs come back together (one future, one wake-up of the event loop): a
# send is watched for progress a group at a time.
ACK_GROUP = 100
# The most messages a send encodes on the event loop (a few milliseconds); more go to a thread.
INLINE_ENCODE_MESSAGES = 1000


class MqttProducer(Producer):
    """Publishes through a connection of its own (a clean session).

    A send encodes the batch (``_message_codec``), queues every message on the connection
    and waits for their PUBACKs: as many are in flight as the server's receive maximum
    allows (Mosquitto's ``max_inflight_messages``, 20 by default), the next going out as
    each acknowledgement comes back, so a batch costs about one round trip per that many
    messages, not one per message. Sends of one producer are queued in call order and the
    server stores one client's messages in order, so concurrent sends stay in order. A send
    waits as long as acknowledgements keep coming (watched ``ACK_GROUP`` messages at a time)
    and fails once none came for ``ack_timeout`` seconds: a large send to a slow server is
    not cut short.

    A topic's first send also publishes its catalog entry (``list_topics``). A PUBACK of
    "no matching subscribers" is a success (no group subscribed: nobody gets the message)
    and logs a warning, once per topic. When the connection is lost while messages wait
    for their PUBACKs, the sends fail and the connection is dropped without publishing
    anything again (a retry could land behind later sends); the next send connects anew.
    """

    def __init__(self, server: MqttServer) -> None:
        self._server = server
        self._connection: MqttConnection | None = None
        self._order = asyncio.Lock()
        self._catalogued: set[str] = set()
        self._unheard: set[str] = set()
        self._in_flight: set[asyncio.Future[list[int]]] = set()
        self._progress = SendProgress()  # a group of PUBACKs is what a waiting send hears
        self._closed = False

    async def send(
        self, topic: str, messages: MessageBatch, partition: int | None = None
    ) -> list[SendResult]:
        """Publish ``messages`` to ``topic`` and wait for the server's acknowledgements.

        Raises:
            ValueError: a partition other than 0, or a topic name MQTT cannot carry.
            BrokerError: the server cannot be reached, went away or refused a message; some
                of the messages may have been published.
        """
        if self._closed:
            raise BrokerError("the producer is closed")
        if partition not in (None, 0):
            raise ValueError(f"mqtt:// topics have one partition (0), not {partition}")
        check_topic(topic)
        if len(messages) == 0:
            return []
        catalogue = topic not in self._catalogued
        async with self._order:  # connected once, messages handed over in call order
            # A large batch in a thread (one send at a time, in call order): a message's
            # properties are Python objects, and 50,000 of them took the event loop for long
            # enough that the connect of the first of many sends waiting here timed out. A
            # small one here: two thread hops per send, each waiting for the GIL, put a
            # stream of small sends (every 5 ms) hundreds of milliseconds behind.
            if len(messages) > INLINE_ENCODE_MESSAGES:
                outgoing = await asyncio.to_thread(self._outgoing, topic, messages)
            else:
                outgoing = self._outgoing(topic, messages)
            if catalogue:
                outgoing.insert(0, self._server.catalog_record(topic))
            connection = await self._connected()
            groups = [
                connection.publish(outgoing[at : at + ACK_GROUP])
                for at in range(0, len(outgoing), ACK_GROUP)
            ]
        for group in groups:
            self._in_flight.add(group)
            group.add_done_callback(self._settled)
        reasons = await self._acknowledged(connection, groups, topic)
        check_published(reasons, topic, self._server.options.display)
        if catalogue:
            self._catalogued.add(topic)
            reasons = reasons[1:]
        if NO_SUBSCRIBERS in reasons and topic not in self._unheard:
            self._unheard.add(topic)
            log.warning(
                "nobody subscribes to topic %r on %s: the server dropped its messages (an MQTT "
                "server keeps messages only for the groups subscribed when they arrive)",
                topic,
                self._server.options.display,
            )
        return [SendResult(topic, 0, 0, len(messages))]

    def _outgoing(self, topic: str, messages: MessageBatch) -> list[Outgoing]:
        mqtt_topic = self._server.naming.topic(topic)
        return [Outgoing(mqtt_topic, payload, props) for payload, props in encode_rows(messages)]

    async def _connected(self) -> MqttConnection:
        if self._connection is not None and self._connection.lost:
            await self._drop()
        if self._connection is None:
            self._connection = await self._server.connect(
                self._server.naming.client_id_for("producer")
            )
        return self._connection

    async def _acknowledged(
        self, connection: MqttConnection, groups: list[asyncio.Future[list[int]]], topic: str
    ) -> list[int]:
        """The reason codes of every group's PUBACKs, in order, waiting as long as groups
        of this producer keep being acknowledged."""
        timeout = self._server.options.ack_timeout
        reasons: list[int] = []
        try:
            for group in groups:
                await self._progress.wait(group, timeout)
                reasons += group.result()
            return reasons
        except TimeoutError:
            if self._connection is connection:
                await self._drop()
            raise BrokerError(
                f"the MQTT broker at {self._server.options.display} did not acknowledge "
                f"the messages to topic {topic!r}: no acknowledgement for {timeout:g} s "
                "(ack_timeout); they may or may not have been stored"
            ) from None
        except BrokerError:
            if self._connection is connection:
                await self._drop()
            raise

    def _settled(self, group: asyncio.Future[list[int]]) -> None:
        self._in_flight.discard(group)
        self._progress.note(group.get_loop())
        if not group.cancelled():
            group.exception()  # retrieved: a lost connection fails every group, one is raised

    async def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            await connection.close()

    async def flush(self) -> None:
        """Wait until every send so far is acknowledged or failed (giving up, as the sends
        do, once no acknowledgement came for ``ack_timeout`` seconds)."""
        with contextlib.suppress(TimeoutError):
            for group in list(self._in_flight):
                await self._progress.wait(group, self._server.options.ack_timeout)

    async def close(self) -> None:
        """Wait for what is in flight, then disconnect; idempotent."""
        if self._closed:
            return
        self._closed = True
        await self.flush()
        await self._drop()

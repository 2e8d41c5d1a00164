"""What a broker's producers and consumers share: its options, its MQTT names, where to
connect, and its own connection for the records it keeps on the server.

MQTT servers keep no list of topics and no consumer groups, so the driver keeps what it needs
as retained messages (the server stores the last retained message of each topic and hands it
to every new subscriber): the topic catalog (``<prefix>/.topics/<topic>``, written by
``create_topic`` and by a producer's first send to a topic) and the slot claims of group
members (``_membership``). Reading them means subscribing to their filter: the server sends
the retained messages at once, then a marker the reader publishes to the same filter, which
says that all of them have arrived.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from omconnect.clients.mqtt_connection import Endpoint, MqttConnection, Outgoing
from omconnect.runtime.brokers.base import BrokerError
from omconnect.runtime.brokers.mqtt._naming import Naming
from omconnect.runtime.brokers.mqtt._options import MqttOptions

CATALOG_RECORD = json.dumps({"partitions": 1}).encode()


@dataclass
class _RetainedRead:
    mqtt_filter: str
    marker: str
    done: asyncio.Future[None]
    found: dict[str, bytes] = field(default_factory=dict)


class MqttServer:
    """The options, names and endpoint of one broker URL, and its admin connection."""

    def __init__(self, options: MqttOptions) -> None:
        self.options = options
        self.naming = Naming(options.prefix, options.client_id)
        self.endpoint = Endpoint(
            host=options.host,
            port=options.port,
            display=options.display,
            username=options.username,
            password=options.password,
            tls=options.tls,
            connect_timeout=options.connect_timeout,
            keepalive=options.keepalive,
        )
        self._admin: MqttConnection | None = None
        self._reads: list[_RetainedRead] = []
        self._reads_lock = threading.Lock()
        self._one_at_a_time = asyncio.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._in_flight = 20  # Mosquitto's default receive maximum, until the server says

    async def connect(self, client_id: str, **settings: Any) -> MqttConnection:
        """A new connection to the server, open (see ``MqttConnection`` for ``settings``).
        It keeps no more messages in flight than the server took the last time it said.

        Raises:
            BrokerError: the server cannot be reached or refused the connection.
        """
        connection = MqttConnection(
            self.endpoint,
            client_id,
            errors=BrokerError,
            max_in_flight=self._in_flight,
            **settings,
        )
        await connection.open()
        self._in_flight = connection.server_receive_maximum
        return connection

    async def read_retained(self, mqtt_filter: str) -> dict[str, bytes]:
        """The retained messages of the topics ``mqtt_filter`` (ending in ``/+``) matches.

        Raises:
            BrokerError: the server cannot be reached or does not answer in time.
        """
        async with self._one_at_a_time:
            admin = await self._admin_connection()
            assert self._loop is not None
            read = _RetainedRead(
                mqtt_filter, self.naming.marker(mqtt_filter), self._loop.create_future()
            )
            with self._reads_lock:
                self._reads.append(read)
            try:
                async with asyncio.timeout(self.options.ack_timeout):
                    self._check_allowed(await admin.subscribe([mqtt_filter], qos=0), mqtt_filter)
                    marker = await admin.publish([Outgoing(read.marker, b"")])
                    self._check_allowed(marker, mqtt_filter)
                    await read.done
                    await admin.unsubscribe([mqtt_filter])
            except TimeoutError:
                raise BrokerError(
                    f"the MQTT broker at {self.endpoint.display} did not answer within "
                    f"{self.options.ack_timeout:g} s while reading {mqtt_filter!r}"
                ) from None
            finally:
                with self._reads_lock:
                    self._reads.remove(read)
            return read.found

    def _check_allowed(self, reasons: list[int], mqtt_filter: str) -> None:
        if reasons and max(reasons) >= 0x80:
            prefix = self.naming.prefix
            raise BrokerError(
                f"the MQTT broker at {self.endpoint.display} refused reading {mqtt_filter!r}: "
                f"{reason_name(max(reasons))} (0x{max(reasons):02X}); the driver keeps its "
                f"topic catalog and consumer groups under {prefix}/.topics and {prefix}/.groups, "
                f"so the server's ACL must let this client read and write {prefix}/#"
            )

    async def publish_retained(self, topic: str, payload: bytes) -> None:
        """Store ``payload`` as the retained message of ``topic`` (empty: delete it)."""
        async with self._one_at_a_time:
            admin = await self._admin_connection()
        reasons = await admin.publish([Outgoing(topic, payload, retain=True)])
        check_published(reasons, topic, self.endpoint.display)

    def catalog_record(self, topic: str) -> Outgoing:
        """The catalog entry of ``topic``, for a producer to publish before its messages."""
        return Outgoing(self.naming.catalog_entry(topic), CATALOG_RECORD, retain=True)

    async def topic_names(self) -> list[str]:
        """Every topic in the catalog, sorted."""
        found = await self.read_retained(self.naming.catalog_filter)
        return sorted(t.rsplit("/", 1)[1] for t in found)

    async def _admin_connection(self) -> MqttConnection:
        if self._admin is None or self._admin.lost:
            if self._admin is not None:
                await self._admin.close()
            self._loop = asyncio.get_running_loop()
            self._admin = await self.connect(
                self.naming.client_id_for("admin"), on_message=self._received
            )
        return self._admin

    def _received(self, message: paho.MQTTMessage) -> None:
        """An admin connection's message (network thread): a retained record or a marker."""
        with self._reads_lock:
            reads = [r for r in self._reads if paho.topic_matches_sub(r.mqtt_filter, message.topic)]
        for read in reads:
            if message.topic == read.marker:
                assert self._loop is not None
                with contextlib.suppress(RuntimeError):
                    self._loop.call_soon_threadsafe(_finish, read.done)
            elif message.retain and message.payload:
                read.found[message.topic] = bytes(message.payload)

    async def close(self) -> None:
        """Close the admin connection; idempotent."""
        admin, self._admin = self._admin, None
        if admin is not None:
            await admin.close()


def check_published(reasons: list[int], topic: str, display: str) -> None:
    """Raise ``BrokerError`` for the first PUBACK reason that is a failure (0x80 and above;
    0x10, "no matching subscribers", is a success)."""
    for reason in reasons:
        if reason >= 0x80:
            raise BrokerError(
                f"the MQTT broker at {display} refused a message to {topic!r}: "
                f"{reason_name(reason)} (0x{reason:02X}); check the server's ACL and limits"
            )


def reason_name(value: int) -> str:
    """The MQTT 5 name of a PUBACK or SUBACK reason code."""
    try:
        return str(ReasonCode(PacketTypes.PUBACK, identifier=value).getName())
    except KeyError:
        return "unknown reason"


def _finish(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)

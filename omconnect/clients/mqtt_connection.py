"""One MQTT 5 connection: a paho-mqtt client whose network thread is bridged to asyncio.

paho runs its network loop in a thread of its own (``loop_start``); its callbacks run there.
Everything they tell the event loop goes through ``loop.call_soon_threadsafe`` (``mqtt_acks``):
the acknowledgements a publish, subscribe or unsubscribe waits for (one wake-up per group of
packets, not per packet), the request for more messages to publish, and the loss of the
connection. Received messages go to the owner's ``on_message`` in the network thread, which
must only hand them over.

A connection is opened once, within ``connect_timeout``, and never reconnects by itself:
paho would publish again what was in flight, behind sends made after the failure, and a
consumer must look at its group before it takes its session back. When the server goes
away, every waiting call fails at once and ``lost`` is set; the owner opens a new
connection when it needs one. Failures raise the owner's ``errors`` class with one line that
says what was tried and what to check.

It knows nothing of topics, groups, records or the broker contract (it imports nothing of
omconnect but ``mqtt_acks``): the ``mqtt://`` broker driver and the ``mqtt`` source connector
share it. Error messages name the setting to fix (``Endpoint.setting``).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from omconnect.clients.mqtt_acks import PublishFeed, Replies, call_soon, settle

# The server's answer to a publish nobody subscribed to: stored for nobody, not an error.
NO_SUBSCRIBERS = 0x10
MAX_SESSION_EXPIRY = 0xFFFFFFFF
# Messages handed to paho unacknowledged at most: enough that it sends on as
# acknowledgements come without waiting for the event loop, well below its 65535 packet ids.
PAHO_BUDGET = 8192


@dataclass(frozen=True)
class Endpoint:
    """Where and as whom to connect."""

    host: str
    port: int
    display: str
    username: str | None = None
    password: str | None = None
    tls: bool = False
    connect_timeout: float = 3.0
    keepalive: float = 30.0
    setting: str = "the broker URL"
    """What the user wrote the address and credentials in, for error messages."""


@dataclass(frozen=True)
class Will:
    """A retained message the server publishes when the connection dies without a clean
    DISCONNECT."""

    topic: str
    payload: bytes


@dataclass(frozen=True)
class Outgoing:
    """A QoS 1 message to publish."""

    topic: str
    payload: bytes
    properties: Properties | None = None
    retain: bool = False


class MqttConnection:
    """One client connection; ``open`` it, then publish, subscribe and acknowledge."""

    def __init__(
        self,
        endpoint: Endpoint,
        client_id: str,
        *,
        errors: type[Exception] = ConnectionError,
        refused_errors: type[Exception] | None = None,
        clean_start: bool = True,
        session_expiry: float = 0,
        receive_maximum: int | None = None,
        max_in_flight: int = 20,
        will: Will | None = None,
        on_message: Callable[[paho.MQTTMessage], None] | None = None,
        on_lost: Callable[[], None] | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.client_id = client_id
        self.errors = errors
        self.refused_errors = refused_errors or errors
        self.session_present = False
        self.server_receive_maximum = 65535
        self.lost = False
        self._clean_start = clean_start
        self._session_expiry = int(min(session_expiry, MAX_SESSION_EXPIRY))
        self._receive_maximum = receive_maximum
        self._max_in_flight = max_in_flight
        self._will = will
        self._on_message = on_message
        self._on_lost = on_lost
        self._closing = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._replies: Replies | None = None
        self._feed: PublishFeed | None = None
        self._connected: asyncio.Future[tuple[bool, str | None]] | None = None
        self._client = self._make_client()

    def _make_client(self) -> paho.Client:
        e = self.endpoint
        client = paho.Client(
            paho.CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=paho.MQTTv5,
            manual_ack=True,
            reconnect_on_failure=False,
        )
        client.connect_timeout = e.connect_timeout
        client.max_inflight_messages_set(self._max_in_flight)
        if e.username is not None or e.password is not None:
            client.username_pw_set(e.username or "", e.password)
        if e.tls:
            client.tls_set_context(ssl.create_default_context())
        if self._will is not None:
            client.will_set(self._will.topic, self._will.payload, qos=1, retain=True)
        client.on_connect = self._connected_cb
        client.on_disconnect = self._disconnected_cb
        client.on_publish = self._acknowledged_cb
        client.on_subscribe = self._subscribed_cb
        client.on_unsubscribe = self._subscribed_cb
        client.on_message = self._message_cb
        return client

    async def open(self) -> None:
        """Connect and wait for the server's CONNACK (``session_present`` tells whether the
        server still had this client id's session; ``server_receive_maximum`` how many
        messages it takes in flight).

        Raises:
            errors: nothing answers within ``connect_timeout``.
            refused_errors: the server refused (``errors`` when not given).
        """
        await self._open_once()
        if self.server_receive_maximum < self._max_in_flight:
            # paho cannot narrow its window on an open connection: connect again with it.
            self._client.disconnect()
            await self._stop()
            self._max_in_flight = self.server_receive_maximum
            self._closing = False
            self._client = self._make_client()
            await self._open_once()

    async def _open_once(self) -> None:
        e = self.endpoint
        self._loop = asyncio.get_running_loop()
        self._replies = Replies(self._loop)
        self._feed = PublishFeed(self._replies, PAHO_BUDGET, self._hand_to_paho)
        self._connected = self._loop.create_future()
        properties = Properties(PacketTypes.CONNECT)
        if self._session_expiry:
            properties.SessionExpiryInterval = self._session_expiry
        if self._receive_maximum is not None:
            properties.ReceiveMaximum = self._receive_maximum
        try:
            async with asyncio.timeout(e.connect_timeout):
                await asyncio.to_thread(
                    self._client.connect,
                    e.host,
                    e.port,
                    keepalive=max(1, round(e.keepalive)),
                    clean_start=self._clean_start,
                    properties=properties,
                )
                self._client.loop_start()
                self.session_present, refused = await self._connected
        except (OSError, TimeoutError, ValueError) as exc:
            await self._stop()
            raise self.errors(
                f"cannot connect to the MQTT broker at {e.display} within "
                f"{e.connect_timeout:g} s ({describe(exc)}): check that it is running there "
                f"(mosquitto -p 1883) and that the host and port of {e.setting} are right"
            ) from None
        if refused is not None:
            await self._stop()
            raise self.refused_errors(
                f"the MQTT broker at {e.display} refused the connection ({refused}): check "
                f"the user and password of {e.setting} (mqtt://USER:PASSWORD@host:1883) "
                "and that the server's ACL lets this client connect"
            )

    def publish(self, messages: Sequence[Outgoing]) -> asyncio.Future[list[int]]:
        """Publish ``messages`` at QoS 1, in order (after those of earlier calls), without
        waiting: a future of the reason codes of their PUBACKs. It fails with ``errors``
        when the connection is lost first."""
        assert self._feed is not None, "open the connection first"
        return self._feed.add(messages)

    def _hand_to_paho(self, message: Outgoing) -> int:
        info = self._client.publish(
            message.topic,
            message.payload,
            qos=1,
            retain=message.retain,
            properties=message.properties,
        )
        if info.rc != paho.MQTT_ERR_SUCCESS:
            if self.lost or self._closing:
                raise self._gone_error()
            raise self.errors(
                f"could not publish to the MQTT broker at {self.endpoint.display}: "
                f"{paho.error_string(info.rc)}"
            )
        return info.mid

    async def subscribe(
        self, filters: Sequence[str], qos: int = 1, retain_handling: int = 0
    ) -> list[int]:
        """Subscribe to ``filters``; their SUBACK reason codes (0-2: the granted QoS).
        ``retain_handling`` is MQTT 5's: 0 sends the retained messages of the filters, 1 only
        for a subscription the session did not have yet, 2 never."""
        if not filters:
            return []
        options = SubscribeOptions(qos=qos, retainHandling=retain_handling)
        rc, mid = self._client.subscribe([(f, options) for f in filters])
        return await self._expect(self._sent(rc, mid, "subscribe"))

    async def unsubscribe(self, filters: Sequence[str]) -> list[int]:
        """Unsubscribe from ``filters``; their UNSUBACK reason codes."""
        if not filters:
            return []
        rc, mid = self._client.unsubscribe(list(filters))
        return await self._expect(self._sent(rc, mid, "unsubscribe"))

    def ack(self, mids: Sequence[int]) -> None:
        """Send the PUBACK of each received QoS 1 message in ``mids`` (nothing comes back)."""
        for mid in mids:
            self._client.ack(mid, 1)

    async def close(self, session_expiry: float | None = None) -> None:
        """Disconnect cleanly (no will), with ``session_expiry`` as the session's new expiry
        (0 ends it now) when given; idempotent, and quiet when the connection is gone."""
        self._closing = True
        if not self.lost and self._client.is_connected():
            properties = None
            if session_expiry is not None and self._session_expiry:
                properties = Properties(PacketTypes.DISCONNECT)
                properties.SessionExpiryInterval = int(min(session_expiry, MAX_SESSION_EXPIRY))
            self._client.disconnect(properties=properties)
        await self._stop()
        self._fail(self.errors(f"the connection to {self.endpoint.display} is closed"))

    def _fail(self, error: Exception) -> None:
        if self._replies is not None:
            self._replies.fail(error)
        if self._feed is not None:
            self._feed.clear()

    async def _stop(self) -> None:
        self._closing = True
        await asyncio.to_thread(self._client.loop_stop)
        sock = self._client.socket()
        if sock is not None:  # a connect that timed out before the loop ran
            with contextlib.suppress(OSError):
                sock.close()

    def _expect(self, mid: int) -> asyncio.Future[list[int]]:
        """The future of the acknowledgement of packet ``mid``."""
        assert self._replies is not None, "open the connection first"
        group = self._replies.group(1)
        self._replies.bind(mid, group, 0)
        return group.future

    def _sent(self, rc: int, mid: int | None, action: str) -> int:
        """``mid`` of a packet paho sent, or ``errors`` when it could not."""
        if rc != paho.MQTT_ERR_SUCCESS or mid is None:
            if self.lost or self._closing:
                raise self._gone_error()
            raise self.errors(
                f"could not {action} on the MQTT broker at {self.endpoint.display}: "
                f"{paho.error_string(rc)}"
            )
        return mid

    def _gone_error(self) -> Exception:
        return self.errors(
            f"the MQTT broker at {self.endpoint.display} closed the connection "
            "(a restart, a network cut, or another client with the same client id "
            f"{self.client_id!r}); the next call connects again"
        )

    # -- paho callbacks, in its network thread -------------------------------------------

    def _connected_cb(
        self, client: paho.Client, _: Any, flags: Any, reason: ReasonCode, properties: Any
    ) -> None:
        refused = str(reason) if reason.is_failure else None
        self.server_receive_maximum = getattr(properties, "ReceiveMaximum", 65535)
        assert self._loop is not None and self._connected is not None
        call_soon(self._loop, settle, self._connected, (flags.session_present, refused), None)

    def _disconnected_cb(
        self, client: paho.Client, _: Any, flags: Any, reason: ReasonCode, properties: Any
    ) -> None:
        if self._closing:
            return
        self.lost = True
        assert self._loop is not None
        self._fail(self._gone_error())
        if self._connected is not None:
            failed = ConnectionResetError(str(reason))
            call_soon(self._loop, settle, self._connected, None, failed)
        if self._on_lost is not None:
            call_soon(self._loop, self._on_lost)

    def _acknowledged_cb(
        self, client: paho.Client, _: Any, mid: int, reason: ReasonCode, properties: Any
    ) -> None:
        assert self._replies is not None and self._feed is not None
        self._replies.answer(mid, reason.value)
        self._feed.acknowledged()

    def _subscribed_cb(
        self, client: paho.Client, _: Any, mid: int, reasons: list[ReasonCode], properties: Any
    ) -> None:
        assert self._replies is not None
        self._replies.answer(mid, max((r.value for r in reasons), default=0))

    def _message_cb(self, client: paho.Client, _: Any, message: paho.MQTTMessage) -> None:
        if self._on_message is not None:
            self._on_message(message)


def describe(error: BaseException) -> str:
    """A short text for a connection error."""
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, (TimeoutError, socket.timeout)):
        return "timed out"
    if isinstance(error, socket.gaierror):
        return f"unknown host: {error.strerror or error}"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror.lower()
    text = " ".join(str(error).split())
    return text or type(error).__name__

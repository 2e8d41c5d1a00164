"""MQTT servers for the tests: the machine's shared Mosquitto, and private ones a test can
stop, restart or give an ACL.

The broker tests run against the Mosquitto on ``127.0.0.1:1883`` (or ``OMCONNECT_TEST_MQTT``,
a ``host:port``). Each test gets a fresh topic ``prefix`` in its URL, so its topics, groups
and sessions are its own, and a short ``session_expiry``, so the sessions its consumers leave
behind go away soon. ``delete_test_prefixes`` (called by an autouse fixture after every
broker test) deletes the retained messages those prefixes hold (the topic catalog, the
members' claims, which the server would keep for ever) and ends the sessions parked there.
When nothing answers there, the tests fail saying how to start a server.

``MosquittoProcess`` runs a private ``mosquitto`` on a free port with its persistence file
in a temporary directory (and an ACL file when given one), for tests that restart the server
or need it to refuse something.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import subprocess
import threading
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from tests.support.local_servers import ServerProcess, SharedServer, free_port

__all__ = [
    "MosquittoProcess",
    "delete_test_prefixes",
    "device_topic_root",
    "end_session",
    "free_port",
    "mqtt_test_url",
    "prime_session",
    "publish",
    "shared_address",
]

SHARED = SharedServer("Mosquitto", "OMCONNECT_TEST_MQTT", "127.0.0.1:1883", "mosquitto -p {port}")
# Long enough for a test that kills a consumer and takes its session over, short enough that
# what a killed consumer leaves on the shared server goes away within a minute.
TEST_SESSION_EXPIRY = 60


def mqtt_test_url(tmp_path: Path | None = None, **options: object) -> str:
    """An ``mqtt://`` URL of the shared server under a topic prefix of its own (cleaned up
    after the test by ``delete_test_prefixes``); ``options`` add URL options."""
    del tmp_path
    return SHARED.test_url("mqtt://{address}", **{"session_expiry": TEST_SESSION_EXPIRY, **options})


def delete_test_prefixes() -> None:
    """Delete the retained messages under the prefixes ``mqtt_test_url`` gave out and end
    the consumer sessions parked there."""
    prefixes = SHARED.take_prefixes()
    if not prefixes:
        return
    with contextlib.suppress(Exception):  # the server is gone (the test said so)
        asyncio.run(asyncio.wait_for(_delete(prefixes), 20))


async def _delete(prefixes: list[str]) -> None:
    from omconnect.runtime.brokers.mqtt._membership import parse_claim
    from omconnect.runtime.brokers.mqtt._options import parse_options
    from omconnect.runtime.brokers.mqtt._server import MqttServer
    from omconnect.runtime.brokers.url import parse_broker_url

    for prefix in prefixes:
        server = MqttServer(parse_options(parse_broker_url(mqtt_test_url_for(prefix))))
        try:
            retained = await server.read_retained(f"{prefix}/#")
            for topic, payload in retained.items():
                await server.publish_retained(topic, b"")
                if "/.groups/" not in topic:
                    continue
                group = topic.split("/")[-3]
                claim = parse_claim(server.naming, group, topic, payload)
                if claim is not None:  # a session: connecting with a clean start ends it
                    client_id = server.naming.member_client_id(group, claim[0])
                    await (await server.connect(client_id)).close()
        finally:
            await server.close()


def mqtt_test_url_for(prefix: str) -> str:
    """The URL of the shared server under ``prefix`` (not remembered for cleaning)."""
    return f"mqtt://{SHARED.address}?prefix={prefix}"


class MosquittoProcess(ServerProcess):
    """A private ``mosquitto`` on a free loopback port, anonymous access, sessions and
    retained messages persisted under ``directory`` (written when it stops), and ``acl``
    (the lines of a Mosquitto ACL file) when given; with ``users`` (user -> password) only
    they may connect."""

    binary = "mosquitto"

    def __init__(
        self, directory: Path, acl: str | None = None, users: dict[str, str] | None = None
    ) -> None:
        super().__init__(directory)
        self.acl = acl
        self.users = users

    def arguments(self) -> list[str]:
        lines = [
            # Run as whoever runs the tests (root would otherwise become "mosquitto", which
            # cannot read the test's temporary directory).
            f"user {getpass.getuser()}",
            f"listener {self.port} 127.0.0.1",
            f"allow_anonymous {'false' if self.users else 'true'}",
            "persistence true",
            f"persistence_location {self.directory}/",
        ]
        if self.acl is not None:
            acl = self.directory / "acl"
            acl.write_text(self.acl)
            lines.append(f"acl_file {acl}")
        if self.users:
            passwords = self.directory / "passwords"
            passwords.write_text("")
            for user, password in self.users.items():
                subprocess.run(
                    ["mosquitto_passwd", "-b", str(passwords), user, password], check=True
                )
            lines.append(f"password_file {passwords}")
        config = self.directory / "mosquitto.conf"
        config.write_text("\n".join(lines) + "\n")
        return ["-c", str(config)]


# -- MQTT clients of the device tests (the ``mqtt`` source reads what they publish) ---------


def device_topic_root() -> str:
    """A topic level of a test's own on the shared server (fails when nothing listens)."""
    SHARED.address_or_fail()
    return f"omct-dev-{uuid.uuid4().hex[:12]}"


def shared_address() -> str:
    """``host:port`` of the shared server (fails the test when nothing listens there)."""
    return SHARED.address_or_fail()


def _client(address: str, client_id: str = "") -> paho.Client:
    host, _, port = address.rpartition(":")
    client = paho.Client(
        paho.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5
    )
    client.connect(host, int(port), clean_start=True)
    client.loop_start()
    return client


def publish(
    address: str,
    messages: Iterable[tuple[str, bytes]],
    user_properties: Sequence[tuple[str, str]] = (),
    qos: int = 1,
) -> None:
    """Publish ``(topic, payload)`` messages in order and wait until the server has them."""
    client = _client(address)
    try:
        properties = None
        if user_properties:
            properties = Properties(PacketTypes.PUBLISH)
            properties.UserProperty = list(user_properties)
        sent = [
            client.publish(topic, payload, qos=qos, properties=properties)
            for topic, payload in messages
        ]
        for info in sent:
            info.wait_for_publish(timeout=10)
            assert info.is_published(), "the test MQTT server did not acknowledge a publish"
    finally:
        client.disconnect()
        client.loop_stop()


def prime_session(address: str, client_id: str, filters: Sequence[str], expiry: int) -> None:
    """Make the session of ``client_id`` exist, subscribed to ``filters`` at QoS 1, without
    taking anything (the server only keeps what is published after a subscription exists)."""
    host, _, port = address.rpartition(":")
    client = paho.Client(
        paho.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5
    )
    properties = Properties(PacketTypes.CONNECT)
    properties.SessionExpiryInterval = expiry
    subscribed = threading.Event()
    client.on_subscribe = lambda *_: subscribed.set()
    client.connect(host, int(port), clean_start=False, properties=properties)
    client.loop_start()
    try:
        client.subscribe([(f, SubscribeOptions(qos=1)) for f in filters])
        assert subscribed.wait(10), "the test MQTT server did not answer a subscribe"
    finally:
        client.disconnect()
        client.loop_stop()


def end_session(address: str, client_id: str) -> None:
    """End the session of ``client_id`` (a clean start with no expiry), quietly."""
    with contextlib.suppress(Exception):
        client = _client(address, client_id)
        client.disconnect()
        client.loop_stop()

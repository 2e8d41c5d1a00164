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
from pathlib import Path

from tests.support.local_servers import ServerProcess, SharedServer, free_port

__all__ = ["MosquittoProcess", "delete_test_prefixes", "free_port", "mqtt_test_url"]

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
    (the lines of a Mosquitto ACL file) when given."""

    binary = "mosquitto"

    def __init__(self, directory: Path, acl: str | None = None) -> None:
        super().__init__(directory)
        self.acl = acl

    def arguments(self) -> list[str]:
        lines = [
            # Run as whoever runs the tests (root would otherwise become "mosquitto", which
            # cannot read the test's temporary directory).
            f"user {getpass.getuser()}",
            f"listener {self.port} 127.0.0.1",
            "allow_anonymous true",
            "persistence true",
            f"persistence_location {self.directory}/",
        ]
        if self.acl is not None:
            acl = self.directory / "acl"
            acl.write_text(self.acl)
            lines.append(f"acl_file {acl}")
        config = self.directory / "mosquitto.conf"
        config.write_text("\n".join(lines) + "\n")
        return ["-c", str(config)]

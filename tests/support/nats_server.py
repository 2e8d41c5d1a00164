"""NATS servers for the tests: the machine's shared one, and private ones a test can restart.

The broker tests run against the NATS server with JetStream on ``127.0.0.1:4222`` (or
``OMCONNECT_TEST_NATS``, a ``host:port``). Each test gets a fresh ``namespace`` in its URL, so
its streams, subjects and groups bucket are its own, and ``delete_test_namespaces`` (called
by an autouse fixture after every broker test) deletes them, so the shared server does not
fill up. When nothing answers there, the tests fail saying how to start a server.

``NatsServerProcess`` runs a private ``nats-server -js`` on a free port with its store in a
temporary directory, for tests that kill and restart the server.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from tests.support.local_servers import ServerProcess, SharedServer, free_port

__all__ = ["NatsServerProcess", "delete_test_namespaces", "free_port", "nats_test_url"]

SHARED = SharedServer(
    "NATS",
    "OMCONNECT_TEST_NATS",
    "127.0.0.1:4222",
    "nats-server -js -a {host} -p {port}",
    prefix_option="namespace",
    prefix_form="t{}",
)
# Short enough that a test waiting for a dead member's partitions stays quick, long enough
# that a busy machine does not expel live members.
TEST_SESSION_TIMEOUT = 3


def nats_test_url(tmp_path: Path | None = None) -> str:
    """A ``nats://`` URL of the shared server in a namespace of its own (deleted after the
    test by ``delete_test_namespaces``)."""
    del tmp_path
    return SHARED.test_url("nats://{address}", session_timeout=TEST_SESSION_TIMEOUT)


def delete_test_namespaces() -> None:
    """Delete the streams and groups bucket of every namespace ``nats_test_url`` gave out."""
    namespaces = SHARED.take_prefixes()
    if not namespaces:
        return
    asyncio.run(_delete_namespaces(f"nats://{SHARED.address}", namespaces))


async def _delete_namespaces(server: str, namespaces: list[str]) -> None:
    import nats

    client = await nats.connect(server, connect_timeout=2, max_reconnect_attempts=1)
    try:
        js = client.jetstream()
        prefixes = tuple(f"OMC-{ns}_" for ns in namespaces)
        buckets = {f"KV_OMC-{ns}_groups" for ns in namespaces}
        offset = 0
        doomed = []
        while page := await js.streams_info(offset):
            offset += len(page)
            doomed += [
                info.config.name
                for info in page
                if info.config.name
                and (info.config.name.startswith(prefixes) or info.config.name in buckets)
            ]
        for name in doomed:
            with contextlib.suppress(Exception):
                await js.delete_stream(name)
    finally:
        await client.close()


class NatsServerProcess(ServerProcess):
    """A private ``nats-server -js`` (or without JetStream) on a free port, its store and log
    under ``directory``."""

    binary = "nats-server"

    def __init__(self, directory: Path, jetstream: bool = True) -> None:
        super().__init__(directory)
        self.jetstream = jetstream

    def arguments(self) -> list[str]:
        store = ["-js", "-sd", str(self.directory / "store")] if self.jetstream else []
        return [*store, "-a", "127.0.0.1", "-p", str(self.port)]

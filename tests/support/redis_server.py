"""Redis servers for the tests: the machine's shared one, and private ones a test can restart.

The broker tests run against the Redis server on ``127.0.0.1:6379`` (or
``OMCONNECT_TEST_REDIS``, a ``host:port``). Each test gets a fresh key ``prefix`` in its URL,
so its streams, topics and groups are its own, and ``delete_test_prefixes`` (called by an
autouse fixture after every broker test) deletes their keys, so the shared server stays
clean. When nothing answers there, the tests fail saying how to start a server.

``RedisServerProcess`` runs a private ``redis-server`` on a free port with an append-only
file in a temporary directory, for tests that kill and restart the server.
"""

from __future__ import annotations

from pathlib import Path

from tests.support.local_servers import ServerProcess, SharedServer, free_port

__all__ = ["RedisServerProcess", "delete_test_prefixes", "free_port", "redis_test_url"]

SHARED = SharedServer(
    "Redis",
    "OMCONNECT_TEST_REDIS",
    "127.0.0.1:6379",
    "redis-server --bind {host} --port {port} --save ''",
)
# Short enough that a test waiting for a dead member's partitions stays quick, long enough
# that a busy machine does not expel live members.
TEST_CLAIM_IDLE = 2


def redis_test_url(tmp_path: Path | None = None, **options: object) -> str:
    """A ``redis://`` URL of the shared server with a key prefix of its own (its keys are
    deleted after the test by ``delete_test_prefixes``); ``options`` add URL options."""
    del tmp_path
    return SHARED.test_url("redis://{address}", **{"claim_idle": TEST_CLAIM_IDLE, **options})


def delete_test_prefixes() -> None:
    """Delete every key under the prefixes ``redis_test_url`` gave out."""
    prefixes = SHARED.take_prefixes()
    if not prefixes:
        return
    import redis

    host, _, port = SHARED.address.rpartition(":")
    client = redis.Redis(host=host, port=int(port), socket_timeout=5, socket_connect_timeout=2)
    try:
        for prefix in prefixes:
            doomed = list(client.scan_iter(match=f"{prefix}:*", count=1000))
            for start in range(0, len(doomed), 500):
                client.delete(*doomed[start : start + 500])
    except redis.RedisError:
        pass  # the server is gone (the test said so): nothing to clean
    finally:
        client.close()


class RedisServerProcess(ServerProcess):
    """A private ``redis-server`` on a free port, persisting every write to an append-only
    file (``appendfsync always``) under ``directory``; it logs to ``server.log``."""

    binary = "redis-server"

    def arguments(self) -> list[str]:
        options = {
            "bind": "127.0.0.1",
            "port": str(self.port),
            "dir": str(self.directory),
            "appendonly": "yes",
            "appendfsync": "always",
            "save": "",
        }
        return [part for name, value in options.items() for part in (f"--{name}", value)]

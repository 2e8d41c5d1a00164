"""Fixtures and helpers for the broker tests: one contract, every backend.

``broker_url`` is parametrised over the backends that can run here. Only the embedded broker
exists today; a server-backed driver adds a param that builds its URL from an environment
variable (e.g. ``OMCONNECT_TEST_KAFKA``) and skips when it is unset, so the contract test bodies
stay the same for every driver.

The contract (``test_broker_contract.py`` for every backend, ``test_contract_<capability>.py``
per capability) is written against ``omconnect.runtime.brokers.base`` only. A test that needs a
capability calls ``requires(broker, "<capability>")`` first: it skips, naming the capability,
when the driver does not declare it. That is the only allowed skip: whatever a driver declares
must pass. Tests subscribe before they publish where a queue broker (which only keeps messages
for subscriptions that exist) would otherwise lose the messages, use fresh topic and group
names, and mark messages processed the way the runtime does (``settle``: ``ack`` on a broker
that declares acks, ``commit`` otherwise).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator, Sequence, Set
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args

import pytest

from omconnect.runtime.brokers import (
    Broker,
    ConsumedBatch,
    Consumer,
    TopicPartition,
    open_broker,
    parse_broker_url,
)
from omconnect.runtime.brokers.base import ConsumerStart, RebalanceListener
from omconnect.schemas.message_batch import MessageBatch
from tests.support.kafka_server import kafka_test_url
from tests.support.mosquitto_server import delete_test_prefixes as delete_mqtt_test_prefixes
from tests.support.mosquitto_server import mqtt_test_url
from tests.support.nats_server import delete_test_namespaces, nats_test_url
from tests.support.rabbitmq_server import amqp_test_url, delete_test_declarations
from tests.support.redis_server import delete_test_prefixes, redis_test_url

T = TypeVar("T")

BROKER_BACKENDS = ["amqp", "embedded", "kafka", "mqtt", "nats", "redis"]

Capability = Literal[
    "log", "end_offsets", "acks", "transactions", "partitions", "groups", "retention", "compaction"
]
CAPABILITIES: tuple[str, ...] = get_args(Capability)


def _embedded_url(tmp_path: Path) -> str:
    return f"embedded://{tmp_path / 'broker'}"


_URL_BUILDERS: dict[str, Callable[[Path], str]] = {
    "amqp": amqp_test_url,  # the shared server, a name prefix per test
    "embedded": _embedded_url,
    "kafka": kafka_test_url,  # one Tansu for the session (tests/support/kafka_server.py)
    "mqtt": mqtt_test_url,  # the shared Mosquitto, a topic prefix per test
    "nats": nats_test_url,  # the shared server, a namespace per test (tests/support)
    "redis": redis_test_url,  # the shared server, a key prefix per test
}


@pytest.fixture(params=BROKER_BACKENDS)
def broker_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A URL of an empty broker (or of a shared server, with fresh topic names)."""
    return _URL_BUILDERS[request.param](tmp_path)


@pytest.fixture(autouse=True)
def _clean_the_shared_servers() -> Iterator[None]:
    """After each test, delete what its URLs made on the shared servers, each URL under a
    prefix (a namespace on NATS) of its own: the streams and groups buckets of NATS, the keys
    of Redis, the exchanges and queues of RabbitMQ, the retained messages of MQTT and the
    sessions parked there. Every clean-up runs, whichever fails."""
    yield
    with contextlib.ExitStack() as clean_ups:
        for delete in (
            delete_test_namespaces,
            delete_test_prefixes,
            delete_test_declarations,
            delete_mqtt_test_prefixes,
        ):
            clean_ups.callback(delete)


@pytest.fixture
def broker(broker_url: str) -> Broker:
    """The broker of ``broker_url``, not connected yet (opening does no I/O): the test checks
    ``requires`` first, then ``run_on`` runs its body and closes the broker on the same loop."""
    return open_broker(broker_url)


@pytest.fixture
def topic_name() -> str:
    """A topic name no other test uses, so server-backed brokers need no cleanup."""
    return f"t-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def group() -> str:
    """A consumer group name no other test uses (server-backed brokers keep groups)."""
    return f"g-{uuid.uuid4().hex[:12]}"


def requires(broker: Broker, *capabilities: Capability) -> None:
    """Skip the test unless the driver declares every one of ``capabilities``.

    Skipping is only for what a driver does not declare: a declared capability must pass.
    """
    __tracebackhide__ = True  # report the skip at the test's line
    scheme = parse_broker_url(broker.url).scheme
    for capability in capabilities:
        if capability not in CAPABILITIES:
            raise ValueError(f"unknown broker capability {capability!r} (known: {CAPABILITIES})")
        if not getattr(broker.capabilities, capability):
            pytest.skip(f"{scheme} does not declare {capability}")


def partitions_for(broker: Broker, wanted: int) -> int:
    """``wanted`` partitions on a broker that declares partitions, else the one it has."""
    return wanted if broker.capabilities.partitions else 1


def run(coroutine: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
    """Run a test's async body on a fresh event loop, failing instead of hanging."""

    async def bounded() -> T:
        return await asyncio.wait_for(coroutine, timeout)

    return asyncio.run(bounded())


def run_on(broker: Broker, coroutine: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
    """``run`` a test body that uses ``broker``, closing the broker on the body's loop after."""

    async def bounded() -> T:
        try:
            return await asyncio.wait_for(coroutine, timeout)
        finally:
            await broker.close()

    return asyncio.run(bounded())


def numbered_messages(start: int, count: int, key_space: int | None = None) -> MessageBatch:
    """Messages whose values are ``b"m<number>"``; keys ``b"k<number % key_space>"``."""
    numbers = range(start, start + count)
    keys = None if key_space is None else [f"k{n % key_space}".encode() for n in numbers]
    return MessageBatch.build(
        [f"m{n}".encode() for n in numbers], keys=keys, timestamps=1_700_000_000_000 + start
    )


def numbered(values: Sequence[bytes]) -> list[int]:
    """The numbers of ``numbered_messages`` values (``b"m12"`` or ``b"m12:..."`` -> 12)."""
    return [int(v.split(b":")[0][1:]) for v in values]


def messages(start: int, stop: int) -> list[bytes]:
    """The values ``numbered_messages`` gives numbers ``start`` to ``stop - 1``."""
    return [f"m{n}".encode() for n in range(start, stop)]


def values(batches: Sequence[ConsumedBatch]) -> list[bytes]:
    return [v for b in batches for v in b.messages.values.to_pylist()]


def offsets(batches: Sequence[ConsumedBatch]) -> list[int]:
    found = []
    for batch in batches:
        assert batch.messages.offsets is not None, "consumers always set message offsets"
        found.extend(batch.messages.offsets.to_pylist())
    return found


def by_partition(batches: Sequence[ConsumedBatch]) -> dict[TopicPartition, list[bytes]]:
    """The values read of each topic partition, in the order they were read."""
    found: dict[TopicPartition, list[bytes]] = {}
    for batch in batches:
        found.setdefault((batch.topic, batch.partition), []).extend(values([batch]))
    return found


async def drain(
    consumer: Consumer, max_messages: int = 1000, timeout: float = 0.2
) -> list[ConsumedBatch]:
    """Every batch the consumer returns until a poll comes back empty after ``timeout``."""
    batches: list[ConsumedBatch] = []
    while got := await consumer.poll(max_messages, timeout):
        batches.extend(got)
    return batches


async def read_until(
    consumer: Consumer,
    done: Callable[[list[ConsumedBatch]], bool],
    timeout: float = 15.0,
    max_messages: int = 1000,
) -> list[ConsumedBatch]:
    """Poll until ``done(everything read so far)``; fails after ``timeout`` seconds."""
    batches: list[ConsumedBatch] = []
    deadline = time.monotonic() + timeout
    while not done(batches):
        assert time.monotonic() < deadline, f"gave up waiting; read {values(batches)}"
        batches.extend(await consumer.poll(max_messages, 0.1))
    return batches


async def settle(broker: Broker, consumer: Consumer, batches: Sequence[ConsumedBatch]) -> None:
    """Mark ``batches`` processed as the runtime does: acknowledge their tokens on a broker
    that declares acks, else commit the offset after them."""
    if not batches:
        return
    if broker.capabilities.acks:
        await consumer.ack([batch.ack_token for batch in batches])
        return
    ends: dict[TopicPartition, int] = {}
    for batch in batches:
        tp = (batch.topic, batch.partition)
        ends[tp] = max(ends.get(tp, 0), batch.next_offset)
    await consumer.commit(ends)


async def joined(
    broker: Broker,
    group: str,
    topics: Sequence[str] = (),
    *,
    pattern: str | None = None,
    listener: RebalanceListener | None = None,
    start: ConsumerStart = "earliest",
) -> Consumer:
    """A consumer that has polled once (an empty topic: it reads nothing), so it is subscribed
    before the test publishes."""
    consumer = await broker.consumer(group, topics, pattern=pattern, listener=listener, start=start)
    assert await consumer.poll(1, timeout=0.05) == []
    return consumer


Event = tuple[str, str, Any]


class Member:
    """A group member that records its rebalance callbacks and reads in a shared event list and,
    as the runtime does, settles what it read: right away on a broker with acks, else by
    committing the offsets it read of the partitions it loses, in ``on_partitions_revoked``."""

    def __init__(self, broker: Broker, name: str, events: list[Event]) -> None:
        self.broker = broker
        self.name = name
        self.events = events
        self.values: list[bytes] = []
        self.read: dict[TopicPartition, int] = {}
        self.owned: set[TopicPartition] = set()  # as the callbacks told it
        self._consumer: Consumer | None = None

    @classmethod
    async def join(
        cls, broker: Broker, name: str, events: list[Event], group: str, topics: Sequence[str]
    ) -> Member:
        """A member that has not polled yet."""
        member = cls(broker, name, events)
        member._consumer = await broker.consumer(group, topics, listener=member)
        return member

    @property
    def consumer(self) -> Consumer:
        assert self._consumer is not None
        return self._consumer

    async def on_partitions_assigned(self, partitions: Set[TopicPartition]) -> None:
        self.events.append((self.name, "assigned", set(partitions)))
        self.owned |= partitions

    async def on_partitions_revoked(self, partitions: Set[TopicPartition]) -> None:
        self.events.append((self.name, "revoked", set(partitions)))
        self.owned -= partitions
        done = {tp: self.read.pop(tp) for tp in partitions if tp in self.read}
        if done and not self.broker.capabilities.acks:
            await self.consumer.commit(done)

    async def poll(self, max_messages: int = 25, timeout: float = 0.05) -> int:
        """Poll once, recording ``(name, "read", (topic, partition))`` per batch; the number
        of messages read."""
        batches = await self.consumer.poll(max_messages, timeout)
        for batch in batches:
            tp = (batch.topic, batch.partition)
            self.events.append((self.name, "read", tp))
            self.values.extend(values([batch]))
            self.read[tp] = batch.next_offset
        if self.broker.capabilities.acks:
            await settle(self.broker, self.consumer, batches)
        return sum(len(b.messages) for b in batches)

    async def commit_read(self) -> None:
        """Commit what it read of the partitions it owns (a member about to leave)."""
        if self.broker.capabilities.acks:
            return
        owned = await self.consumer.assignment()
        await self.consumer.commit({tp: o for tp, o in self.read.items() if tp in owned})


def split_evenly(owned: Sequence[Set[TopicPartition]], partitions: Set[TopicPartition]) -> bool:
    """Whether the members own every partition once, each its fair share."""
    share = len(partitions) // len(owned)
    return (
        sum(len(o) for o in owned) == len(partitions)
        and set().union(*owned) == partitions
        and min(len(o) for o in owned) >= share
    )

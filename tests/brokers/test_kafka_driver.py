"""What the ``kafka://`` driver adds to the broker contract, against Tansu (tests/support/
kafka_server.py): OpenMessaging headers as Kafka headers, topic settings in the broker's
configuration, keys on the partitions Java clients choose, transactions as far as the server
has them, no acknowledged message lost when the broker goes away mid-publish, fast failures
for a broker that is not there, and a throughput reading (``pytest -s`` shows it)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from dataclasses import replace

import pytest
from confluent_kafka import Consumer as LibrdkafkaConsumer
from confluent_kafka import Producer as LibrdkafkaProducer
from confluent_kafka import TopicPartition as KafkaPartition

from omconnect.runtime.brokers import open_broker
from omconnect.runtime.brokers.base import (
    BrokerError,
    SendResult,
    TopicSettings,
    UnsupportedOperation,
)
from omconnect.runtime.brokers.kafka import KafkaBroker, KafkaUrlError
from omconnect.schemas.message import ExtensionHeader, Header, Message, messages_to_batch
from omconnect.schemas.message_batch import MessageBatch
from tests.support.kafka_server import (
    TEST_OPTIONS,
    shared_kafka_servers,
    shared_kafka_url,
    start_tansu,
)
from tests.support.local_servers import free_port
from tests.support.tcp_proxy import TcpProxy

from .conftest import drain, numbered, numbered_messages, read_until, run_on, values


@pytest.fixture
def kafka() -> KafkaBroker:
    broker = open_broker(shared_kafka_url())
    assert isinstance(broker, KafkaBroker)
    return broker


def _fresh(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def _servers(broker: KafkaBroker) -> str:
    return broker.options.servers


def test_every_openmessaging_field_travels_as_a_kafka_header(kafka: KafkaBroker) -> None:
    topic, group = _fresh("om"), _fresh("g")
    sent = [
        Message(
            Header(
                message_id="order-17",
                destination=topic,
                born_timestamp=1_700_000_000_123,
                born_host="collector-1",
                qos=2,
                compression="zstd",
            ),
            ExtensionHeader(
                store_timestamp=1_700_000_000_500,
                store_host="tansu-0",
                message_key=b"order:17",
                correlation_id="req-9",
                delay_time=250,
                transaction_id="tx-3",
                expire_time=1_700_000_900_000,
                trace_id="4bf92f3577b34da6a3ce929d0e0e4736",
                delivery_count=2,
                priority=7,
            ),
            {"content-type": b"application/vnd.apache.avro", "schema.id": b"42", "blank": b""},
            b"\x00\x00\x00\x00\x2a payload",
        ),
        Message(Header("order-18", topic, 0, ""), data=None),  # a tombstone born at the epoch
        Message(Header("order-19", topic, -5, "h"), properties={"x": b"\xff"}, data=b""),
    ]

    async def body() -> MessageBatch:
        producer = await kafka.producer()
        await producer.send(topic, messages_to_batch(sent))
        consumer = await kafka.consumer(group, [topic])
        batches = await read_until(consumer, lambda got: len(values(got)) >= 3)
        return MessageBatch.concat([b.messages for b in batches])

    received = run_on(kafka, body())
    read = [Message.from_batch_row(received, row, topic, 0) for row in range(3)]
    expected = [
        Message(m.header, replace(m.extension_header, partition=0), m.properties, m.data)
        for m in sent
    ]
    assert read == expected

    # Other Kafka clients see plain headers with the OpenMessaging names.
    reader = LibrdkafkaConsumer({"bootstrap.servers": _servers(kafka), "group.id": group})
    try:
        reader.assign([KafkaPartition(topic, 0, 0)])
        first = next(m for m in reader.consume(1, 10) if m.error() is None)
    finally:
        reader.close()
    assert dict(first.headers() or []) == {
        "oms.message_id": b"order-17",
        "oms.born_host": b"collector-1",
        "oms.compression": b"zstd",
        "oms.qos": b"2",
        "oms.store_host": b"tansu-0",
        "oms.correlation_id": b"req-9",
        "oms.transaction_id": b"tx-3",
        "oms.trace_id": b"4bf92f3577b34da6a3ce929d0e0e4736",
        "oms.store_timestamp": b"1700000000500",
        "oms.delay_time": b"250",
        "oms.expire_time": b"1700000900000",
        "oms.delivery_count": b"2",
        "oms.priority": b"7",
        "content-type": b"application/vnd.apache.avro",
        "schema.id": b"42",
        "blank": b"",
    }
    assert first.key() == b"order:17"
    assert first.timestamp()[1] == 1_700_000_000_123


def test_topic_settings_are_in_the_brokers_configuration(kafka: KafkaBroker) -> None:
    compacted, plain = _fresh("compacted"), _fresh("plain")

    async def body() -> tuple[dict[str, str], dict[str, str], dict[str, int]]:
        await kafka.create_topic(
            compacted,
            TopicSettings(partitions=3, compacted=True, retention_ms=3_600_000),
        )
        await kafka.create_topic(plain, TopicSettings(retention_bytes=1_048_576))
        listed = {t.name: t.partitions for t in await kafka.list_topics()}
        return await kafka.topic_config(compacted), await kafka.topic_config(plain), listed

    compacted_config, plain_config, listed = run_on(kafka, body())
    assert compacted_config["cleanup.policy"] == "compact"
    assert compacted_config["retention.ms"] == "3600000"
    assert plain_config["cleanup.policy"] == "delete"
    assert plain_config["retention.bytes"] == "1048576"
    assert (listed[compacted], listed[plain]) == (3, 1)
    assert not any(name.startswith("__") for name in listed), "internal topics are left out"


def test_keys_land_on_the_partitions_kafkas_own_partitioner_picks(kafka: KafkaBroker) -> None:
    """librdkafka's ``murmur2`` partitioner is the Java client's default: both producers put
    every key on the same partition."""
    ours, theirs = _fresh("ours"), _fresh("theirs")
    keys = [f"customer-{n}".encode() for n in range(200)] + [b"", b"\x00\xff"]

    async def body() -> dict[bytes, int]:
        for name in (ours, theirs):
            await kafka.create_topic(name, TopicSettings(partitions=7))
        producer = await kafka.producer()
        await producer.send(ours, MessageBatch.build(keys, keys=keys))
        return await _partitions_by_key(kafka, ours, len(keys))

    placed = run_on(kafka, body())
    java_like = LibrdkafkaProducer({"bootstrap.servers": _servers(kafka), "partitioner": "murmur2"})
    for key in keys:
        java_like.produce(theirs, key, key)
    assert java_like.flush(30) == 0
    expected = asyncio.run(_partitions_by_key(open_broker(shared_kafka_url()), theirs, len(keys)))
    assert placed == expected
    assert len(set(placed.values())) == 7


def test_a_send_spread_over_partitions_says_where_each_partitions_messages_landed(
    kafka: KafkaBroker,
) -> None:
    """One ``SendResult`` per partition: its first offset and how many messages it took,
    counted from the delivery reports (a second send starts where the first ended)."""
    topic = _fresh("spread")
    keys = [f"k{n}".encode() for n in range(300)]

    async def body() -> tuple[list[SendResult], list[SendResult]]:
        await kafka.create_topic(topic, TopicSettings(partitions=3))
        producer = await kafka.producer()
        first = await producer.send(topic, MessageBatch.build(keys, keys=keys))
        second = await producer.send(topic, MessageBatch.build(keys, keys=keys))
        return first, second

    first, second = run_on(kafka, body())
    assert [r.partition for r in first] == [0, 1, 2]
    assert sum(r.count for r in first) == 300 and all(r.first_offset == 0 for r in first)
    assert [(r.partition, r.first_offset, r.count) for r in second] == [
        (r.partition, r.count, r.count) for r in first
    ]


def test_a_message_librdkafka_refuses_fails_its_send_and_no_other(kafka: KafkaBroker) -> None:
    """A message over ``message.max.bytes`` is refused by ``produce`` in the middle of a
    send: the send fails with the reason (the messages before it were queued and are
    reported, the rest never are), and the producer goes on publishing."""
    topic = _fresh("refused")
    too_big = b"x" * 2_000_000

    async def body() -> list[SendResult]:
        await kafka.create_topic(topic)
        producer = await kafka.producer()
        with pytest.raises(BrokerError, match=r"(?i)too large|size"):
            await producer.send(topic, MessageBatch.build([b"a", b"b", too_big, b"c"]))
        return await producer.send(topic, MessageBatch.build([b"d"]))

    (after,) = run_on(kafka, body())
    assert (after.partition, after.first_offset, after.count) == (0, 2, 1)


async def _partitions_by_key(broker: object, topic: str, count: int) -> dict[bytes, int]:
    assert isinstance(broker, KafkaBroker)
    consumer = await broker.consumer(_fresh("g"), [topic])
    batches = await read_until(consumer, lambda got: len(values(got)) >= count)
    await broker.close()
    return {key: batch.partition for batch in batches for key in batch.messages.keys.to_pylist()}


def test_a_committed_transaction_shows_its_messages_and_positions_together() -> None:
    """The parts of Kafka transactions that Tansu 0.6 has: an open transaction is invisible
    to readers, its commit makes the messages and the positions visible. (Tansu does not hide
    aborted transactions from readers, so the shared URL declares ``transactions=false`` and
    the contract's abort tests run only against a server that has them.)"""
    broker = open_broker(f"kafka://{shared_kafka_servers()}?{TEST_OPTIONS}")
    assert isinstance(broker, KafkaBroker) and broker.capabilities.transactions
    topic, group, namespace = _fresh("tx"), _fresh("g"), _fresh("pipeline")

    async def body() -> tuple[list[bytes], dict[str, str], dict[str, str]]:
        await broker.create_topic(topic, TopicSettings(partitions=2))
        consumer = await broker.consumer(group, [topic])
        producer = await broker.producer()
        await producer.begin_transaction()
        await producer.send(topic, numbered_messages(0, 4), 0)
        await producer.send(topic, numbered_messages(4, 4), 1)
        assert await drain(consumer, timeout=0.5) == []
        assert await broker.transaction_positions(namespace) == {}
        await producer.commit_transaction(namespace, {"file-a": "8"})
        read = await read_until(consumer, lambda got: len(values(got)) >= 8)
        first = await broker.transaction_positions(namespace)
        await producer.begin_transaction()
        await producer.commit_transaction(namespace, {"file-a": "9", "file-b": "1"})
        ends = await consumer.end_offsets()
        assert ends == {(topic, 0): 4, (topic, 1): 4}, "the markers are not counted"
        return values(read), first, await broker.transaction_positions(namespace)

    read, first, second = run_on(broker, body())
    assert sorted(numbered(read)) == list(range(8))
    assert first == {"file-a": "8"}
    assert second == {"file-a": "9", "file-b": "1"}


def test_transactions_false_declares_none() -> None:
    broker = open_broker(f"kafka://127.0.0.1:{free_port()}?transactions=false")
    assert not broker.capabilities.transactions

    async def body() -> None:
        with pytest.raises(UnsupportedOperation):
            await broker.transaction_positions("p")

    run_on(broker, body())


def test_no_acknowledged_message_is_lost_when_the_broker_goes_away_mid_publish() -> None:
    """Tansu's storage here is memory, which a restarted process loses, so the broker "goes
    away" at the network instead: a proxy in front of a separate Tansu resets every connection
    in the middle of a send and refuses new ones for a while, as a restarting broker does.
    Every send that returned is read back exactly once; none hangs."""
    with TcpProxy(free_port()) as proxy:
        server = start_tansu(advertised_port=proxy.port)
        proxy.target = ("127.0.0.1", server.port)
        broker = open_broker(server.url(TEST_OPTIONS + "&delivery_timeout_ms=20000"))
        topic = _fresh("outage")

        async def body() -> tuple[list[int], list[bytes]]:
            await broker.create_topic(topic, TopicSettings(partitions=3))
            producer = await broker.producer()
            acknowledged: list[int] = []
            loop = asyncio.get_running_loop()
            cut_done = asyncio.Event()

            async def outage() -> None:
                await asyncio.sleep(0.3)
                proxy.cut_after(nbytes=64 * 1024)  # lands inside a produce request
                await loop.run_in_executor(None, proxy.wait_cut, 10)
                await asyncio.sleep(1.0)
                proxy.restore()
                cut_done.set()

            cutting = asyncio.ensure_future(outage())
            start = 0
            while not (cut_done.is_set() and start >= 5_000):
                await producer.send(topic, numbered_messages(start, 500, key_space=97))
                acknowledged.extend(range(start, start + 500))
                start += 500
            await cutting
            consumer = await broker.consumer(_fresh("g"), [topic])
            read = await read_until(
                consumer, lambda got: len(values(got)) >= len(acknowledged), timeout=60
            )
            return acknowledged, values(read + await drain(consumer))

        try:
            acknowledged, read = run_on(broker, body(), timeout=120)
        finally:
            server.stop()
    assert proxy.cuts >= 1
    counts = Counter(numbered(read))
    assert not set(acknowledged) - set(counts), "acknowledged messages are missing"
    assert max(counts.values()) == 1, "the idempotent producer wrote a message twice"


@pytest.mark.parametrize("connect_ms", [1000, 300])  # librdkafka itself refuses < 1000
def test_a_broker_that_is_not_there_fails_within_seconds(connect_ms: int) -> None:
    port = free_port()  # nothing listens there
    broker = open_broker(f"kafka://127.0.0.1:{port}?connect_timeout_ms={connect_ms}")

    async def attempt(what: str) -> str:
        started = time.monotonic()
        with pytest.raises(BrokerError) as caught:
            if what == "producer":
                await broker.producer()
            elif what == "consumer":
                await broker.consumer("g", ["t"])
            else:
                await broker.list_topics()
        assert time.monotonic() - started < 3, f"{what} took too long to fail"
        return str(caught.value)

    async def body() -> list[str]:
        return [await attempt(w) for w in ("producer", "consumer", "topics")]

    for message in run_on(broker, body()):
        assert "\n" not in message
        assert f"127.0.0.1:{port}" in message and "check that" in message


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("kafka://", "host:port"),
        ("kafka://localhost:notaport", "not a port"),
        ("kafka://localhost:9092?session_timeout=5", "unknown kafka option 'session_timeout'"),
        ("kafka://localhost:9092?session_timeout_ms=soon", "whole number"),
        ("kafka://localhost:9092?compression=brotli", "compression must be one of"),
        ("kafka://user:s3cret@localhost:9092", "credentials"),
    ],
)
def test_a_misconfigured_url_is_refused_at_once(url: str, expected: str) -> None:
    with pytest.raises(KafkaUrlError, match=expected) as caught:
        open_broker(url)
    assert isinstance(caught.value, BrokerError) and isinstance(caught.value, ValueError)
    assert "s3cret" not in str(caught.value)


def test_throughput_of_small_messages(kafka: KafkaBroker) -> None:
    """100,000 messages of 100 bytes with keys and message ids (as the runtime sends them),
    in sends of 10,000 with several in flight; prints the rates."""
    topic, total, size = _fresh("rate"), 100_000, 10_000
    batch = MessageBatch.build(
        [b"v" * 100] * size,
        keys=[f"k{n % 1000}".encode() for n in range(size)],
        message_ids=[f"{n:016x}-0" for n in range(size)],
    )

    async def body() -> tuple[float, float, int]:
        await kafka.create_topic(topic, TopicSettings(partitions=4))
        producer = await kafka.producer()
        started = time.perf_counter()
        await asyncio.gather(*(producer.send(topic, batch) for _ in range(total // size)))
        sent = time.perf_counter() - started
        consumer = await kafka.consumer(_fresh("g"), [topic])
        received = 0
        started = 0.0
        while received < total:
            got = await consumer.poll(size, 5)
            assert got, f"read {received} of {total}"
            started = started or time.perf_counter()
            received += sum(len(b.messages) for b in got)
        return sent, time.perf_counter() - started, received

    sent, read, received = run_on(kafka, body(), timeout=120)
    assert received == total
    print(
        f"\nkafka driver on Tansu, 100-byte messages: send {total / sent:,.0f} msg/s, "
        f"poll {total / read:,.0f} msg/s"
    )

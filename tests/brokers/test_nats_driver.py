"""What the nats:// driver does beyond the broker contract: its URL, its names, how headers
and message ids travel, what happens when a member dies or the server goes away.

Tests that need a server use the shared one (``tests/support/nats_server.py``; they fail
saying how to start it when it is not there) in a namespace of their own, or start a private
``nats-server`` they can kill.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import nats
import pytest

from omconnect.runtime.brokers import Broker, ConsumedBatch, open_broker
from omconnect.runtime.brokers.base import BrokerError, SendResult, TopicSettings
from omconnect.runtime.brokers.nats import NatsBroker
from omconnect.runtime.brokers.nats import producer as nats_producer
from omconnect.runtime.brokers.nats._acks import AckInbox, PendingSend
from omconnect.runtime.brokers.nats._naming import Naming, check_topic, decode_topic, encode_topic
from omconnect.runtime.brokers.nats._options import parse_options
from omconnect.runtime.brokers.url import parse_broker_url
from omconnect.schemas.message_batch import MessageBatch
from tests.support.driver_checks import (
    as_the_runtime_sends,
    check_round_trip,
    messages_with_every_field,
    open_without,
    refused_urls,
    unreachable_error,
)
from tests.support.nats_server import NatsServerProcess, free_port, nats_test_url

from .conftest import drain, joined, messages, numbered_messages, read_until, run_on, values
from .slow_link import SlowLink, send_through_a_stall


@pytest.fixture
def nats_url() -> str:
    """A URL of the shared server in a namespace of this test's (deleted after it)."""
    return nats_test_url()


# -- without a server -----------------------------------------------------------------------


def test_url_options_are_parsed_and_checked() -> None:
    options = parse_options(
        parse_broker_url("oms:nats://alice:s3cret@h1,h2:4223?namespace=prod&session_timeout=4")
    )
    assert options.servers == ("nats://alice:s3cret@h1:4222", "nats://alice:s3cret@h2:4223")
    assert options.display == "h1:4222,h2:4223"
    assert (options.namespace, options.session_timeout, options.connect_timeout) == (
        "prod",
        4.0,
        3.0,
    )
    refused_urls(
        [
            ("nats://alice:s3cret@h1:4222?acks=all", "unknown nats:// option 'acks'"),
            ("nats://h:4222?session_timeout=0", "session_timeout must be a positive number"),
            ("nats://h:4222?namespace=a_b", "namespace must be 1 to 32 letters"),
            ("nats://h:4222?replicas=9", "replicas must be 1 to 5"),
            ("nats://h:4222/ns", "take no path"),
            ("nats://", "needs a server"),
        ],
        ValueError,
    )
    opened = open_broker("nats://alice:s3cret@h1:4222")
    assert isinstance(opened, NatsBroker)
    assert opened.url == "nats://***@h1:4222", "the URL shown never holds the password"


def test_topic_names_map_to_readable_reversible_stream_names() -> None:
    naming = Naming()
    assert naming.stream("orders.public.customers", 2) == "OMC_orders_public_customers-2"
    assert naming.subject("orders.public.customers", 2) == "orders.public.customers.2"
    staging = Naming("staging")
    assert staging.stream("a.b", 0) == "OMC-staging_a_b-0"
    assert staging.subject("a.b", 0) == "staging.a.b.0"
    for topic in ["t", "a.b", "a_b", "a-b", "a~b", "x.y_z-1", "é.ü", "a:b", "x-0"]:
        assert decode_topic(encode_topic(topic)) == topic
        for partition in (0, 7, 12):
            assert naming.partition_of(naming.stream(topic, partition)) == (topic, partition)
            assert staging.partition_of(naming.stream(topic, partition)) is None
            assert naming.partition_of(staging.stream(topic, partition)) is None
    assert len({encode_topic(t) for t in ["a.b", "a_b", "a~2Eb", "a~5Fb"]}) == 4
    assert naming.partition_of("KV_OMC_groups") is None
    for bad in ["", "a..b", ".a", "a.", "a b", "a.*", "a.>", "$SYS.x"]:
        with pytest.raises(ValueError):
            check_topic(bad)


def test_the_core_imports_without_nats_py_and_the_driver_says_what_is_missing() -> None:
    said = open_without("nats", "nats://localhost:4222", "ValueError")
    assert "install the omconnect[nats] extra" in said


# -- errors a person can act on ---------------------------------------------------------------


def test_an_unreachable_server_fails_within_seconds_saying_what_to_check() -> None:
    port = free_port()  # nothing listens there
    broker = open_broker(f"nats://alice:s3cret@127.0.0.1:{port}")
    message = unreachable_error(broker, broker.list_topics)
    assert f"127.0.0.1:{port}" in message
    assert "connection refused" in message
    assert "nats-server -js" in message


def test_a_server_without_jetstream_is_a_clear_error(tmp_path: Path) -> None:
    server = NatsServerProcess(tmp_path / "plain", jetstream=False)
    server.start()
    try:
        broker = open_broker(f"nats://{server.address}")
        with pytest.raises(BrokerError, match=r"JetStream is not available.*nats-server -js"):
            run_on(broker, broker.list_topics())
    finally:
        server.stop()


# -- headers, ids, namespaces -----------------------------------------------------------------


_PROPERTIES = {
    "content-type": b"application/vnd.apache.avro+binary",
    "schema-id": b"42",
    "user": b"plain text",
    "padded": b"  spaces around  ",
    "binary": b"\x00\x01\xfe",
    "name with spaces": b"x",
    "Status": b"not a server status",
    "Nats-Expected-Stream": b"not for the server",
    "empty": b"",
    "unicode": "grüße".encode(),
}


def test_every_openmessaging_field_round_trips_through_nats_headers(nats_url: str) -> None:
    broker = open_broker(nats_url)
    topic = f"h-{uuid.uuid4().hex[:8]}"
    sent = messages_with_every_field(topic, _PROPERTIES)

    async def body() -> tuple[list[ConsumedBatch], list[dict[str, str]]]:
        await broker.create_topic(topic)
        await (await broker.producer()).send(topic, as_the_runtime_sends(sent))
        consumer = await broker.consumer("g", [topic])
        batches = await read_until(consumer, lambda got: len(values(got)) >= 6)
        return batches, await _raw_headers(broker, topic)

    batches, raw = run_on(broker, body())
    check_round_trip(sent, batches, topic)
    # Other NATS clients see the fields as plain headers, the id as JetStream's message id.
    first = raw[0]
    assert first["Nats-Msg-Id"] == "msg-0"
    assert first["oms.born_host"] == "host-1.example"
    assert first["oms.trace_id"] == sent[0].extension_header.trace_id
    assert first["content-type"] == "application/vnd.apache.avro+binary"
    assert first["schema-id"] == "42"
    assert "Status" not in first, "a property named Status must not look like a server status"
    assert raw[1]["Om-Key"] == "key-1"


async def _raw_headers(broker: Broker, topic: str) -> list[dict[str, str]]:
    """The headers of every message of partition 0 as a plain nats-py client reads them."""
    assert isinstance(broker, NatsBroker)
    address = broker.options.display
    naming = Naming(broker.options.namespace)
    client = await nats.connect(f"nats://{address}")
    try:
        js = client.jetstream()
        reader = await js.pull_subscribe(naming.subject(topic, 0), stream=naming.stream(topic, 0))
        return [dict(msg.headers or {}) for msg in await reader.fetch(6, timeout=5)]
    finally:
        await client.close()


def test_a_batch_published_twice_is_stored_once(nats_url: str) -> None:
    """Each message id is the message's Nats-Msg-Id: a send repeated within the duplicate
    window (a producer retrying after a failure) stores nothing twice."""
    broker = open_broker(nats_url)
    topic = f"d-{uuid.uuid4().hex[:8]}"
    ids = [f"id-{n}" for n in range(150)]

    def batch(start: int, stop: int) -> MessageBatch:
        return MessageBatch.build(messages(start, stop), message_ids=ids[start:stop])

    async def body() -> tuple[list, list, list, int, list[ConsumedBatch]]:
        await broker.create_topic(topic)
        producer = await broker.producer()
        first = await producer.send(topic, batch(0, 100))
        again = await producer.send(topic, batch(0, 100))
        overlapping = await producer.send(topic, batch(50, 150))
        (info,) = [t for t in await broker.list_topics() if t.name == topic]
        read = await drain(await broker.consumer("g", [topic]), max_messages=1000, timeout=0.5)
        return first, again, overlapping, info.messages, read

    first, again, overlapping, stored, read = run_on(broker, body())
    assert [(r.first_offset, r.count) for r in first] == [(0, 100)]
    assert [(r.first_offset, r.count) for r in again] == [(0, 100)], "acked as the first copies"
    # The first half are duplicates (acked with the sequences of their first copies), the
    # rest new: one run of offsets either way.
    assert [(r.first_offset, r.count) for r in overlapping] == [(50, 100)]
    assert stored == 150
    assert values(read) == messages(0, 150)
    assert MessageBatch.concat([b.messages for b in read]).message_ids.to_pylist() == ids


def test_namespaces_keep_deployments_apart(nats_url: str) -> None:
    other_url = nats_test_url()
    one, two = open_broker(nats_url), open_broker(other_url)

    async def body() -> tuple[list[str], list[str], list[bytes]]:
        await (await one.producer()).send("shared.name", numbered_messages(0, 3))
        await (await two.producer()).send("shared.name", numbered_messages(10, 2))
        read = await drain(await two.consumer("g", ["shared.name"]), timeout=0.5)
        topics = (
            [f"{t.name}:{t.messages}" for t in await one.list_topics()],
            [f"{t.name}:{t.messages}" for t in await two.list_topics()],
        )
        await two.close()
        return *topics, values(read)

    listed_one, listed_two, read_two = run_on(one, body())
    assert listed_one == ["shared.name:3"]
    assert listed_two == ["shared.name:2"]
    assert read_two == messages(10, 12)


# -- members that die, consumers the server forgot, a server that restarts --------------------

_DOOMED_MEMBER = """
import asyncio, json, sys
from omconnect.runtime.brokers import open_broker

async def main():
    broker = open_broker(sys.argv[1])
    consumer = await broker.consumer("workers", [sys.argv[2]])
    read = []
    async with asyncio.timeout(20):
        while sum(len(batch.messages) for batch in read) < 40:
            read += await consumer.poll(100, 0.5)
    ends = {}
    for batch in read:
        ends[batch.partition] = batch.next_offset
    half = {(sys.argv[2], p): end // 2 for p, end in ends.items()}
    await consumer.commit(half)
    print(json.dumps({str(p): o for (_, p), o in half.items()}), flush=True)
    await asyncio.sleep(3600)  # killed here, holding its partitions, half of them uncommitted

asyncio.run(main())
"""


def test_a_killed_members_uncommitted_messages_go_to_the_next_member(
    nats_url: str, tmp_path: Path
) -> None:
    broker = open_broker(nats_url)
    topic = f"k-{uuid.uuid4().hex[:8]}"

    async def publish() -> None:
        await broker.create_topic(topic, TopicSettings(partitions=2))
        producer = await broker.producer()
        for p in range(2):
            await producer.send(topic, numbered_messages(100 * p, 20), p)

    run_on(broker, publish())
    script = tmp_path / "member.py"
    script.write_text(_DOOMED_MEMBER)
    member = subprocess.Popen(
        [sys.executable, str(script), nats_url, topic], stdout=subprocess.PIPE, text=True
    )
    try:
        assert member.stdout is not None
        committed = json.loads(member.stdout.readline())
    finally:
        member.kill()  # SIGKILL, by its PID
        member.wait(timeout=10)
    assert committed == {"0": 10, "1": 10}
    broker = open_broker(nats_url)

    async def take_over() -> tuple[list[ConsumedBatch], float]:
        started = time.monotonic()
        consumer = await broker.consumer("workers", [topic])
        read = await read_until(consumer, lambda got: len(values(got)) >= 20, timeout=15)
        took = time.monotonic() - started
        read += await drain(consumer)
        return read, took

    read, took = run_on(broker, take_over())
    assert Counter(values(read)) == Counter(messages(10, 20) + messages(110, 120))
    assert took < 10, f"the dead member's partitions came after {took:.1f} s"


def test_a_reader_whose_consumer_the_server_forgot_reads_on(nats_url: str) -> None:
    """The server drops ephemeral consumers when it restarts or after long inactivity: the
    reader notices its requests go unanswered and makes its consumer again, at its position."""
    broker = open_broker(nats_url)
    topic = f"f-{uuid.uuid4().hex[:8]}"
    assert isinstance(broker, NatsBroker)
    stream = Naming(broker.options.namespace).stream(topic, 0)

    async def body() -> list[bytes]:
        await broker.create_topic(topic)
        producer = await broker.producer()
        await producer.send(topic, numbered_messages(0, 10))
        consumer = await broker.consumer("g", [topic])
        read = await read_until(consumer, lambda got: len(values(got)) >= 4, max_messages=4)
        client = await nats.connect(f"nats://{broker.options.display}")
        js = client.jetstream()
        for info in await js.consumers_info(stream):
            await js.delete_consumer(stream, info.name)
        await client.close()
        await producer.send(topic, numbered_messages(10, 5))
        read += await read_until(consumer, lambda got: len(values(read)) + len(values(got)) >= 15)
        read += await drain(consumer)
        return values(read)

    assert run_on(broker, body(), timeout=30) == messages(0, 15)


def test_a_server_restart_mid_publish_loses_no_acknowledged_message(tmp_path: Path) -> None:
    """SIGKILL the server while a producer publishes: sends in flight fail, the producer sends
    them again once the server is back (the same ids), and in the end every acknowledged
    message is there, once."""
    server = NatsServerProcess(tmp_path / "server")
    server.start()
    url = f"nats://{server.address}?ack_timeout=2&reconnect_wait=0.2"
    batches = [
        MessageBatch.build(messages(n, n + 100), message_ids=[f"id-{i}" for i in range(n, n + 100)])
        for n in range(0, 6000, 100)
    ]
    paused = threading.Event()
    restarted = threading.Event()

    def restart_server() -> None:
        # Paused first, so that the send made meanwhile is surely in flight when it dies.
        assert server.process is not None
        server.process.send_signal(signal.SIGSTOP)
        paused.set()
        time.sleep(0.5)
        server.kill()
        time.sleep(0.5)
        server.start()
        restarted.set()

    broker = open_broker(url)

    async def publish() -> tuple[list[int], int]:
        await broker.create_topic("restart.topic")
        producer = await broker.producer()
        acknowledged: list[int] = []
        failures = 0
        killer: threading.Thread | None = None
        for number, batch in enumerate(batches):
            if number == 15:
                killer = threading.Thread(target=restart_server)
                killer.start()
                while not paused.is_set():
                    await asyncio.sleep(0.01)
            while True:
                try:
                    await producer.send("restart.topic", batch)
                except BrokerError:
                    failures += 1
                    await asyncio.sleep(0.2)
                    continue
                acknowledged.append(number)
                break
        if killer is not None:
            killer.join()
        return acknowledged, failures

    try:
        acknowledged, failures = run_on(broker, publish(), timeout=90)
        assert restarted.is_set()
        reader = open_broker(url)

        async def read_back() -> list[bytes]:
            consumer = await reader.consumer("check", ["restart.topic"])
            return values(await drain(consumer, max_messages=5000, timeout=1.0))

        read = run_on(reader, read_back(), timeout=60)
    finally:
        server.stop()
    assert acknowledged == list(range(len(batches)))
    assert failures > 0, "the send in flight when the server died should have failed"
    counts = Counter(read)
    assert set(counts) == set(messages(0, 6000)), "an acknowledged message was lost"
    assert max(counts.values()) == 1, "a re-sent message was stored twice"


def _through(link: SlowLink, url: str) -> str:
    """``url`` pointed at ``link`` instead of the shared server."""
    return url.replace(_address(url), f"127.0.0.1:{link.port}")


def _address(url: str) -> str:
    return parse_options(parse_broker_url(url)).display


def _port(url: str) -> int:
    return int(_address(url).rpartition(":")[2])


def test_a_large_send_to_a_slow_server_waits_as_long_as_acknowledgements_come(
    nats_url: str,
) -> None:
    """``ack_timeout`` bounds the silence, not the send: through a link that needs many times
    ``ack_timeout`` to carry a send, acknowledgements keep coming, and the send succeeds with
    every message stored once, in order."""
    count, ack_timeout = 20_000, 0.5
    batch = numbered_messages(0, count)
    with SlowLink(_port(nats_url), rate=1_000_000) as link:
        broker = open_broker(f"{_through(link, nats_url)}&ack_timeout={ack_timeout}")

        async def send() -> tuple[list[SendResult], float]:
            producer = await broker.producer()
            started = time.monotonic()
            results = await producer.send("slow.topic", batch)
            return results, time.monotonic() - started

        results, took = run_on(broker, send(), timeout=120)
    assert took > 4 * ack_timeout, f"the send took {took:.1f} s: not slow enough to tell"
    assert [(r.partition, r.first_offset, r.count) for r in results] == [(0, 0, count)]
    reader = open_broker(nats_url)

    async def read_back() -> list[bytes]:
        consumer = await reader.consumer("check", ["slow.topic"])
        return values(await drain(consumer, max_messages=5000, timeout=1.0))

    assert run_on(reader, read_back(), timeout=60) == messages(0, count)


def test_a_producer_keeps_at_most_its_window_of_messages_unacknowledged(
    nats_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sends at once of many more messages than the window: at no time are more than the
    window's messages out unacknowledged (the server drops the acknowledgements of a producer
    that lets a million pile up), and every message is stored once."""
    window, sends, count = 200, 4, 1_500
    monkeypatch.setattr(nats_producer, "MAX_UNACKNOWLEDGED", window)
    most: list[int] = [0]
    published = AckInbox.published

    def counted(self: AckInbox, pending: PendingSend) -> None:
        published(self, pending)
        most[0] = max(most[0], self.outstanding)

    monkeypatch.setattr(AckInbox, "published", counted)
    broker = open_broker(nats_url)

    async def send() -> list[list[SendResult]]:
        producer = await broker.producer()
        batches = [numbered_messages(i * count, count) for i in range(sends)]
        return list(await asyncio.gather(*(producer.send("window.topic", b) for b in batches)))

    results = run_on(broker, send(), timeout=60)
    assert sum(r.count for found in results for r in found) == sends * count
    assert most[0] == window, most[0]

    reader = open_broker(nats_url)

    async def read_back() -> list[bytes]:
        consumer = await reader.consumer("check", ["window.topic"])
        return values(await drain(consumer, max_messages=5000, timeout=1.0))

    assert sorted(run_on(reader, read_back(), timeout=60)) == sorted(messages(0, sends * count))


def test_a_server_that_stalls_mid_send_fails_it_within_the_ack_timeout(nats_url: str) -> None:
    """Acknowledgements came, then none: the send fails about ``ack_timeout`` seconds after
    the last one, saying how many were not acknowledged and what the timeout means."""
    ack_timeout = 1.0
    with SlowLink(_port(nats_url), rate=1_000_000) as link:
        broker = open_broker(f"{_through(link, nats_url)}&ack_timeout={ack_timeout:g}")

        message, after = send_through_a_stall(broker, link, "stall.topic", 20_000)
    assert after < ack_timeout + 2, f"failed {after:.1f} s after the server stalled"
    assert re.fullmatch(
        r"NATS 127\.0\.0\.1:\d+: \d+ of 20000 messages to topic 'stall\.topic' were not "
        r"acknowledged: no acknowledgement for 1 s \(ack_timeout\); sent again, those with "
        r"message ids are not stored twice",
        message,
    ), message


def test_throughput_of_100k_small_messages(nats_url: str) -> None:
    """Publish 100,000 messages of 100 bytes in batches of 10,000 and read them back; the
    rates are printed (``-s``) and must stay above a floor well below what this machine does."""
    broker = open_broker(nats_url)
    total, size = 100_000, 10_000
    batches = [
        MessageBatch.build(
            [b"x" * 100] * size,
            keys=[f"k{i}".encode() for i in range(size)],
            message_ids=[f"{start}-{i}" for i in range(size)],
        )
        for start in range(0, total, size)
    ]

    async def body() -> tuple[float, float]:
        await broker.create_topic("throughput")
        producer = await broker.producer()
        consumer = await joined(broker, "g", ["throughput"])
        started = time.perf_counter()
        for batch in batches:
            await producer.send("throughput", batch)
        published = time.perf_counter() - started
        started = time.perf_counter()
        read = 0
        while read < total:
            read += sum(len(b.messages) for b in await consumer.poll(size, 1.0))
        return published, time.perf_counter() - started

    published, consumed = run_on(broker, body(), timeout=120)
    print(
        f"\nnats: published {total / published:,.0f} msg/s, consumed {total / consumed:,.0f} msg/s"
    )
    assert total / published > 3_000 and total / consumed > 3_000


def test_a_tailing_consumer_gets_a_steady_stream_within_a_fraction_of_a_second(
    nats_url: str,
) -> None:
    """5,000 messages a second, sent every 5 ms, read by polls of up to 50 ms: no message
    waits for long. A reader's waiting request ends at its expiry whether or not the server
    says so (its ``408`` does not always come after a request that brought messages); one
    that waited for the ``408`` held back what arrived for about a second, every second or so.
    """
    broker = open_broker(nats_url)
    seconds, per_tick = 4.0, 25

    async def body() -> list[float]:
        await broker.create_topic("steady")
        consumer = await joined(broker, "g", ["steady"])
        producer = await broker.producer()
        lags: list[float] = []
        done = asyncio.Event()

        async def tail() -> None:
            while not done.is_set() or len(lags) < sent[0]:
                for batch in await consumer.poll(10_000, 0.05):
                    now = time.monotonic()
                    lags.extend(now - float(v) for v in batch.messages.values.to_pylist())
                if done.is_set() and len(lags) >= sent[0]:
                    return

        sent = [0]
        reader = asyncio.ensure_future(tail())
        sends = []
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            stamp = str(time.monotonic()).encode()
            sends.append(
                asyncio.ensure_future(
                    producer.send("steady", MessageBatch.build([stamp] * per_tick))
                )
            )
            sent[0] += per_tick
            await asyncio.sleep(0.005)
        await asyncio.gather(*sends)
        done.set()
        async with asyncio.timeout(30):
            await reader
        return lags

    lags = run_on(broker, body(), timeout=60)
    assert len(lags) >= 1000
    assert max(lags) < 0.6, f"a message waited {max(lags):.3f} s"

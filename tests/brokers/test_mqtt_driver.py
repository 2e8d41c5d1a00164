"""What the mqtt:// driver does beyond the broker contract: its URL and names, how a message
travels as MQTT 5 properties, QoS 1 confirms, how members of a shared subscription split the
messages and what becomes of a member's unacknowledged messages when it leaves, dies or
loses its connection, and the errors of a server that is not there or says no.

Tests that need a server use the shared Mosquitto (``tests/support/mosquitto_server.py``;
they fail saying how to start it when it is not there) under a topic prefix of their own, or
start a private ``mosquitto`` they can stop or give an ACL.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from omconnect.clients import mqtt_connection
from omconnect.runtime.brokers import Broker, ConsumedBatch, Consumer, open_broker
from omconnect.runtime.brokers.base import BrokerError
from omconnect.runtime.brokers.mqtt import MqttBroker, MqttUrlError
from omconnect.runtime.brokers.mqtt._naming import check_group, check_topic
from omconnect.runtime.brokers.mqtt._options import parse_options
from omconnect.runtime.brokers.url import parse_broker_url
from omconnect.schemas.message_batch import MessageBatch
from tests.support.driver_checks import (
    NOWHERE,
    as_the_runtime_sends,
    check_round_trip,
    messages_with_every_field,
    open_without,
    refused_urls,
    unreachable_error,
    unreachable_errors,
)
from tests.support.mosquitto_server import MosquittoProcess, free_port, mqtt_test_url

from .conftest import drain, joined, messages, numbered, numbered_messages, read_until, run_on
from .conftest import values as values_of
from .slow_link import SlowLink, send_through_a_stall


@pytest.fixture
def mqtt_url() -> str:
    """A URL of the shared server under a topic prefix of this test's."""
    return mqtt_test_url()


# -- without a server -----------------------------------------------------------------------


def test_url_options_are_parsed_and_checked() -> None:
    options = parse_options(
        parse_broker_url(
            "oms:mqtt://alice:s3cr%40t@hub.local:8883?prefix=plant/line1&session_expiry=600"
            "&keepalive=10&connect_timeout=2&client_id=line1-worker&receive_maximum=500&tls=true"
        )
    )
    assert (options.host, options.port, options.username, options.password) == (
        "hub.local",
        8883,
        "alice",
        "s3cr@t",
    )
    assert (options.prefix, options.client_id, options.session_expiry) == (
        "plant/line1",
        "line1-worker",
        600.0,
    )
    assert (options.keepalive, options.connect_timeout, options.receive_maximum) == (10, 2, 500)
    assert options.tls and options.display == "hub.local:8883"
    defaults = parse_options(parse_broker_url("mqtt://h"))
    assert (defaults.port, defaults.prefix, defaults.client_id) == (1883, "omconnect", "omconnect")
    assert (defaults.session_expiry, defaults.receive_maximum) == (3600.0, 65535)
    refused_urls(
        [
            ("mqtt://u:s3cret@h?color=red", "unknown mqtt:// option 'color'"),
            ("mqtt://h?prefix=a/%2B/b", "option prefix must be topic levels"),
            ("mqtt://h?prefix=$SYS", "option prefix must be topic levels"),
            ("mqtt://h?prefix=a//b", "option prefix must be topic levels"),
            ("mqtt://h?session_expiry=-1", "session_expiry must be a positive number"),
            ("mqtt://h?receive_maximum=70000", "receive_maximum must be 1 to 65535"),
            ("mqtt://h:99999", "port of an mqtt:// URL must be 1 to 65535"),
            ("mqtt://u:s3cret@h/path", "take no path"),
            ("mqtt://u:s3cret@:1883", "needs a server"),
        ],
        MqttUrlError,
    )
    broker = open_broker("mqtt://bob:s3cret@h:1883?prefix=x")
    assert isinstance(broker, MqttBroker)
    assert broker.url == "mqtt://***@h:1883?prefix=x"


def test_names_mqtt_cannot_carry_are_refused() -> None:
    assert check_topic("orders.eu-1") == "orders.eu-1"
    for topic in ["", "a/b", "a+", "#", "tab\there", "nul\x00"]:
        with pytest.raises(ValueError, match="topic name"):
            check_topic(topic)
    for group in ["", "a/b", "g+", "g#", "g\x01"]:
        with pytest.raises(ValueError, match="consumer group"):
            check_group(group)


def test_the_core_imports_without_paho_and_the_driver_says_what_is_missing() -> None:
    said = open_without("paho", "mqtt://localhost:1883", "ValueError")
    assert "install the omconnect[mqtt] extra" in said


# -- errors a person can act on ---------------------------------------------------------------


def test_an_unreachable_server_fails_within_seconds_saying_what_to_check() -> None:
    port = free_port()  # nothing listens there
    url = f"mqtt://alice:s3cret@127.0.0.1:{port}"
    for operation, message in unreachable_errors(url, "list_topics", "send", "consumer").items():
        assert f"cannot connect to the MQTT broker at 127.0.0.1:{port}" in message, operation
        assert "connection refused" in message
        assert "mosquitto" in message


def test_a_server_that_does_not_answer_fails_within_the_connect_timeout() -> None:
    broker = open_broker(f"mqtt://{NOWHERE}:1883?connect_timeout=1")
    message = unreachable_error(broker, broker.list_topics, within=4)
    assert f"cannot connect to the MQTT broker at {NOWHERE}" in message


def test_what_the_servers_acl_refuses_is_a_one_line_error(tmp_path: Path) -> None:
    server = MosquittoProcess(tmp_path, acl="topic read ro/#\ntopic readwrite rw/#\n")
    server.start()
    try:
        read_only = open_broker(f"mqtt://{server.address}?prefix=ro")
        with pytest.raises(BrokerError) as refused:
            run_on(read_only, _send_one(read_only))
        message = str(refused.value)
        assert "refused a message to 't': Not authorized (0x87)" in message
        assert "\n" not in message
        with pytest.raises(BrokerError, match=r"ACL must let this client read and write ro/#"):
            run_on(read_only, read_only.consumer("g", ["t"]))
        writable = open_broker(f"mqtt://{server.address}?prefix=rw")
        run_on(writable, _send_one(writable))
    finally:
        server.stop()


async def _send_one(broker: Broker) -> object:
    return await (await broker.producer()).send("t", numbered_messages(0, 1))


# -- how messages travel ----------------------------------------------------------------------


def test_a_send_returns_once_every_message_is_acknowledged(
    mqtt_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """QoS 1 with the PUBACKs awaited: when a send returns, the server has every message and
    has queued it for the group, in order, whatever sends run at the same time (and however
    often the connection hands paho the next messages: here every 25 acknowledgements)."""
    monkeypatch.setattr(mqtt_connection, "PAHO_BUDGET", 50)
    broker = open_broker(mqtt_url)

    async def body() -> list[bytes]:
        consumer = await broker.consumer("g", ["t"])
        producer = await broker.producer()
        results = await producer.send("t", numbered_messages(0, 3000))
        assert [(r.topic, r.partition, r.count) for r in results] == [("t", 0, 3000)]
        sends = [producer.send("t", numbered_messages(3000 + 100 * i, 100)) for i in range(10)]
        await asyncio.gather(*sends)
        got = await read_until(consumer, lambda got: len(values_of(got)) >= 4000, timeout=20)
        await consumer.ack([b.ack_token for b in got])
        return values_of(got)

    read = run_on(broker, body())
    assert read == messages(0, 4000), "every message once, in send order"


def test_sends_encoding_a_large_batch_leave_the_event_loop_to_the_connect(
    mqtt_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Many large sends at once (the runtime keeps up to 128 MiB of batches in flight): each
    batch's per-message properties are made off the event loop, so the first send's connect
    hears its CONNACK within ``connect_timeout`` however long the others take to encode. Here
    each batch takes 1.5 s to encode, the connect timeout is 1 s; at 1M records, sends of
    50,000 messages failed so."""
    from omconnect.runtime.brokers.mqtt import producer as mqtt_producer
    from omconnect.runtime.brokers.mqtt._publish_properties import PackedProperties

    def slow_encode(messages: MessageBatch) -> list[tuple[bytes, PackedProperties]]:
        time.sleep(1.5)
        return encode_rows(messages)

    encode_rows = mqtt_producer.encode_rows
    monkeypatch.setattr(mqtt_producer, "encode_rows", slow_encode)
    broker = open_broker(f"{mqtt_url}&connect_timeout=1")
    ticks: list[float] = []

    async def ticker() -> None:
        while True:
            ticks.append(time.monotonic())
            await asyncio.sleep(0.01)

    async def body() -> list[bytes]:
        consumer = await broker.consumer("g", ["t"])
        producer = await broker.producer()
        watch = asyncio.ensure_future(ticker())
        size = mqtt_producer.INLINE_ENCODE_MESSAGES + 1  # the smallest batch sent to a thread
        sends = [producer.send("t", numbered_messages(size * i, size)) for i in range(3)]
        await asyncio.gather(*sends)
        watch.cancel()
        got = await read_until(consumer, lambda got: len(values_of(got)) >= 3 * size, timeout=30)
        await consumer.ack([b.ack_token for b in got])
        return values_of(got)

    total = 3 * (mqtt_producer.INLINE_ENCODE_MESSAGES + 1)
    assert run_on(broker, body()) == messages(0, total), "every message once, in send order"
    # Encoding on the event loop would hold it 1.5 s per batch, past the connect timeout;
    # the bound is that timeout, not a fraction of it: a busy machine (CI runs three workers
    # and the databases on two cores) can leave the process unscheduled for half a second.
    gaps = [later - earlier for earlier, later in itertools.pairwise(ticks)]
    assert max(gaps) < 1.0, f"the event loop was held for {max(gaps):.2f} s"


def _through(link: SlowLink, url: str) -> str:
    """``url`` pointed at ``link`` instead of the shared server."""
    address = parse_options(parse_broker_url(url)).display
    return url.replace(address, f"127.0.0.1:{link.port}")


def _port(url: str) -> int:
    return int(parse_options(parse_broker_url(url)).display.rpartition(":")[2])


def test_a_large_send_to_a_slow_server_waits_as_long_as_acknowledgements_come(
    mqtt_url: str,
) -> None:
    """``ack_timeout`` bounds the silence, not the send: through a link that needs many times
    ``ack_timeout`` to carry a send, PUBACKs keep coming, and the send succeeds with every
    message queued for the group, in order."""
    count, ack_timeout = 8000, 1.5
    with SlowLink(_port(mqtt_url), rate=100_000) as link:
        broker = open_broker(f"{_through(link, mqtt_url)}&ack_timeout={ack_timeout:g}")

        async def body() -> tuple[float, list[bytes]]:
            consumer = await broker.consumer("g", ["t"])
            producer = await broker.producer()
            started = time.monotonic()
            await producer.send("t", numbered_messages(0, count))
            took = time.monotonic() - started
            link.rate = 100_000_000
            got = await read_until(consumer, lambda got: len(values_of(got)) >= count, timeout=60)
            await consumer.ack([b.ack_token for b in got])
            return took, values_of(got)

        took, read = run_on(broker, body(), timeout=120)
    assert took > 3 * ack_timeout, f"the send took {took:.1f} s: not slow enough to tell"
    assert read == messages(0, count)


def test_a_server_that_stalls_mid_send_fails_it_within_the_ack_timeout(mqtt_url: str) -> None:
    """PUBACKs came, then none: the send fails about ``ack_timeout`` seconds after the last
    one, saying what the timeout means."""
    ack_timeout = 1.0
    with SlowLink(_port(mqtt_url), rate=100_000) as link:
        broker = open_broker(f"{_through(link, mqtt_url)}&ack_timeout={ack_timeout:g}")

        message, after = send_through_a_stall(broker, link, "t", 5000)
    assert after < ack_timeout + 2, f"failed {after:.1f} s after the server stalled"
    assert re.fullmatch(
        r"the MQTT broker at 127\.0\.0\.1:\d+ did not acknowledge the messages to topic 't': "
        r"no acknowledgement for 1 s \(ack_timeout\); they may or may not have been stored",
        message,
    ), message


def test_every_openmessaging_field_round_trips_through_user_properties(mqtt_url: str) -> None:
    broker = open_broker(mqtt_url)
    topic = "fields"
    sent = messages_with_every_field(topic, _PROPERTIES)
    raw = _RawClient(mqtt_url)

    async def body() -> list[ConsumedBatch]:
        raw.subscribe(f"{_prefix(mqtt_url)}/{topic}")
        consumer = await broker.consumer("g", [topic])
        await (await broker.producer()).send(topic, as_the_runtime_sends(sent))
        return await read_until(consumer, lambda got: len(values_of(got)) >= 6)

    try:
        batches = run_on(broker, body())
        seen = raw.wait_for(6)
    finally:
        raw.close()
    check_round_trip(sent, batches, topic, partition=None)
    # Other MQTT clients see the fields as plain user properties.
    first = dict(getattr(seen[0].properties, "UserProperty", []))
    assert first["om:id"] == "msg-0"
    assert first["om:time"] == "1700000000000"
    assert first["om:key64"] and "om:key" not in first, "a binary key goes base64"
    assert first["oms.born_host"] == "host-1.example"
    assert first["oms.trace_id"] == sent[0].extension_header.trace_id
    assert "tab" not in first, "Mosquitto refuses a tab in a string: it travels base64"
    assert first["om:entry64"]
    assert dict(getattr(seen[1].properties, "UserProperty", []))["om:key"] == "key-1"
    assert first["om:value"] == "null", "message 0 has no body: a tombstone"


_PROPERTIES = {
    "schema-id": b"42",
    "user": b"plain text",
    "binary": b"\x00\x01\xfe",
    "tab": b"a\tb",  # Mosquitto refuses control characters in strings: base64
    "om:time": b"a property named like the driver's own",
    "empty": b"",
}


def test_messages_of_other_mqtt_clients_read_back_with_their_properties_as_headers(
    mqtt_url: str,
) -> None:
    """A device publishing to the topic with a content type and user properties of its own:
    the payload is the value, the content type the first header, its user properties the
    other headers in order (repeats kept), the time of arrival the timestamp."""
    broker = open_broker(mqtt_url)
    raw = _RawClient(mqtt_url)
    before = int(time.time() * 1000)

    async def body() -> list[ConsumedBatch]:
        consumer = await broker.consumer("g", ["device"])
        properties = Properties(PacketTypes.PUBLISH)
        properties.ContentType = "application/json"
        properties.UserProperty = [("site", "north"), ("site", "south"), ("unit", "°C")]
        raw.publish(f"{_prefix(mqtt_url)}/device", b'{"t": 21.5}', properties)
        raw.publish(f"{_prefix(mqtt_url)}/device", b"", None)
        return await read_until(consumer, lambda got: len(values_of(got)) >= 2)

    try:
        batches = run_on(broker, body())
    finally:
        raw.close()
    received = MessageBatch.concat([b.messages for b in batches])
    assert received.values.to_pylist() == [b'{"t": 21.5}', b""]
    assert received.keys.to_pylist() == [None, None]
    assert received.headers.to_pylist() == [
        [
            ("content-type", b"application/json"),
            ("site", b"north"),
            ("site", b"south"),
            ("unit", "°C".encode()),
        ],
        None,
    ]
    assert all(before <= t <= before + 30_000 for t in received.timestamps.to_pylist())


def test_a_first_content_type_header_is_the_mqtt_content_type(mqtt_url: str) -> None:
    broker = open_broker(mqtt_url)
    raw = _RawClient(mqtt_url)
    headers = [{"content-type": b"application/avro", "x": b"1"}, {"x": b"1", "content-type": b"a"}]

    async def body() -> list[ConsumedBatch]:
        raw.subscribe(f"{_prefix(mqtt_url)}/typed")
        consumer = await broker.consumer("g", ["typed"])
        await (await broker.producer()).send(
            "typed", MessageBatch.build([b"a", b"b"], headers=headers)
        )
        return await read_until(consumer, lambda got: len(values_of(got)) >= 2)

    try:
        batches = run_on(broker, body())
        seen = raw.wait_for(2)
    finally:
        raw.close()
    assert getattr(seen[0].properties, "ContentType", None) == "application/avro"
    assert getattr(seen[1].properties, "ContentType", None) is None, "only a first one"
    received = MessageBatch.concat([b.messages for b in batches])
    assert received.headers.to_pylist() == [list(h.items()) for h in headers]


# -- groups: shared subscriptions and sessions ------------------------------------------------


def test_two_members_of_a_group_split_the_messages(mqtt_url: str) -> None:
    broker = open_broker(mqtt_url)

    async def body() -> tuple[list[bytes], list[bytes], list[bytes]]:
        first = await joined(broker, "g", ["t"])
        second = await joined(broker, "g", ["t"])
        other_group = await joined(broker, "h", ["t"])
        await (await broker.producer()).send("t", numbered_messages(0, 100))
        read: dict[Consumer, list[bytes]] = {first: [], second: []}
        deadline = time.monotonic() + 15
        while sum(map(len, read.values())) < 100:
            assert time.monotonic() < deadline, f"read {sum(map(len, read.values()))}"
            for member, got in read.items():
                batches = await member.poll(100, 0.05)
                got += values_of(batches)
                await member.ack([b.ack_token for b in batches])
        everything = values_of(
            await read_until(other_group, lambda got: len(values_of(got)) >= 100)
        )
        return read[first], read[second], everything

    first, second, everything = run_on(broker, body())
    assert first and second, "each member gets a share"
    assert Counter(first + second) == Counter(messages(0, 100)), "each message once"
    assert numbered(first) == sorted(numbered(first)), "in order within a member"
    assert everything == messages(0, 100), "another group gets everything"


def test_a_closing_member_hands_what_it_did_not_ack_to_the_live_one(mqtt_url: str) -> None:
    """Mosquitto would keep a gone member's unacknowledged messages in its session; the
    driver publishes them to the group again before it leaves, so the live member gets them
    at once."""
    broker = open_broker(mqtt_url)

    async def body() -> tuple[list[bytes], list[bytes]]:
        leaving = await joined(broker, "g", ["t"])
        staying = await joined(broker, "g", ["t"])
        await (await broker.producer()).send("t", numbered_messages(0, 40))
        unacked = values_of(await read_until(leaving, lambda got: len(values_of(got)) >= 10))
        await leaving.close()
        got = await read_until(staying, lambda got: len(values_of(got)) >= 40 - len(unacked) + 10)
        got += await drain(staying)
        return unacked, values_of(got)

    unacked, staying = run_on(broker, body())
    assert set(unacked) <= set(staying), "what the leaving member held went to the other"
    assert Counter(staying) == Counter(messages(0, 40)), "everything, once"


def test_the_last_member_parks_the_groups_queue_for_the_next(mqtt_url: str) -> None:
    broker = open_broker(mqtt_url)

    async def body() -> list[bytes]:
        consumer = await joined(broker, "g", ["t"])
        await consumer.close()  # the group's last member: its session stays, subscribed
        await (await broker.producer()).send("t", numbered_messages(0, 10))
        later = await broker.consumer("g", ["t"])  # takes the parked session
        return values_of(await read_until(later, lambda got: len(values_of(got)) >= 10))

    assert run_on(broker, body()) == messages(0, 10)


def test_a_killed_members_messages_wait_in_its_session_for_the_next_member(
    mqtt_url: str,
) -> None:
    """Mosquitto keeps a dead member's unacknowledged messages in its session, and keeps
    giving it its share of new ones; the next member to join takes that session over (its
    claim was parked by the will) and gets all of them."""
    victim = (
        "import asyncio, json\n"
        "from omconnect.runtime.brokers import open_broker\n"
        "async def main():\n"
        f"    broker = open_broker({mqtt_url!r})\n"
        "    consumer = await broker.consumer('g', ['t'])\n"
        "    print('joined', flush=True)\n"
        "    got = []\n"
        "    while not got or batches:\n"
        "        batches = await consumer.poll(100, 0.3)\n"
        "        got += [v.decode() for b in batches for v in b.messages.values.to_pylist()]\n"
        "    print(json.dumps(got), flush=True)\n"
        "    await asyncio.sleep(120)\n"
        "asyncio.run(main())\n"
    )
    broker = open_broker(mqtt_url)

    async def body() -> tuple[list[bytes], list[bytes], list[bytes]]:
        loop = asyncio.get_running_loop()
        process = subprocess.Popen(
            [sys.executable, "-c", victim], stdout=subprocess.PIPE, text=True
        )
        try:
            assert process.stdout is not None
            assert await loop.run_in_executor(None, process.stdout.readline) == "joined\n"
            survivor = await joined(broker, "g", ["t"])
            producer = await broker.producer()
            await producer.send("t", numbered_messages(0, 20))
            line = await loop.run_in_executor(None, process.stdout.readline)
            held = [v.encode() for v in json.loads(line)]
        finally:
            process.kill()
            process.wait(10)
        read = values_of(await drain(survivor))
        await producer.send("t", numbered_messages(20, 20))  # the dead member gets its share
        read += values_of(await drain(survivor))
        newcomer = await broker.consumer("g", ["t"])
        taken_over = values_of(await drain(newcomer, timeout=0.5))
        return held, read, taken_over

    held, survivor, newcomer = run_on(broker, body())
    assert held, "the killed member had messages it never acknowledged"
    assert set(held) <= set(newcomer), "they waited in its session for the next member"
    assert Counter(survivor + newcomer) == Counter(messages(0, 40)), "nothing lost or doubled"
    assert any(n >= 20 for n in numbered(newcomer)), "new messages went to the dead session too"


def test_a_member_whose_session_was_taken_over_moves_to_another_slot(mqtt_url: str) -> None:
    """Two members that picked the same slot at once: the second connection takes the
    session over and claims the slot; the first, disconnected, sees that claim and joins
    again in another slot instead of taking the session back."""
    broker = open_broker(mqtt_url)
    options = parse_options(parse_broker_url(mqtt_url))

    async def body() -> list[bytes]:
        consumer = await joined(broker, "g", ["t"])
        intruder = paho.Client(
            paho.CallbackAPIVersion.VERSION2,
            client_id=f"{options.prefix}/g/0",
            protocol=paho.MQTTv5,
        )
        intruder.connect(options.host, options.port)
        intruder.loop_start()
        try:
            claim = json.dumps({"state": "live", "member": "intruder"})
            topic = f"{options.prefix}/.groups/g/members/0"
            intruder.publish(topic, claim, qos=1, retain=True).wait_for_publish(5)
            await consumer.poll(10, 0.3)  # notices the lost connection, joins again
            await (await broker.producer()).send("t", numbered_messages(0, 5))
            got = values_of(await read_until(consumer, lambda got: len(values_of(got)) >= 5))
            assert intruder.is_connected(), "the consumer did not take slot 0 back"
            return got
        finally:
            intruder.disconnect()
            intruder.loop_stop()

    assert run_on(broker, body()) == messages(0, 5)


def test_a_consumer_takes_its_session_back_after_the_server_restarts(tmp_path: Path) -> None:
    """A send while the server is down fails in one line; the consumer's next poll after the
    restart connects again with its session, and the server sends what it had not
    acknowledged again."""
    server = MosquittoProcess(tmp_path)
    server.start()
    broker = open_broker(f"mqtt://{server.address}?connect_timeout=1")

    async def body() -> tuple[list[bytes], str, list[bytes]]:
        consumer = await broker.consumer("g", ["t"])
        producer = await broker.producer()
        await producer.send("t", numbered_messages(0, 5))
        before = values_of(await read_until(consumer, lambda got: len(values_of(got)) >= 5))
        await asyncio.to_thread(server.stop)  # saves the sessions
        with pytest.raises(BrokerError) as down:
            await producer.send("t", numbered_messages(5, 1))
        await asyncio.to_thread(server.start)
        again = await read_until(consumer, lambda got: len(values_of(got)) >= 5)
        await consumer.ack([b.ack_token for b in again])
        return before, str(down.value), values_of(again)

    try:
        before, down, again = run_on(broker, body())
    finally:
        server.stop()
    assert before == again == messages(0, 5)
    assert "MQTT broker at 127.0.0.1" in down and "\n" not in down


# -- a client that looks at the server as any MQTT client would -------------------------------


def _prefix(url: str) -> str:
    return parse_options(parse_broker_url(url)).prefix


class _RawClient:
    """A plain paho client of the server of ``url``: what other MQTT clients see and send."""

    def __init__(self, url: str) -> None:
        options = parse_options(parse_broker_url(url))
        self.received: list[paho.MQTTMessage] = []
        self._arrived = threading.Condition()
        self._client = paho.Client(
            paho.CallbackAPIVersion.VERSION2,
            client_id=f"raw-{uuid.uuid4().hex[:8]}",
            protocol=paho.MQTTv5,
        )
        self._client.on_message = self._on_message
        self._client.connect(options.host, options.port)
        self._client.loop_start()

    def _on_message(self, client: paho.Client, userdata: object, message: paho.MQTTMessage) -> None:
        with self._arrived:
            self.received.append(message)
            self._arrived.notify_all()

    def subscribe(self, topic: str) -> None:
        done = threading.Event()
        self._client.on_subscribe = lambda *args: done.set()
        self._client.subscribe(topic, qos=1)
        assert done.wait(5), "no SUBACK"

    def publish(self, topic: str, payload: bytes, properties: Properties | None) -> None:
        self._client.publish(topic, payload, qos=1, properties=properties).wait_for_publish(5)

    def wait_for(self, count: int) -> list[paho.MQTTMessage]:
        with self._arrived:
            assert self._arrived.wait_for(lambda: len(self.received) >= count, 10)
            return list(self.received)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


@pytest.fixture(autouse=True)
def _no_thread_leaks() -> Iterator[None]:
    """Every connection's network thread ends with its broker."""
    before = {t.ident for t in threading.enumerate()}
    yield
    deadline = time.monotonic() + 5
    while True:
        left = [
            t.name
            for t in threading.enumerate()
            if t.ident not in before and t.name.startswith("paho-mqtt-client")
        ]
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert not left, f"network threads left running: {left}"

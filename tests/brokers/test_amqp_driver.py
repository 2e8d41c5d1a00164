"""What the amqp:// driver does beyond the broker contract: its URL and names, the binding keys
of patterns, how headers, keys and ids travel as AMQP properties and headers, publisher
confirms, prefetch, redelivery to another member, and the errors of a server that is not
there or refuses.

Tests that need a server use the shared RabbitMQ (``tests/support/rabbitmq_server.py``; they
fail saying how to start it when it is not there) under a name prefix of their own.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import aio_pika
import pytest

from omconnect.runtime.brokers import open_broker
from omconnect.runtime.brokers.amqp import AmqpBroker, AmqpUrlError
from omconnect.runtime.brokers.amqp._delivery_tags import DeliveryTags
from omconnect.runtime.brokers.amqp._naming import Names
from omconnect.runtime.brokers.amqp._pattern_binding import binding_key
from omconnect.runtime.brokers.base import BrokerError
from omconnect.schemas.message_batch import MessageBatch
from tests.support.driver_checks import (
    open_without,
    refused_urls,
    unreachable_error,
    unreachable_errors,
)
from tests.support.local_servers import free_port
from tests.support.rabbitmq_server import amqp_test_url, raw_channel, url_options
from tests.support.tcp_proxy import TcpProxy

from .conftest import drain, joined, messages, numbered_messages, read_until, run_on, values
from .slow_link import SlowLink, send_through_a_stall


@pytest.fixture
def amqp_url() -> str:
    """A URL of the shared server under a name prefix of this test's (deleted after it)."""
    return amqp_test_url()


# -- without a server -----------------------------------------------------------------------


def test_url_options_are_parsed_and_checked() -> None:
    options = url_options(
        "oms:amqp://alice:s3cr%40t@rabbit.local:5673/staging%2Fa?prefix=prod&prefetch=200"
        "&queue_type=classic&confirm_timeout=4"
    )
    assert (options.host, options.port, options.vhost) == ("rabbit.local", 5673, "staging/a")
    assert (options.username, options.password) == ("alice", "s3cr@t")
    assert (options.prefix, options.prefetch, options.queue_type) == ("prod", 200, "classic")
    assert (options.confirm_timeout, options.connect_timeout) == (4.0, 3.0)
    assert options.display == "rabbit.local:5673"
    default = url_options("amqp://h")
    assert (default.username, default.password, default.vhost, default.port) == (
        "guest",
        "guest",
        "/",
        5672,
    )
    assert (default.queue_type, default.prefix) == (None, "")
    assert url_options("amqp://h/%2F").vhost == "/"
    assert url_options("amqp://[::1]:5700").display == "[::1]:5700"
    assert issubclass(AmqpUrlError, BrokerError)
    refused_urls(
        [
            ("amqp://alice:s3cret@h1:5672?bogus=1", "unknown amqp:// option 'bogus'"),
            ("amqp://h?prefetch=0", "prefetch must be 1 to 65535"),
            ("amqp://h?prefetch=70000", "prefetch must be 1 to 65535"),
            ("amqp://h?queue_type=stream", "queue_type must be 'quorum' or 'classic'"),
            ("amqp://h?prefix=a.b", "prefix must be 1 to 64 letters"),
            ("amqp://h?connect_timeout=-1", "connect_timeout must be a positive number"),
            ("amqp://h?ssl=maybe", "ssl must be true or false"),
            ("amqp://h:99999", "port of an amqp:// URL must be 1 to 65535"),
            ("amqp://", "needs a server"),
        ],
        AmqpUrlError,
    )
    opened = open_broker("amqp://alice:s3cret@h1:5672/vh?prefix=x")
    assert isinstance(opened, AmqpBroker)
    assert opened.url == "amqp://***@h1:5672/vh?prefix=x", "the URL shown never has the password"


def test_the_core_imports_without_aio_pika_and_the_driver_says_what_is_missing() -> None:
    said = open_without("aio_pika", "amqp://localhost:5672", "ValueError")
    assert "install the omconnect[rabbitmq] extra" in said


def test_names_of_topics_groups_and_the_drivers_own() -> None:
    plain, prefixed = Names(), Names("p")
    assert (plain.exchange("orders.eu"), plain.queue("omconnect.sync")) == (
        "orders.eu",
        "omconnect.sync",
    )
    assert (prefixed.exchange("orders.eu"), prefixed.queue("g")) == ("p.orders.eu", "p.g")
    assert prefixed.topic_of("p.orders.eu") == "orders.eu"
    assert (plain.all_topics, prefixed.catalog) == ("omconnect:topics", "p:catalog")
    for bad, problem in [
        ("", "cannot be empty"),
        ("amq.direct", "RabbitMQ reserves"),
        ("grüße", "cannot be an AMQP name"),
        ("x" * 256, "too long"),
        ("omconnect:topics", "the amqp:// driver keeps"),
    ]:
        with pytest.raises(ValueError, match=problem):
            plain.exchange(bad)
    with pytest.raises(ValueError, match="the amqp:// driver keeps"):
        plain.queue("omconnect:catalog")


def _routes(key: list[str], topic: list[str]) -> bool:
    """Whether a topic exchange routes a message with routing key ``topic`` to a binding
    ``key`` (both as words): ``*`` is one word, ``#`` any number."""
    if not key:
        return not topic
    head, rest = key[0], key[1:]
    if head == "#":
        return any(_routes(rest, topic[at:]) for at in range(len(topic) + 1))
    return bool(topic) and head in ("*", topic[0]) and _routes(rest, topic[1:])


def test_pattern_subscriptions_bind_the_narrowest_key_that_covers_them() -> None:
    expected = {
        r"(?!orders\.dlq$)orders\..+": "orders.#",  # the runtime's <topic>.<stream> pattern
        r"(?!x\.dlq$)(?:sales\..*)": "sales.#",  # the runtime's wrapping of topic_pattern
        r"t\-abc\.[a-z]+": "t-abc.#",
        r"orders": "orders",
        r"orders\.eu": "orders.eu",
        r"sales\.(?:eu|us)\.x": "sales.#",
        r"a\.b{2}\.c": "a.#",
        r"a.b": "#",
        r"(?:sales|ops)\..*": "#",
        r"(?i)orders\..*": "#",
        r"x|y": "#",
        r"ab*c\.d": "#",
        r"(a\.)+b": "#",
        r"(?:a\.b)?c": "#",
        r"[ab]\.c": "#",
        r"\d+\.x": "#",
    }
    assert {pattern: binding_key(pattern) for pattern in expected} == expected
    words = ["orders", "dlq", "sales", "eu", "us", "x", "t-abc", "a", "b", "bb", "c", "ab", "1"]
    topics = [
        ".".join(parts)
        for size in (1, 2, 3)
        for parts in itertools.product([*words, "ORDERS", ""], repeat=size)
    ]
    for pattern, key in expected.items():
        for topic in topics:
            if re.fullmatch(pattern, topic):
                assert _routes(key.split("."), topic.split(".")), (pattern, key, topic)
    with pytest.raises(ValueError, match="is not a regular expression"):
        binding_key("orders(")


def test_acknowledgements_take_the_fewest_frames_and_never_repeat_a_tag() -> None:
    tags = DeliveryTags()
    for tag in range(1, 11):
        tags.add(tag)
    assert tags.acknowledge([1, 2, 3]) == (3, [])  # the oldest run: one multiple ack
    assert tags.acknowledge([6, 5]) == (None, [5, 6])  # 4 is still held: one by one
    assert len(tags) == 5
    assert tags.acknowledge([4, 7]) == (7, [])  # covers 4 and 7; 5 and 6 are acked already
    assert tags.acknowledge([10]) == (None, [10])
    assert tags.acknowledge([8, 9]) == (9, [])
    assert len(tags) == 0


# -- errors a person can act on ---------------------------------------------------------------


def test_an_unreachable_server_fails_within_seconds_saying_what_to_check() -> None:
    port = free_port()  # nothing listens there
    url = f"amqp://alice:s3cret@127.0.0.1:{port}/"
    for operation, message in unreachable_errors(url, "list_topics", "send", "consumer").items():
        assert f"cannot connect to the RabbitMQ server at 127.0.0.1:{port} within 3 s" in message
        assert "connection refused" in message, operation
        assert "check that RabbitMQ is running there" in message


def test_a_server_that_never_answers_fails_within_the_connect_timeout() -> None:
    with socket.socket() as silent:  # accepts connections (the kernel does), says nothing
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        broker = open_broker(f"amqp://alice:s3cret@127.0.0.1:{port}/?connect_timeout=1")
        message = unreachable_error(broker, broker.list_topics)
    assert f"RabbitMQ server at 127.0.0.1:{port} within 1 s (timed out)" in message


def test_wrong_credentials_and_a_missing_vhost_are_one_line_errors(amqp_url: str) -> None:
    address = url_options(amqp_url).display
    refused = open_broker(f"amqp://omct-nobody:s3cret@{address}/")
    message = unreachable_error(refused, refused.list_topics)
    assert message == (
        f"RabbitMQ at {address} refused the login of user 'omct-nobody': check the user name "
        "and password of the broker URL"
    )
    vhost = f"omct-{uuid.uuid4().hex[:8]}"
    missing = open_broker(f"amqp://guest:guest@{address}/{vhost}")
    message = unreachable_error(missing, missing.list_topics, secret="guest:guest")
    assert f"RabbitMQ at {address} refused to open vhost '{vhost}'" in message


def test_a_group_queue_of_another_type_is_a_clear_error(amqp_url: str) -> None:
    quorum = open_broker(amqp_url)
    run_on(quorum, quorum.consumer("g", ["t"]))  # the default: a quorum queue
    classic = open_broker(f"{amqp_url}&queue_type=classic")
    with pytest.raises(BrokerError) as caught:
        run_on(classic, classic.consumer("g", ["t"]))
    message = str(caught.value)
    assert "declaring the queue of consumer group 'g' failed" in message
    assert "inequivalent arg 'x-queue-type'" in message
    assert "?queue_type" in message and "\n" not in message


# -- confirms, prefetch, acknowledgements -----------------------------------------------------


def test_send_returns_once_confirmed_and_fails_on_a_negative_confirm(amqp_url: str) -> None:
    """A queue bound to the topic that takes two messages and rejects more: the send that
    overflows it gets negative confirms and fails; what was confirmed is in the queue."""
    broker = open_broker(amqp_url)
    exchange = url_options(amqp_url).prefix + ".t"

    async def body() -> tuple[int, int]:
        producer = await broker.producer()
        await broker.create_topic("t")
        async with raw_channel(amqp_url) as raw:
            bounded = await raw.declare_queue(
                f"{exchange}.bounded",
                exclusive=True,
                arguments={"x-max-length": 2, "x-overflow": "reject-publish"},
            )
            await bounded.bind(exchange)
            results = await producer.send("t", numbered_messages(0, 2))
            assert [(r.topic, r.partition, r.count) for r in results] == [("t", 0, 2)]
            held = (await bounded.declare()).message_count
            with pytest.raises(BrokerError, match="refused messages to topic 't'"):
                await producer.send("t", numbered_messages(2, 1))
            again = await producer.send("t", MessageBatch.build([]))  # nothing: no channel
            assert again == []
            await bounded.purge()
            await producer.send("t", numbered_messages(3, 1))  # a new channel, confirmed
            return held, (await bounded.declare()).message_count

    held, after = run_on(broker, body())
    assert (held, after) == (2, 1)


def test_prefetch_bounds_what_a_member_holds_unacknowledged(amqp_url: str) -> None:
    broker = open_broker(f"{amqp_url}&prefetch=5")

    async def body() -> tuple[list[int], list[bytes]]:
        consumer = await joined(broker, "g", ["t"])
        await (await broker.producer()).send("t", numbered_messages(0, 12))
        first = await read_until(consumer, lambda got: len(values(got)) >= 5)
        sizes = [len(values(first)), len(values(await consumer.poll(100, 0.3)))]
        await consumer.ack([b.ack_token for b in first])
        rest = await read_until(consumer, lambda got: len(values(got)) >= 5)
        return sizes, values(first) + values(rest)

    sizes, read = run_on(broker, body())
    assert sizes == [5, 0], "nothing more until the first five are acknowledged"
    assert read == messages(0, 10)


def test_a_closed_members_unacked_messages_go_to_the_member_still_there(amqp_url: str) -> None:
    broker = open_broker(amqp_url)

    async def body() -> tuple[list[bytes], list[bytes]]:
        first = await joined(broker, "g", ["t"])
        second = await joined(broker, "g", ["t"])
        await (await broker.producer()).send("t", numbered_messages(0, 10))
        held = await read_until(first, lambda got: len(values(got)) >= 10, max_messages=4)
        await first.ack([held[0].ack_token])  # the first batch only
        assert await second.poll(100, 0.2) == [], "the first member holds them all"
        await first.close()
        again = await read_until(second, lambda got: len(values(got)) >= 10 - len(held[0].messages))
        return values(held[1:]), values(again + await drain(second))

    unacked, again = run_on(broker, body())
    assert unacked and Counter(again) == Counter(unacked)


def test_a_cut_connection_is_opened_again_on_next_use_and_loses_nothing(amqp_url: str) -> None:
    """The network fails between a member's reads: a send then fails in one line, a poll
    returns nothing (and warns), acknowledgements of what the dead channel held are skipped;
    once the path is back, the next send and poll reconnect, and what the member had not
    acknowledged is delivered again."""
    address = url_options(amqp_url).display
    with TcpProxy(url_options(amqp_url).port) as proxy:
        url = amqp_url.replace(address, f"127.0.0.1:{proxy.port}") + "&confirm_timeout=5"
        broker = open_broker(url)

        async def body() -> tuple[list[bytes], list[bytes]]:
            consumer = await joined(broker, "g", ["t"])
            producer = await broker.producer()
            await producer.send("t", numbered_messages(0, 10))
            read = await read_until(consumer, lambda got: len(values(got)) >= 10, max_messages=4)
            await consumer.ack([read[0].ack_token])
            proxy.cut()
            with pytest.raises(BrokerError) as caught:
                await producer.send("t", numbered_messages(10, 1))
            assert "\n" not in str(caught.value) and "topic 't'" in str(caught.value)
            assert await consumer.poll(10, 0.2) == []
            await consumer.ack([b.ack_token for b in read[1:]])  # their channel is gone
            proxy.restore()
            await producer.send("t", numbered_messages(11, 2))
            again = await read_until(consumer, lambda got: len(values(got)) >= 8)
            return values(read), values(again + await drain(consumer))

        read, again = run_on(broker, body())
    assert read == messages(0, 10)
    assert sorted(again) == sorted(read[len(read) - 6 :] + messages(11, 13))


def test_a_large_send_to_a_slow_server_waits_as_long_as_confirms_come(amqp_url: str) -> None:
    """``confirm_timeout`` bounds the silence, not the send: through a link that needs many
    times ``confirm_timeout`` to carry a send, confirms keep coming, and the send succeeds
    with every message in the group's queue."""
    count, confirm_timeout = 10_000, 1.5
    address = url_options(amqp_url).display
    with SlowLink(url_options(amqp_url).port, rate=300_000) as link:
        url = amqp_url.replace(address, f"127.0.0.1:{link.port}")
        broker = open_broker(f"{url}&confirm_timeout={confirm_timeout:g}")

        async def send() -> float:
            await joined(broker, "g", ["t"])
            producer = await broker.producer()
            started = time.monotonic()
            await producer.send("t", numbered_messages(0, count))
            return time.monotonic() - started

        took = run_on(broker, send(), timeout=120)
    assert took > 3 * confirm_timeout, f"the send took {took:.1f} s: not slow enough to tell"
    reader = open_broker(amqp_url)

    async def read_back() -> list[bytes]:
        consumer = await reader.consumer("g", ["t"])
        read = await read_until(consumer, lambda got: len(values(got)) >= count, timeout=60)
        return values(read + await drain(consumer))

    assert run_on(reader, read_back(), timeout=90) == messages(0, count)


def test_a_server_that_stalls_mid_send_fails_it_within_the_confirm_timeout(
    amqp_url: str,
) -> None:
    """Confirms came, then none: the send fails about ``confirm_timeout`` seconds after the
    last one, saying how many were not confirmed and what the timeout means."""
    confirm_timeout = 1.0
    address = url_options(amqp_url).display
    with SlowLink(url_options(amqp_url).port, rate=300_000) as link:
        url = amqp_url.replace(address, f"127.0.0.1:{link.port}")
        broker = open_broker(f"{url}&confirm_timeout={confirm_timeout:g}")

        message, after = send_through_a_stall(broker, link, "t", 10_000)
    assert after < confirm_timeout + 2, f"failed {after:.1f} s after the server stalled"
    assert re.fullmatch(
        r"RabbitMQ 127\.0\.0\.1:\d+: \d+ of 10000 messages to topic 't' were not confirmed: "
        r"no confirm for 1 s \(confirm_timeout\)",
        message,
    ), message


_DOOMED_MEMBER = """
import asyncio, sys
from omconnect.runtime.brokers import open_broker

async def main():
    broker = open_broker(sys.argv[1])
    consumer = await broker.consumer("g", ["t"])
    print("subscribed", flush=True)
    read = 0
    while read < 10:
        read += sum(len(b.messages) for b in await consumer.poll(100, 0.5))
    print(read, flush=True)
    await asyncio.sleep(60)

asyncio.run(main())
"""


def test_a_killed_members_unacked_messages_go_to_another_member(
    amqp_url: str, tmp_path: Path
) -> None:
    broker = open_broker(amqp_url)
    script = tmp_path / "member.py"
    script.write_text(_DOOMED_MEMBER)

    async def body() -> list[bytes]:
        survivor = await joined(broker, "g", ["t"])
        member = subprocess.Popen(
            [sys.executable, str(script), amqp_url], stdout=subprocess.PIPE, text=True
        )
        try:
            assert member.stdout is not None
            assert member.stdout.readline().strip() == "subscribed"
            await (await broker.producer()).send("t", numbered_messages(0, 10))
            line = await asyncio.to_thread(member.stdout.readline)
            assert line.strip() == "10", "the member read them all, acknowledging none"
        finally:
            member.kill()  # SIGKILL, by its PID: its connection drops without a goodbye
            member.wait(timeout=10)
        read = await read_until(survivor, lambda got: len(values(got)) >= 10)
        return values(read + await drain(survivor))

    assert sorted(run_on(broker, body())) == sorted(messages(0, 10))


# -- topics ------------------------------------------------------------------------------------


def test_topics_are_listed_from_the_catalog_by_any_broker_of_the_prefix(amqp_url: str) -> None:
    writer = open_broker(amqp_url)

    async def declare() -> None:
        await writer.create_topic("orders")
        await (await writer.producer()).send("orders.eu", numbered_messages(0, 1))
        await writer.consumer("g", pattern=r"orders\..*")

    run_on(writer, declare())
    reader = open_broker(amqp_url, create=False)  # another process, a read-only command
    listed = run_on(reader, reader.list_topics())
    assert [(t.name, t.partitions, t.messages) for t in listed] == [
        ("orders", 1, 0),
        ("orders.eu", 1, 0),
    ]


def test_a_read_only_listing_of_an_unused_prefix_declares_nothing(amqp_url: str) -> None:
    broker = open_broker(amqp_url, create=False)
    assert run_on(broker, broker.list_topics()) == []

    async def catalog_exists() -> bool:
        async with raw_channel(amqp_url) as raw:
            try:
                await raw.get_queue(Names(url_options(amqp_url).prefix).catalog, ensure=True)
            except aio_pika.exceptions.ChannelNotFoundEntity:
                return False
            return True

    assert not asyncio.run(catalog_exists())

"""What the redis:// driver does beyond the broker contract: its URL, how headers, keys and
ids travel as stream fields, how a dead member's pending entries are claimed, what happens
when the server is not there or restarts.

Tests that need a server use the shared one (``tests/support/redis_server.py``; they fail
saying how to start it when it is not there) under a key prefix of their own, or start a
private ``redis-server`` they can kill.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pytest
import redis

from omconnect.runtime.brokers import ConsumedBatch, Consumer, open_broker
from omconnect.runtime.brokers.base import BrokerError, CommitFencedError, TopicSettings
from omconnect.runtime.brokers.redis import RedisBroker, RedisUrlError
from omconnect.runtime.brokers.redis._connection import RedisConnection
from omconnect.runtime.brokers.redis._options import parse_options
from omconnect.runtime.brokers.redis._reader import PartitionState, StreamReader
from omconnect.runtime.brokers.url import parse_broker_url
from omconnect.schemas.message_batch import HEADERS_TYPE, MessageBatch
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
from tests.support.redis_server import RedisServerProcess, free_port, redis_test_url

from .conftest import (
    drain,
    joined,
    messages,
    numbered,
    numbered_messages,
    offsets,
    read_until,
    run_on,
    values,
)


@pytest.fixture
def redis_url() -> str:
    """A URL of the shared server under a key prefix of this test's (deleted after it)."""
    return redis_test_url()


def _raw(url: str) -> redis.Redis:
    """A plain redis-py client of the server of ``url`` (to look at what the driver wrote)."""
    options = parse_options(parse_broker_url(url))
    return redis.Redis(host=options.host, port=options.port, db=options.db)


def _key(url: str, *parts: object) -> str:
    prefix = parse_options(parse_broker_url(url)).prefix
    return ":".join([prefix, *map(str, parts)])


# -- without a server -----------------------------------------------------------------------


def test_url_options_are_parsed_and_checked() -> None:
    options = parse_options(
        parse_broker_url("oms:redis://alice:s3cr%40t@cache.local:6380/2?prefix=prod&claim_idle=4")
    )
    assert (options.host, options.port, options.db) == ("cache.local", 6380, 2)
    assert (options.username, options.password) == ("alice", "s3cr@t")
    assert (options.prefix, options.claim_idle, options.connect_timeout) == ("prod", 4.0, 3.0)
    assert options.display == "cache.local:6380/2"
    assert parse_options(parse_broker_url("redis://:pw@h")).password == "pw"
    assert parse_options(parse_broker_url("redis://[::1]:7000")).display == "[::1]:7000/0"
    assert issubclass(RedisUrlError, BrokerError)
    refused_urls(
        [
            ("redis://alice:s3cret@h1:6379?bogus=1", "unknown redis:// option 'bogus'"),
            ("redis://h:6379?claim_idle=0", "claim_idle must be a positive number"),
            ("redis://h:6379?prefix=a:b", "prefix must be 1 to 64 letters"),
            ("redis://h:6379?ssl=maybe", "ssl must be true or false"),
            ("redis://h:99999", "port of a redis:// URL must be 1 to 65535"),
            ("redis://h:6379/db1", "path of a redis:// URL is a database number"),
            ("redis://", "needs a server"),
        ],
        RedisUrlError,
    )
    opened = open_broker("redis://alice:s3cret@h1:6379/0?prefix=x")
    assert isinstance(opened, RedisBroker)
    assert opened.url == "redis://***@h1:6379/0?prefix=x", "the URL shown never has the password"


def test_the_core_imports_without_redis_py_and_the_driver_says_what_is_missing() -> None:
    said = open_without("redis", "redis://localhost:6379", "ValueError")
    assert "install the omconnect[redis] extra" in said


# -- errors a person can act on ---------------------------------------------------------------


def test_an_unreachable_server_fails_within_seconds_saying_what_to_check() -> None:
    port = free_port()  # nothing listens there
    url = f"redis://alice:s3cret@127.0.0.1:{port}"
    for operation, message in unreachable_errors(url, "list_topics", "send", "poll").items():
        assert f"cannot connect to the Redis server at 127.0.0.1:{port}/0" in message, operation
        assert "connection refused" in message
        assert "redis-server" in message


def test_a_server_that_does_not_answer_fails_within_the_connect_timeout() -> None:
    broker = open_broker(f"redis://{NOWHERE}:6379?connect_timeout=1")
    message = unreachable_error(broker, broker.list_topics, within=4)
    assert f"cannot connect to the Redis server at {NOWHERE}" in message


# -- how messages look in the streams ---------------------------------------------------------


_PROPERTIES = {
    "content-type": b"application/vnd.apache.avro+binary",
    "ce_specversion": b"1.0",
    "ce_type": b"com.example.order",
    "schema-id": b"42",
    "user": b"plain text",
    "binary": b"\x00\x01\xfe",
    "name with spaces: and colons": b"x",
    "value": b"a property named like a field",
    "h:tricky": b"a property named like an escaped header",
    "empty": b"",
    "unicode": "grüße".encode(),
}


def test_every_openmessaging_field_round_trips_as_stream_fields(redis_url: str) -> None:
    broker = open_broker(redis_url)
    topic = f"h-{uuid.uuid4().hex[:8]}"
    sent = messages_with_every_field(topic, _PROPERTIES)

    async def body() -> list[ConsumedBatch]:
        await broker.create_topic(topic)
        await (await broker.producer()).send(topic, as_the_runtime_sends(sent))
        consumer = await broker.consumer("g", [topic])
        return await read_until(consumer, lambda got: len(values(got)) >= 6)

    check_round_trip(sent, run_on(broker, body()), topic)
    # Other Redis clients see plain fields: value, key, timestamp, message_id, h:<header>.
    raw = _raw(redis_url)
    try:
        (entry_id, fields), *_ = raw.xrange(_key(redis_url, topic, 0), count=1)
    finally:
        raw.close()
    assert entry_id == b"0-1"
    assert fields[b"key"] == b"\x00\xff binary key"
    assert b"value" not in fields, "a null value is an absent field"
    assert fields[b"timestamp"] == b"1700000000000"
    assert fields[b"message_id"] == b"msg-0"
    assert fields[b"h:oms.trace_id"] == b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    assert fields[b"h:oms.priority"] == b"9"
    assert fields[b"h:content-type"] == b"application/vnd.apache.avro+binary"
    assert fields[b"h:ce_type"] == b"com.example.order"
    assert fields[b"h:value"] == b"a property named like a field"


def test_duplicate_and_null_headers_and_extreme_timestamps_round_trip(redis_url: str) -> None:
    broker = open_broker(redis_url)
    headers = pa.array([[("a", b"1"), ("a", b"2"), ("n", None)], [], None], HEADERS_TYPE)
    sent = MessageBatch.build(
        [b"x", b"y", b"z"], timestamps=[-(2**63), 2**63 - 1, 0], headers=headers
    )

    async def body() -> list[ConsumedBatch]:
        producer = await broker.producer()
        await producer.send("t", sent)
        return await drain(await broker.consumer("g", ["t"]))

    received = MessageBatch.concat([b.messages for b in run_on(broker, body())])
    assert received.headers.to_pylist() == sent.headers.to_pylist()
    assert received.timestamps.to_pylist() == sent.timestamps.to_pylist()


def test_entries_other_clients_added_read_back_with_their_fields_as_headers(
    redis_url: str,
) -> None:
    broker = open_broker(redis_url)
    raw = _raw(redis_url)

    async def body() -> list[ConsumedBatch]:
        await broker.create_topic("sensors")
        raw.xadd(_key(redis_url, "sensors", 0), {"temperature": "21.5", "value": "v"}, id="0-*")
        return await drain(await broker.consumer("g", ["sensors"]))

    try:
        (batch,) = run_on(broker, body())
    finally:
        raw.close()
    assert batch.messages.values.to_pylist() == [b"v"]
    assert batch.messages.headers.to_pylist() == [[("temperature", b"21.5")]]
    assert batch.messages.timestamps.to_pylist() == [0]


# -- groups, offsets, pending entries ---------------------------------------------------------


def test_a_commit_acknowledges_the_entries_below_it(redis_url: str) -> None:
    broker = open_broker(redis_url)
    raw = _raw(redis_url)
    stream = _key(redis_url, "t", 0)

    async def body() -> tuple[int, int, int]:
        producer = await broker.producer()
        await producer.send("t", numbered_messages(0, 20))
        consumer = await broker.consumer("g", ["t"])
        read = await drain(consumer)
        pending_before = raw.xpending(stream, "g")["pending"]
        await consumer.commit({("t", 0): 15})
        pending_after = raw.xpending(stream, "g")["pending"]
        return len(values(read)), pending_before, pending_after

    try:
        read, before, after = run_on(broker, body())
    finally:
        raw.close()
    assert (read, before, after) == (20, 20, 5), "the PEL holds what is read, not committed"


def test_pending_entries_of_a_killed_member_are_claimed_by_the_survivor(tmp_path: Path) -> None:
    """A member reads 10 messages and is killed (SIGKILL) without committing: once it has
    been silent for ``claim_idle``, the other member takes its partition, XAUTOCLAIMs the 10
    entries it had pending and delivers them, before the rest, each once."""
    url = redis_test_url(claim_idle=1)
    victim = (
        "import asyncio, json, sys\n"
        "from omconnect.runtime.brokers import open_broker\n"
        "async def main():\n"
        f"    broker = open_broker({url!r})\n"
        "    consumer = await broker.consumer('g', ['t'])\n"
        "    got = []\n"
        "    while len(got) < 10:\n"
        "        for batch in await consumer.poll(10 - len(got), 1.0):\n"
        "            got += batch.messages.offsets.to_pylist()\n"
        "    print(json.dumps(got), flush=True)\n"
        "    await asyncio.sleep(120)\n"
        "asyncio.run(main())\n"
    )
    broker = open_broker(url)
    raw = _raw(url)
    stream = _key(url, "t", 0)

    async def body() -> tuple[list[int], list[bytes], float, list[dict[str, object]]]:
        producer = await broker.producer()
        await producer.send("t", numbered_messages(0, 30))
        process = subprocess.Popen(
            [sys.executable, "-c", victim], stdout=subprocess.PIPE, text=True
        )
        try:
            assert process.stdout is not None
            line = await asyncio.get_running_loop().run_in_executor(None, process.stdout.readline)
            taken = json.loads(line)
            survivor = await broker.consumer("g", ["t"])
            assert await survivor.poll(10, 0.3) == [], "the live member keeps its partition"
        finally:
            process.kill()
            process.wait(10)
        killed = time.monotonic()
        batches = await read_until(survivor, lambda got: len(values(got)) >= 30, timeout=20)
        waited = time.monotonic() - killed
        pending = raw.xpending_range(stream, "g", min="-", max="+", count=100)
        await survivor.commit({("t", 0): 30})
        assert raw.xpending(stream, "g")["pending"] == 0
        return taken, values(batches), waited, pending

    try:
        taken, read, waited, pending = run_on(broker, body(), timeout=40)
    finally:
        raw.close()
    assert taken == list(range(10))
    assert read == messages(0, 30), "the claimed entries first, then the rest, each once"
    assert 1.0 <= waited < 8, f"took over after {waited:.1f} s"
    claimed = [p for p in pending if p["times_delivered"] == 2]
    assert [p["message_id"] for p in claimed] == [f"0-{n}".encode() for n in range(1, 11)]
    assert len({p["consumer"] for p in pending}) == 1, "all of them the survivor's now"


def test_a_claim_waits_until_every_entry_left_pending_is_idle_long_enough(
    redis_url: str,
) -> None:
    """Taking entries over from a dead member: none is claimed while one of them is not
    idle for the min idle time yet (a claim would skip it and deliver later ones first);
    then all are, in order."""
    broker = open_broker(redis_url)
    raw = _raw(redis_url)
    stream = _key(redis_url, "t", 0)
    connection = RedisConnection(parse_options(parse_broker_url(redis_url)))
    reader = StreamReader(connection, "g", "me")
    state = PartitionState(stream, mode="c", min_idle_ms=400)

    async def body() -> tuple[list[int], str, list[int], str]:
        producer = await broker.producer()
        await producer.send("t", numbered_messages(0, 6))
        raw.xgroup_create(stream, "g", id="0")
        raw.xreadgroup("g", "dead", {stream: ">"}, count=3)
        await asyncio.sleep(0.5)
        raw.xreadgroup("g", "dead", {stream: ">"}, count=3)  # not idle long enough yet
        early = await reader.fetch([(("t", 0), state)], 100)
        early_mode = state.mode
        await asyncio.sleep(0.5)
        late = await reader.fetch([(("t", 0), state)], 100)
        await connection.close()
        return offsets(early), early_mode, offsets(late), state.mode

    try:
        early, early_mode, late, late_mode = run_on(broker, body())
    finally:
        raw.close()
    assert (early, early_mode) == ([], "c")
    assert (late, late_mode) == ([0, 1, 2, 3, 4, 5], "r")


def test_an_offset_reset_needs_a_group_without_live_members_and_moves_it(
    redis_url: str,
) -> None:
    broker = open_broker(redis_url)

    async def body() -> tuple[list[bytes], list[bytes]]:
        producer = await broker.producer()
        await producer.send("t", numbered_messages(0, 10))
        member = await broker.consumer("g", ["t"])
        first = values(await drain(member))
        await member.commit({("t", 0): 10})
        outsider = await broker.consumer("g", ["t"])
        with pytest.raises(CommitFencedError, match="live member"):
            await outsider.commit({("t", 0): 0})
        await member.close()
        await outsider.commit({("t", 0): 4})  # nobody left: a reset
        again = await broker.consumer("g", ["t"])
        return first, values(await drain(again))

    first, again = run_on(broker, body())
    assert first == messages(0, 10)
    assert again == messages(4, 10)


def test_a_seek_past_the_end_stops_at_the_high_water(redis_url: str) -> None:
    broker = open_broker(redis_url)

    async def body() -> list[bytes]:
        producer = await broker.producer()
        await producer.send("t", numbered_messages(0, 5))
        consumer = await broker.consumer("g", ["t"])
        await drain(consumer)
        await consumer.seek({("t", 0): 1000})
        await producer.send("t", numbered_messages(5, 2))
        return values(await read_until(consumer, lambda got: len(values(got)) >= 2))

    assert run_on(broker, body()) == messages(5, 7)


def test_a_group_that_never_committed_leaves_nothing_behind(redis_url: str) -> None:
    """``omconnect topics tail`` makes a group per call: when its only member leaves without
    committing, its document and its Redis consumer groups go."""
    broker = open_broker(redis_url)
    raw = _raw(redis_url)

    async def body() -> None:
        producer = await broker.producer()
        await producer.send("t", numbered_messages(0, 3))
        tail = await broker.consumer("omconnect.tail.x", ["t"])
        await drain(tail)
        await tail.close()
        kept = await broker.consumer("kept", ["t"])
        await kept.commit({("t", 0): 1})

    try:
        run_on(broker, body())
        groups = [g["name"] for g in raw.xinfo_groups(_key(redis_url, "t", 0))]
        keys = {k.decode() for k in raw.scan_iter(match=_key(redis_url, "*"))}
    finally:
        raw.close()
    assert groups == [b"kept"]
    assert not any("omconnect.tail.x" in k for k in keys), keys


# -- retention ---------------------------------------------------------------------------------


def test_retention_ms_trims_what_is_older(redis_url: str) -> None:
    broker = open_broker(redis_url)

    async def body() -> tuple[int, int]:
        await broker.create_topic("old", TopicSettings(retention_ms=1500))
        producer = await broker.producer()
        big = MessageBatch.build([f"m{n}:".encode() + b"x" * 1000 for n in range(40)])
        await producer.send("old", big)
        await asyncio.sleep(2.6)  # two checkpoints (a second apart) are past the retention
        await producer.send("old", numbered_messages(40, 1))
        await asyncio.sleep(1.1)
        await producer.send("old", numbered_messages(41, 1))
        (info,) = [t for t in await broker.list_topics() if t.name == "old"]
        consumer = await broker.consumer("g", ["old"])
        first = numbered(values(await drain(consumer)))[0]
        return info.messages, first

    count, first = run_on(broker, body())
    assert count < 42
    assert first > 0


# -- a server that restarts --------------------------------------------------------------------


def test_a_restart_mid_publish_loses_no_acknowledged_message(tmp_path: Path) -> None:
    """A private server with an append-only file (fsync always) is killed with SIGKILL and
    restarted while a producer publishes and a consumer reads and commits; the producer
    re-sends what failed (as the runtime rewinds its source), the consumer's polls come back
    empty while the server is away. Every acknowledged message is stored and read, and
    duplicates are bounded by the failed sends."""
    server = RedisServerProcess(tmp_path / "redis")
    server.start()
    url = f"redis://{server.address}?prefix=restart&connect_timeout=1&timeout=2"
    broker = open_broker(url)
    failures = 0
    done = asyncio.Event()
    killed = threading.Event()

    def kill_and_restart() -> None:
        server.kill()
        killed.set()
        time.sleep(0.5)
        server.start()

    restarter = threading.Thread(target=kill_and_restart)

    async def publish() -> None:
        nonlocal failures
        producer = await broker.producer()
        deadline = time.monotonic() + 30
        for number in range(150):
            if number == 30:  # the rest is sent while the server is away and after it is back
                restarter.start()
                while not killed.is_set():
                    await asyncio.sleep(0.01)
            while True:
                assert time.monotonic() < deadline, f"acked {number} batches"
                try:
                    await producer.send("t", numbered_messages(number * 20, 20))
                    break
                except BrokerError:
                    failures += 1
                    await asyncio.sleep(0.05)
            await asyncio.sleep(0.005)
        done.set()

    async def consume(consumer: Consumer) -> list[bytes]:
        read: list[bytes] = []
        deadline = time.monotonic() + 40
        while not (done.is_set() and set(numbered(read)) >= set(range(3000))):
            assert time.monotonic() < deadline, f"read {len(set(read))} messages"
            batches = await consumer.poll(500, 0.2)
            read += values(batches)
            if batches:
                with contextlib.suppress(BrokerError):  # away: the next commit covers it
                    await consumer.commit({("t", 0): batches[-1].next_offset})
        return read

    async def body() -> tuple[list[bytes], list[bytes]]:
        consumer = await joined(broker, "g", ["t"])
        reading = asyncio.ensure_future(consume(consumer))
        await publish()
        live = await reading
        restarter.join()
        stored = await drain(await broker.consumer("again", ["t"]), 5000, 0.5)
        return live, values(stored)

    try:
        live, stored = run_on(broker, body(), timeout=60)
    finally:
        server.stop()
    assert failures > 0, "the server was not restarted while publishing"
    counts = Counter(numbered(stored))
    assert set(counts) == set(range(150 * 20)), "an acknowledged message is missing"
    assert sum(counts.values()) - len(counts) <= failures * 20
    assert set(numbered(live)) == set(range(150 * 20)), "the consumer read through the restart"

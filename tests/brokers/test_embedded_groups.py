"""Consumer groups of the embedded broker: members split partitions (range assignment), hand
them over with rebalance callbacks, stale members are fenced, killed members expire at once and
silent ones after their session timeout.

Members here are real consumers on a real log file, in this process or in child processes
that are stopped or killed with signals.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
import time
from collections import Counter
from collections.abc import Set
from pathlib import Path

import pytest

from omconnect.runtime.brokers import Broker, ConsumedBatch, Consumer, TopicPartition, open_broker
from omconnect.runtime.brokers.base import CommitFencedError, TopicSettings
from omconnect.runtime.brokers.embedded import EmbeddedBroker
from omconnect.runtime.brokers.embedded.consumer import EmbeddedConsumer
from omconnect.runtime.brokers.groups import Subscription, range_assignment

from .conftest import numbered_messages, run

Event = tuple[str, str, set[TopicPartition]]


class Member:
    """A group member that records its rebalance callbacks in a shared list and, as the
    runtime does, commits what it has read of the partitions it loses."""

    def __init__(self, name: str, events: list[Event]) -> None:
        self.name = name
        self.events = events
        self.values: list[bytes] = []
        self.read: dict[TopicPartition, int] = {}
        self._consumer: Consumer | None = None

    @classmethod
    async def join(
        cls,
        broker: Broker,
        name: str,
        events: list[Event],
        group: str,
        topic: str | None = None,
        pattern: str | None = None,
    ) -> Member:
        member = cls(name, events)
        topics = [] if topic is None else [topic]
        member._consumer = await broker.consumer(group, topics, pattern=pattern, listener=member)
        return member

    @property
    def consumer(self) -> Consumer:
        assert self._consumer is not None
        return self._consumer

    async def on_partitions_revoked(self, partitions: Set[TopicPartition]) -> None:
        self.events.append((self.name, "revoked", set(partitions)))
        done = {tp: self.read[tp] for tp in partitions if tp in self.read}
        if done:
            await self.consumer.commit(done)

    async def on_partitions_assigned(self, partitions: Set[TopicPartition]) -> None:
        self.events.append((self.name, "assigned", set(partitions)))

    async def poll(self, max_messages: int = 1000, timeout: float = 0.05) -> int:
        batches = await self.consumer.poll(max_messages, timeout)
        for batch in batches:
            self.values.extend(batch.messages.values.to_pylist())
            self.read[(batch.topic, batch.partition)] = batch.next_offset
        return sum(len(b.messages) for b in batches)

    async def commit_read(self) -> None:
        owned = await self.consumer.assignment()
        await self.consumer.commit({tp: o for tp, o in self.read.items() if tp in owned})


async def _settle(members: list[Member], partitions: set[TopicPartition]) -> None:
    """Poll every member in turn until together they own each partition once, each its
    fair share."""
    share = len(partitions) // len(members)
    for _ in range(200):
        for member in members:
            await member.poll(timeout=0.01)
        owned = [await m.consumer.assignment() for m in members]
        if (
            sum(len(o) for o in owned) == len(partitions)
            and set().union(*owned) == partitions
            and min(len(o) for o in owned) >= share
        ):
            return
    raise AssertionError(f"the group did not settle: {owned}")


async def _drain(members: list[Member]) -> None:
    while sum([await m.poll() for m in members]):
        pass


def _partitions(topic: str, count: int) -> set[TopicPartition]:
    return {(topic, p) for p in range(count)}


def _values(batch: ConsumedBatch) -> list[bytes]:
    return list(batch.messages.values.to_pylist())


def test_two_members_split_by_range_and_read_each_message_once(tmp_path: Path) -> None:
    async def body() -> tuple[list[Event], list[set[TopicPartition]], Counter[bytes]]:
        broker = EmbeddedBroker(tmp_path)
        await broker.create_topic("t", TopicSettings(partitions=4))
        producer = await broker.producer()
        await producer.send("t", numbered_messages(0, 400, key_space=40))
        events: list[Event] = []
        first = await Member.join(broker, "first", events, "g", "t")
        await first.poll(max_messages=30)  # reads some of every partition, commits nothing
        second = await Member.join(broker, "second", events, "g", "t")
        await _settle([first, second], _partitions("t", 4))
        split = [await first.consumer.assignment(), await second.consumer.assignment()]
        await _drain([first, second])
        await second.commit_read()
        await second.consumer.close()
        await producer.send("t", numbered_messages(400, 100, key_space=40))
        await _settle([first], _partitions("t", 4))
        await _drain([first])
        await broker.close()
        return events, split, Counter(first.values + second.values)

    events, split, read = run(body())
    assert split == [_partitions("t", 2), {("t", 2), ("t", 3)}]
    assert events == [
        ("first", "assigned", _partitions("t", 4)),
        ("second", "assigned", set()),  # its share is still the first member's
        ("first", "revoked", {("t", 2), ("t", 3)}),  # which commits what it read of them
        ("second", "assigned", {("t", 2), ("t", 3)}),
        ("first", "assigned", {("t", 2), ("t", 3)}),  # the second left
    ]
    assert read == Counter({f"m{n}".encode(): 1 for n in range(500)})


def test_different_groups_each_read_everything(tmp_path: Path) -> None:
    async def body() -> dict[str, Counter[bytes]]:
        broker = EmbeddedBroker(tmp_path)
        await broker.create_topic("t", TopicSettings(partitions=3))
        producer = await broker.producer()
        await producer.send("t", numbered_messages(0, 300, key_space=30))
        events: list[Event] = []
        read = {}
        for group in ("a", "b"):
            members = [await Member.join(broker, f"{group}{i}", events, group, "t") for i in (1, 2)]
            await _settle(members, _partitions("t", 3))
            await _drain(members)
            assert sorted([len(await m.consumer.assignment()) for m in members]) == [1, 2]
            read[group] = Counter(members[0].values + members[1].values)
        await broker.close()
        return read

    everything = Counter({f"m{n}".encode(): 1 for n in range(300)})
    assert run(body()) == {"a": everything, "b": everything}


def test_a_stale_member_cannot_commit_until_it_polls(tmp_path: Path) -> None:
    async def body() -> None:
        broker = EmbeddedBroker(tmp_path)
        producer = await broker.producer()
        await producer.send("t", numbered_messages(0, 10))
        old = await broker.consumer("g", ["t"])
        (batch,) = await old.poll(2, timeout=1)
        newcomer = await broker.consumer("g", ["t"])
        assert await newcomer.poll(10, timeout=0.05) == []  # joins: the group moves on
        with pytest.raises(CommitFencedError, match="generation"):
            await old.commit({("t", 0): batch.next_offset})
        assert await old.committed() == {}
        await old.poll(1, timeout=0.05)  # syncs; the single partition stays the old member's
        assert await old.assignment() == {("t", 0)}
        await old.commit({("t", 0): batch.next_offset})
        assert await newcomer.committed() == {("t", 0): 2}
        await broker.close()

    run(body())


def test_commits_of_partitions_a_member_does_not_own_are_refused_whole(tmp_path: Path) -> None:
    async def body() -> None:
        broker = EmbeddedBroker(tmp_path)
        await broker.create_topic("t", TopicSettings(partitions=4))
        events: list[Event] = []
        members = [await Member.join(broker, n, events, "g", "t") for n in ("one", "two")]
        await _settle(members, _partitions("t", 4))
        assert await members[0].consumer.assignment() == {("t", 0), ("t", 1)}
        with pytest.raises(CommitFencedError, match=r"\('t', 2\)"):
            await members[0].consumer.commit({("t", 0): 1, ("t", 2): 1})
        assert await members[0].consumer.committed() == {}
        await broker.close()

    run(body())


def test_a_consumer_that_never_polled_commits_only_into_an_empty_group(tmp_path: Path) -> None:
    async def body() -> None:
        broker = EmbeddedBroker(tmp_path)
        await broker.create_topic("t")
        resetter = await broker.consumer("g", ["t"])
        await resetter.commit({("t", 0): 0})  # `omconnect offsets reset` of a stopped pipeline
        running = await broker.consumer("g", ["t"])
        await running.poll(10, timeout=0.05)
        with pytest.raises(CommitFencedError, match="active member"):
            await resetter.commit({("t", 0): 7})
        assert await resetter.committed() == {("t", 0): 0}
        await broker.close()

    run(body())


_CHILD_MEMBER = """
import asyncio, sys
from omconnect.runtime.brokers import open_broker
from omconnect.runtime.brokers.base import CommitFencedError, TopicSettings

async def main(url, topic, wanted):
    broker = open_broker(url)
    consumer = await broker.consumer("g", [topic])
    read = {}
    while len(await consumer.assignment()) < wanted:
        for batch in await consumer.poll(2, timeout=0.05):
            read[(batch.topic, batch.partition)] = batch.next_offset
    print("owns", sorted(p for _, p in await consumer.assignment()), flush=True)
    sys.stdin.readline()
    try:
        await consumer.commit(read)
        print("committed", flush=True)
    except CommitFencedError as exc:
        print("fenced", exc, flush=True)
    await asyncio.sleep(3600)

asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
"""


async def _start_child(url: str, topic: str, wanted: int) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _CHILD_MEMBER,
        url,
        topic,
        str(wanted),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )


async def _line_while_polling(process: asyncio.subprocess.Process, member: Member) -> str:
    """The child's next output line; ``member`` keeps polling meanwhile so it hands over."""
    assert process.stdout is not None
    reading = asyncio.ensure_future(process.stdout.readline())
    while not reading.done():
        await member.poll(max_messages=1, timeout=0.02)
    line = (await reading).decode()
    assert line, "the child member exited"
    return line.strip()


def _member_locks(log_dir: Path) -> list[str]:
    """The member ids whose lock files exist."""
    return sorted(p.stem for p in (log_dir / "broker.sqlite-members").glob("*.lock"))


def test_a_killed_member_loses_its_partitions_at_once(tmp_path: Path) -> None:
    url = f"embedded://{tmp_path}"  # the default session timeout: 10 seconds

    async def body() -> tuple[str, float, list[Event], int]:
        broker = open_broker(url)
        await broker.create_topic("t", TopicSettings(partitions=4))
        producer = await broker.producer()
        await producer.send("t", numbered_messages(0, 400, key_space=40))
        events: list[Event] = []
        survivor = await Member.join(broker, "survivor", events, "g", "t")
        await survivor.poll(max_messages=1)
        child = await _start_child(url, "t", 2)
        try:
            owns = await _line_while_polling(child, survivor)
            assert await survivor.consumer.assignment() == _partitions("t", 2)
            assert len(_member_locks(tmp_path)) == 2
            os.kill(child.pid, signal.SIGKILL)
            killed = time.monotonic()
            while len(await survivor.consumer.assignment()) < 4:
                await survivor.poll(timeout=0.02)
                assert time.monotonic() - killed < 10, "the killed member never expired"
            took_over = time.monotonic() - killed
        finally:
            if child.returncode is None:
                child.kill()
            await child.wait()
        # The killed member's lock file went with it.
        assert isinstance(survivor.consumer, EmbeddedConsumer)
        assert _member_locks(tmp_path) == [survivor.consumer.member_id]
        await _drain([survivor])
        await broker.close()
        assert _member_locks(tmp_path) == []
        return owns, took_over, events, len(set(survivor.values))

    owns, took_over, events, distinct = run(body())
    assert owns == "owns [2, 3]"
    # Not the session timeout (10 s): the survivor sees the killed member's lock free while it
    # polls (every half second) and expires it, in about a second on a quiet machine; the
    # bound leaves room for a loaded one.
    assert took_over < 5
    assert events[-1] == ("survivor", "assigned", {("t", 2), ("t", 3)})
    assert distinct == 400  # the child never committed: the survivor reads its share again


def test_a_member_restarted_after_sigkill_reads_at_once(tmp_path: Path) -> None:
    # `omconnect run --once` killed and started again: the new member must not wait for the
    # old one's session (10 seconds by default) to time out.
    url = f"embedded://{tmp_path}"

    async def body() -> tuple[str, float, list[str], int]:
        broker = open_broker(url)
        await broker.create_topic("t", TopicSettings(partitions=4))
        producer = await broker.producer()
        await producer.send("t", numbered_messages(0, 400, key_space=40))
        child = await _start_child(url, "t", 4)
        try:
            assert child.stdout is not None
            owns = (await child.stdout.readline()).decode().strip()
            os.kill(child.pid, signal.SIGKILL)
            await child.wait()
        finally:
            if child.returncode is None:
                child.kill()
                await child.wait()
        restarted = time.monotonic()
        events: list[Event] = []
        member = await Member.join(broker, "restarted", events, "g", "t")
        while len(member.values) < 400:
            await member.poll(timeout=0.05)
            assert time.monotonic() - restarted < 10, "the killed member never expired"
        took = time.monotonic() - restarted
        locks = _member_locks(tmp_path)
        await broker.close()
        return owns, took, locks, len(set(member.values))

    owns, took, locks, distinct = run(body())
    assert owns == "owns [0, 1, 2, 3]"
    assert took < 5  # well inside the 10 s session: the killed member's lock was seen free
    assert len(locks) == 1  # the new member's: the killed one's lock file was cleaned up
    assert distinct == 400


def test_stale_member_lock_files_are_swept_when_a_member_joins(tmp_path: Path) -> None:
    async def body() -> list[str]:
        broker = EmbeddedBroker(tmp_path)
        await broker.create_topic("t")
        locks = tmp_path / "broker.sqlite-members"
        locks.mkdir()
        (locks / "left-by-a-dead-process.lock").touch()  # no row, nobody holds it
        consumer = await broker.consumer("g", ["t"])
        await consumer.poll(10, timeout=0.01)
        joined = _member_locks(tmp_path)
        await broker.close()
        return joined

    joined = run(body())
    assert len(joined) == 1 and joined[0] != "left-by-a-dead-process"
    assert _member_locks(tmp_path) == []


def test_a_zombie_member_cannot_overwrite_the_new_owners_commit(tmp_path: Path) -> None:
    # The issue that asked for groups: a member paused long enough to be replaced later
    # commits offset 2 over the new owner's 5.
    url = f"embedded://{tmp_path}?session_timeout=1"

    async def body() -> tuple[str, str, dict[TopicPartition, int], float]:
        broker = open_broker(url)
        producer = await broker.producer()
        await producer.send("t", numbered_messages(0, 10))
        child = await _start_child(url, "t", 1)
        try:
            assert child.stdout is not None and child.stdin is not None
            owns = (await child.stdout.readline()).decode().strip()
            os.kill(child.pid, signal.SIGSTOP)
            stopped = time.monotonic()
            replacement = await broker.consumer("g", ["t"])
            while not (got := await replacement.poll(5, timeout=0.02)):
                assert time.monotonic() < stopped + 10, "the stopped member never expired"
            # A stopped process still holds its member lock: only the session timeout (from
            # its last heartbeat, at most a third of it before the stop) expires it.
            took_over = time.monotonic() - stopped
            assert [b.next_offset for b in got] == [5]  # from offset 0: nothing was committed
            await replacement.commit({("t", 0): 5})
            os.kill(child.pid, signal.SIGCONT)
            child.stdin.write(b"commit\n")
            await child.stdin.drain()
            outcome = (await child.stdout.readline()).decode().strip()
            committed = await replacement.committed()
        finally:
            os.kill(child.pid, signal.SIGCONT)
            child.kill()
            await child.wait()
        await broker.close()
        return owns, outcome, committed, took_over

    owns, outcome, committed, took_over = run(body())
    assert owns == "owns [0]"
    assert took_over >= 0.6
    assert outcome.startswith("fenced") and "no longer a member" in outcome
    assert committed == {("t", 0): 5}


def test_a_pattern_subscription_picks_up_topics_created_later(tmp_path: Path) -> None:
    async def body() -> tuple[list[Event], list[tuple[str, bytes]], set[TopicPartition]]:
        broker = EmbeddedBroker(tmp_path)
        producer = await broker.producer()
        await producer.send("orders.eu", numbered_messages(0, 2))
        await producer.send("audit", numbered_messages(100, 2))
        events: list[Event] = []
        consumer = (await Member.join(broker, "m", events, "g", pattern=r"orders\.\w+")).consumer
        read = [(b.topic, v) for b in await consumer.poll(10, timeout=1) for v in _values(b)]
        assert await consumer.poll(10, timeout=0.05) == []
        await producer.send("orders.us", numbered_messages(10, 3))
        await producer.send("orders", numbered_messages(200, 1))  # no whole-name match
        read += [(b.topic, v) for b in await consumer.poll(10, timeout=1) for v in _values(b)]
        ends = set(await consumer.end_offsets())
        await broker.close()
        return events, read, ends

    events, read, ends = run(body())
    assert events == [
        ("m", "assigned", {("orders.eu", 0)}),
        ("m", "assigned", {("orders.us", 0)}),
    ]
    assert read == [
        ("orders.eu", b"m0"),
        ("orders.eu", b"m1"),
        ("orders.us", b"m10"),
        ("orders.us", b"m11"),
        ("orders.us", b"m12"),
    ]
    assert ends == {("orders.eu", 0), ("orders.us", 0)}


def test_paused_partitions_stay_assigned_while_the_member_does_not_poll(tmp_path: Path) -> None:
    async def body() -> None:
        broker = EmbeddedBroker(tmp_path, session_timeout=1)
        await broker.create_topic("t", TopicSettings(partitions=2))
        consumer = await broker.consumer("g", ["t"])
        assert await consumer.poll(10, timeout=0.05) == []
        await consumer.pause({("t", 0)})
        producer = await broker.producer()
        await producer.send("t", numbered_messages(0, 3), partition=0)
        await producer.send("t", numbered_messages(3, 2), partition=1)
        got = await consumer.poll(10, timeout=0.5)
        assert [(b.partition, _values(b)) for b in got] == [(1, [b"m3", b"m4"])]
        assert await consumer.poll(10, timeout=0.2) == []
        # A sink retrying a write: no poll for longer than the session timeout. The
        # heartbeats keep the member, so its commit still counts.
        await asyncio.sleep(2.5)
        await consumer.commit({("t", 1): 5})
        assert await consumer.assignment() == _partitions("t", 2)
        await consumer.resume({("t", 0)})
        got = await consumer.poll(10, timeout=0.5)
        assert [(b.partition, _values(b)) for b in got] == [(0, [b"m0", b"m1", b"m2"])]
        await broker.close()

    run(body())


def test_broker_files_without_group_tables_still_open(tmp_path: Path) -> None:
    async def fill() -> None:
        broker = EmbeddedBroker(tmp_path)
        producer = await broker.producer()
        await producer.send("t", numbered_messages(0, 3))
        await broker.close()

    run(fill())
    connection = sqlite3.connect(tmp_path / "broker.sqlite")
    for table in ("consumer_groups", "group_members", "group_partitions"):
        connection.execute(f"DROP TABLE {table}")  # as a file written before groups existed
    connection.close()

    async def read() -> list[bytes]:
        broker = EmbeddedBroker(tmp_path)
        consumer = await broker.consumer("g", ["t"])
        got = await consumer.poll(10, timeout=1)
        await consumer.commit({("t", 0): 3})
        await broker.close()
        return [v for b in got for v in _values(b)]

    assert run(read()) == [b"m0", b"m1", b"m2"]


def test_session_timeout_is_a_url_option() -> None:
    broker = open_broker("embedded://x?session_timeout=2.5")
    assert isinstance(broker, EmbeddedBroker)
    assert broker.session_timeout == 2.5
    assert EmbeddedBroker.capabilities.groups and EmbeddedBroker.capabilities.partitions
    assert not EmbeddedBroker.capabilities.acks
    for bad in ("0", "-1", "soon"):
        with pytest.raises(ValueError, match="session_timeout must be a positive number"):
            open_broker(f"embedded://x?session_timeout={bad}")


def test_range_assignment_splits_each_topic_over_its_subscribers() -> None:
    members = [
        Subscription("c", ("a",)),
        Subscription("a", ("a", "b")),
        Subscription("b", (), pattern="a|b"),
    ]
    assignment = range_assignment(members, {"a": 7, "b": 3, "other": 2})
    assert assignment == {
        "a": {("a", 0), ("a", 1), ("a", 2), ("b", 0), ("b", 1)},
        "b": {("a", 3), ("a", 4), ("b", 2)},
        "c": {("a", 5), ("a", 6)},
    }

"""The broker contract for consumer ``groups``: members share the work and each message is read
once by the group; with ``partitions``, members split the partitions and hand them over with
rebalance callbacks; with a ``log``, a stale member's commit is refused."""

from __future__ import annotations

import time
from collections import Counter

import pytest

from omconnect.runtime.brokers import Broker, TopicPartition
from omconnect.runtime.brokers.base import CommitFencedError, TopicSettings

from .conftest import (
    Event,
    Member,
    messages,
    numbered_messages,
    partitions_for,
    read_until,
    requires,
    run_on,
    split_evenly,
)


def test_members_of_one_group_share_the_work_and_read_everything_once(
    broker: Broker, topic_name: str, group: str
) -> None:
    requires(broker, "groups")

    async def body() -> tuple[list[set[TopicPartition]], list[Member]]:
        count = partitions_for(broker, 4)
        everything = {(topic_name, p) for p in range(count)}
        await broker.create_topic(topic_name, TopicSettings(partitions=count))
        events: list[Event] = []
        first = await Member.join(broker, "first", events, group, [topic_name])
        await first.poll()  # subscribed (and, with partitions, owning all of them)
        producer = await broker.producer()
        await producer.send(topic_name, numbered_messages(0, 200, key_space=50))
        await first.poll()  # reads some of several partitions, commits nothing yet
        second = await Member.join(broker, "second", events, group, [topic_name])
        members = [first, second]
        deadline = time.monotonic() + 20
        while True:
            assert time.monotonic() < deadline, f"read {len(first.values + second.values)}"
            polled = [await m.poll() for m in members]
            owned = [await m.consumer.assignment() for m in members]
            if any(polled) or len(first.values + second.values) < 200:
                continue
            if not broker.capabilities.partitions or split_evenly(owned, everything):
                return owned, members

    owned, (first, second) = run_on(broker, body())
    assert first.values and second.values, "each member gets a share"
    assert Counter(first.values + second.values) == Counter(messages(0, 200))
    if broker.capabilities.partitions:
        assert not owned[0] & owned[1]
        assert owned[0] | owned[1] == {(topic_name, p) for p in range(4)}


def test_rebalance_callbacks_hand_partitions_over(
    broker: Broker, topic_name: str, group: str
) -> None:
    """The first member is told it got every partition before it reads; when a second member
    joins, the first is told what it loses (and commits it there) before the second is told it
    got it and before the second reads it."""
    requires(broker, "groups", "partitions")
    everything = {(topic_name, p) for p in range(4)}

    async def body() -> tuple[list[Event], list[Member], list[list[set[TopicPartition]]]]:
        await broker.create_topic(topic_name, TopicSettings(partitions=4))
        producer = await broker.producer()
        for p in range(4):
            await producer.send(topic_name, numbered_messages(10 * p, 10), p)
        events: list[Event] = []
        first = await Member.join(broker, "first", events, group, [topic_name])
        deadline = time.monotonic() + 15
        while not first.values:
            assert time.monotonic() < deadline, "the first member never read anything"
            await first.poll(max_messages=8, timeout=0.5)
        second = await Member.join(broker, "second", events, group, [topic_name])
        members = [first, second]
        while True:
            assert time.monotonic() < deadline, f"the group did not settle: {events}"
            polled = [await m.poll(max_messages=4) for m in members]
            owned = [await m.consumer.assignment() for m in members]
            if not any(polled) and split_evenly(owned, everything):
                break
        told = [set(m.owned) for m in members]  # what the callbacks said, at that point
        # The second leaves (committing what it read): the first gets everything back.
        await second.commit_read()
        await second.consumer.close()
        await producer.send(topic_name, numbered_messages(100, 40, key_space=40))
        while len(first.values + second.values) < 80 or first.owned != everything:
            assert time.monotonic() < deadline, f"the first did not take over: {events}"
            await first.poll()
        return events, members, [owned, told]

    events, (first, second), (owned, told) = run_on(broker, body())
    assert events[0] == ("first", "assigned", everything), events
    assert Counter(first.values + second.values) == Counter(messages(0, 40) + messages(100, 140)), (
        "every message read once by the group"
    )

    def index(name: str, kind: str, tp: TopicPartition) -> int:
        for i, (who, what, detail) in enumerate(events):
            if who == name and what == kind and (tp in detail if kind != "read" else detail == tp):
                return i
        raise AssertionError(f"no {kind} of {tp} for {name}: {events}")

    assert told == owned, "the callbacks told each member what it owns"
    assert owned[1], "the second member got a share"
    for tp in sorted(everything):
        assert index("first", "assigned", tp) < index("first", "read", tp)
    for tp in sorted(owned[1]):
        revoked = index("first", "revoked", tp)
        assigned = index("second", "assigned", tp)
        assert revoked < assigned < index("second", "read", tp), events
        assert not any(e == ("first", "read", tp) for e in events[revoked:assigned]), (
            "the first read a partition after it was revoked"
        )


def test_a_stale_members_commit_is_refused(broker: Broker, topic_name: str, group: str) -> None:
    """A member that has not polled since the group changed commits with CommitFencedError,
    and nothing is committed; once it polled again it commits what it owns."""
    requires(broker, "log", "groups")

    async def body() -> None:
        count = partitions_for(broker, 2)
        await broker.create_topic(topic_name, TopicSettings(partitions=count))
        producer = await broker.producer()
        for p in range(count):
            await producer.send(topic_name, numbered_messages(0, 10), p)
        old = await broker.consumer(group, [topic_name])
        read = await read_until(
            old, lambda got: len({b.partition for b in got}) == count, max_messages=2
        )
        offsets = {(b.topic, b.partition): b.next_offset for b in read}
        newcomer = await broker.consumer(group, [topic_name])
        await newcomer.poll(10, timeout=0.3)  # joins: the group moves on without the old one
        with pytest.raises(CommitFencedError):
            await old.commit(offsets)
        assert await newcomer.committed() == {}, "a refused commit stored nothing"
        assert await old.committed() == {}

        await old.poll(1, timeout=0.05)  # takes the group's new assignment
        mine = {tp: o for tp, o in offsets.items() if tp in await old.assignment()}
        if mine:
            await old.commit(mine)
        assert await newcomer.committed() == mine

    run_on(broker, body())

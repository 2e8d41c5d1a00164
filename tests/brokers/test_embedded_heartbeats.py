"""The heartbeats of one process's consumer group members on an embedded broker file are
written together: about two transactions per heartbeat interval for all of them (a ``serve``
of 25 continuous pipelines wrote 25), every member's row never older than one and a half
intervals when it asks again (half its session timeout), and a member that stops asking (a
hung consumer) still expires once its session timeout has passed. Driven on a clock of the
test's, counting the write transactions."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from omconnect.runtime.brokers.embedded import EmbeddedBroker, _group_store
from omconnect.runtime.brokers.embedded._owner_lock import OwnerLock
from omconnect.runtime.brokers.groups import Subscription

INTERVAL = 1.0
SESSION_MS = 3000  # the consumer heartbeats every third of its session timeout
MEMBERS = 25


class Process:
    """25 members of this process in groups of their own on one broker file, asking for
    heartbeats at times the test sets; the write transactions counted."""

    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        asyncio.run(_create_topic(tmp_path))
        self.now = 1000.0
        self.writes = 0
        monkeypatch.setattr(_group_store, "_clock", lambda: self.now)
        monkeypatch.setattr(_group_store, "now_ms", lambda: int(self.now * 1000))
        transaction = _group_store.write_transaction

        @contextmanager
        def counted(connection: sqlite3.Connection) -> Iterator[None]:
            self.writes += 1
            with transaction(connection):
                yield

        monkeypatch.setattr(_group_store, "write_transaction", counted)
        self.connection = sqlite3.connect(tmp_path / "broker.sqlite", isolation_level=None)
        self.members: list[tuple[str, str]] = []
        self.locks: list[OwnerLock] = []
        for number in range(MEMBERS):
            me = Subscription.new(["t"], None)
            lock = _group_store.member_lock(self.connection, me.member_id)
            lock.acquire()
            self.locks.append(lock)
            _group_store.sync_member(self.connection, f"g{number}", me, SESSION_MS)
            self.members.append((f"g{number}", me.member_id))

    def ask(self, member: tuple[str, str]) -> bool:
        alive, _ = _group_store.heartbeat(self.connection, *member, INTERVAL)
        return alive

    def ages(self) -> dict[tuple[str, str], float]:
        """Seconds since each member's row was last refreshed (members with a row)."""
        rows = self.connection.execute(
            "SELECT group_id, member_id, heartbeat_ms FROM group_members"
        ).fetchall()
        return {(g, m): self.now - beat / 1000 for g, m, beat in rows}

    def close(self) -> None:
        for lock in self.locks:
            lock.release()
        self.connection.close()


async def _create_topic(tmp_path: Path) -> None:
    broker = EmbeddedBroker(tmp_path)
    await broker.create_topic("t")
    await broker.close()


def _asks(members: list[tuple[str, str]], start: float, intervals: int) -> list[tuple[float, int]]:
    """Each member's asks, every interval from a start of its own (spread over the first
    interval, as the members' timers are), in time order."""
    spread = INTERVAL / len(members)
    return sorted(
        (start + number * spread + k * INTERVAL, number)
        for number in range(len(members))
        for k in range(intervals)
    )


def test_one_write_refreshes_every_member_of_the_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    process = Process(tmp_path, monkeypatch)
    try:
        oldest = 0.0
        for k, (at, number) in enumerate(_asks(process.members, process.now + INTERVAL, 9)):
            process.now = at
            if k == MEMBERS:  # after every member's first ask, each a write (none was covered)
                process.writes = 0
            if k >= MEMBERS:  # the test joined them all at once, their first asks spread out
                oldest = max(oldest, *process.ages().values())
            assert process.ask(process.members[number])
        # 8 intervals: a write per member and interval would be 200.
        assert process.writes <= 2 * 8 + 1, process.writes
        assert oldest <= 1.5 * INTERVAL + 1e-6, oldest
        assert len(process.ages()) == MEMBERS
    finally:
        process.close()


def test_a_member_that_stops_asking_expires_within_its_session_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    process = Process(tmp_path, monkeypatch)
    try:
        hung, others = process.members[0], process.members[1:]
        last_ask = 0.0
        for at, number in _asks(process.members, process.now + INTERVAL, 3):
            process.now = at
            process.ask(process.members[number])
            if number == 0:
                last_ask = at
        refreshed: list[float] = []
        for at, number in _asks(others, process.now + INTERVAL / 2, 6):
            process.now = at
            assert process.ask(others[number])
            ages = process.ages()
            if hung in ages:
                refreshed.append(at - ages[hung])
        # Refreshed by the others' writes for at most a quarter interval more than its own
        # interval after its last ask, then expired by one of them a session timeout later.
        assert max(refreshed) <= last_ask + 1.25 * INTERVAL + 1e-6
        assert hung not in process.ages()
        assert process.now >= max(refreshed) + SESSION_MS / 1000
    finally:
        process.close()


def test_a_member_that_left_is_no_longer_refreshed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    process = Process(tmp_path, monkeypatch)
    try:
        for at, number in _asks(process.members, process.now + INTERVAL, 2):
            process.now = at
            process.ask(process.members[number])
        gone = process.members[3]
        _group_store.leave_group(process.connection, *gone)
        process.now += INTERVAL
        assert process.ask(process.members[4])
        assert gone not in process.ages()
        assert not process.ask(gone), "no longer a member: it rejoins on its next poll"
    finally:
        process.close()

"""Consumer groups of the embedded broker in SQL: members, generations, partition owners and
fenced offset commits.

``consumer_groups`` holds each group's generation, when it last changed and a digest of the
partitions its members subscribe to; ``group_members`` one row per live member (last heartbeat,
session timeout, subscription, and the generation at which it last synced its assignment);
``group_partitions`` which member owns each partition now. Whatever changes the member list or
the subscribed partitions bumps the generation in the same transaction, so one generation names
one member list and one partition list and every member computes the same assignment from it.

A member expires when its process is gone, at the next sync of any member or within a
heartbeat interval (one heartbeat per process and interval looks for dead members): each
member holds its ``_owner_lock`` (kind ``members``) from before its row is written until after it
leaves, and the kernel drops it when the process dies, even by SIGKILL. A member whose process
is alive but silent (stopped, hung, or on a system without ``flock``) expires once it has not
heartbeaten for its session timeout. The heartbeats of one process's members on one file are
written together: one transaction every half interval or so refreshes every member of the
process that asked for a heartbeat within its interval (``heartbeat``), instead of one
transaction per member and interval.

Every function takes the connection first and runs on that connection's thread (see
``_sqlite_thread``); writes are one ``BEGIN IMMEDIATE`` transaction each.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Mapping, Set
from dataclasses import dataclass, field
from pathlib import Path

from omconnect.runtime.brokers.base import CommitFencedError, TopicPartition
from omconnect.runtime.brokers.embedded._owner_lock import MEMBERS, OwnerLock, owner_is_alive
from omconnect.runtime.brokers.embedded._sqlite_transaction import write_transaction
from omconnect.runtime.brokers.embedded._transactions import log_path
from omconnect.runtime.brokers.groups import (
    Subscription,
    partitions_digest,
    range_assignment,
    subscribed_counts,
)


@dataclass(frozen=True)
class ExpiredMember:
    """A member removed by someone else's sync or heartbeat.

    Attributes:
        group: its group.
        member_id: its id.
        process_gone: its process died (its lock was free); else it was silent for longer
            than its session timeout.
    """

    group: str
    member_id: str
    process_gone: bool


@dataclass(frozen=True)
class GroupView:
    """The group as one member synced it, in one transaction.

    Attributes:
        generation: the group's generation, now also the member's.
        members: every live member's subscription, sorted by member id.
        assignment: the member's share of the partitions at this generation.
        owned: the partitions the owner table gives the member now (a share it has not
            claimed yet is missing; so is one taken from it after it missed a handover).
        expired: the dead or silent members this sync removed (of any group: a member of a
            group nobody polls any more is cleaned up too).
    """

    generation: int
    members: tuple[Subscription, ...]
    assignment: frozenset[TopicPartition]
    owned: frozenset[TopicPartition]
    expired: tuple[ExpiredMember, ...]


@dataclass(frozen=True)
class _Owner:
    member_id: str
    generation: int | None  # None: the member is gone
    session_ms: int


def now_ms() -> int:
    return int(time.time() * 1000)


def topic_partition_counts(connection: sqlite3.Connection) -> dict[str, int]:
    """Every topic's partition count."""
    rows = connection.execute("SELECT name, partitions FROM topics").fetchall()
    return {name: int(count) for name, count in rows}


def topics_token(connection: sqlite3.Connection) -> tuple[int, int]:
    """Changes whenever a topic is created or its partition count changes; cheap enough to
    read on every poll."""
    count, partitions = connection.execute(
        "SELECT count(*), coalesce(sum(partitions), 0) FROM topics"
    ).fetchone()
    return int(count), int(partitions)


def sync_member(
    connection: sqlite3.Connection, group: str, me: Subscription, session_ms: int
) -> GroupView:
    """Join ``group`` (or refresh the membership), expire dead and silent members, bump the
    generation if the members or their partitions changed, and record that ``me`` synced at
    it. The caller holds ``me``'s member lock (see ``member_lock``)."""
    now = now_ms()
    with write_transaction(connection):
        expired = _expire(connection, now)
        connection.execute(
            "INSERT OR IGNORE INTO consumer_groups (group_id, generation, changed_ms, digest) "
            "VALUES (?, 0, ?, '')",
            (group, now),
        )
        refreshed = connection.execute(
            "UPDATE group_members SET heartbeat_ms = ? WHERE group_id = ? AND member_id = ?",
            (now, group, me.member_id),
        ).rowcount
        if not refreshed:
            connection.execute(
                "INSERT INTO group_members (group_id, member_id, joined_ms, heartbeat_ms, "
                "session_ms, topics, pattern, generation) VALUES (?, ?, ?, ?, ?, ?, ?, -1)",
                (group, me.member_id, now, now, session_ms, json.dumps(me.topics), me.pattern),
            )
        members = _members(connection, group)
        counts = subscribed_counts(members, topic_partition_counts(connection))
        digest = partitions_digest(counts)
        generation, stored_digest = connection.execute(
            "SELECT generation, digest FROM consumer_groups WHERE group_id = ?", (group,)
        ).fetchone()
        if not refreshed or digest != stored_digest:
            generation += 1
            connection.execute(
                "UPDATE consumer_groups SET generation = ?, changed_ms = ?, digest = ? "
                "WHERE group_id = ?",
                (generation, now, digest, group),
            )
        connection.execute(
            "UPDATE group_members SET generation = ? WHERE group_id = ? AND member_id = ?",
            (generation, group, me.member_id),
        )
        owned = _owned_by(connection, group, me.member_id)
    assignment = range_assignment(members, counts)[me.member_id]
    return GroupView(
        int(generation), tuple(members), frozenset(assignment), frozenset(owned), expired
    )


def group_state(
    connection: sqlite3.Connection, group: str, member_id: str
) -> tuple[int, str] | None:
    """The group's generation and partition digest, or None when ``member_id`` is no longer
    one of its members."""
    row = connection.execute(
        "SELECT g.generation, g.digest FROM consumer_groups g JOIN group_members m "
        "ON m.group_id = g.group_id AND m.member_id = ? WHERE g.group_id = ?",
        (member_id, group),
    ).fetchone()
    return None if row is None else (int(row[0]), str(row[1]))


def claimable(
    connection: sqlite3.Connection, group: str, member_id: str, wanted: Set[TopicPartition]
) -> bool:
    """Whether ``claim_partitions`` would now get at least one of ``wanted``."""
    owners = _owners(connection, group)
    generation, changed_ms = _generation(connection, group)
    now = now_ms()
    return any(
        tp not in owners or _can_take(owners[tp], member_id, generation, changed_ms, now)
        for tp in wanted
    )


def claim_partitions(
    connection: sqlite3.Connection,
    group: str,
    member_id: str,
    keep: Set[TopicPartition],
    wanted: Set[TopicPartition],
) -> set[TopicPartition]:
    """Release the member's partitions outside ``keep`` and ``wanted``, and take those of
    ``wanted`` that are free or whose owner missed the handover; returns what it took.

    An owner misses the handover when it has not synced since the group changed, for longer
    than its session timeout: a member busy for minutes keeps its membership but not the
    partitions the group moved away from it.
    """
    now = now_ms()
    gained: set[TopicPartition] = set()
    with write_transaction(connection):
        if not _is_member(connection, group, member_id):
            return gained
        release = _owned_by(connection, group, member_id) - keep - wanted
        connection.executemany(
            "DELETE FROM group_partitions WHERE group_id = ? AND topic = ? AND partition = ?",
            [(group, t, p) for t, p in release],
        )
        owners = _owners(connection, group)
        generation, changed_ms = _generation(connection, group)
        for tp in sorted(wanted):
            owner = owners.get(tp)
            if owner is not None and not _can_take(owner, member_id, generation, changed_ms, now):
                continue
            connection.execute(
                "INSERT INTO group_partitions (group_id, topic, partition, member_id) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (group_id, topic, partition) "
                "DO UPDATE SET member_id = excluded.member_id",
                (group, tp[0], tp[1], member_id),
            )
            gained.add(tp)
    return gained


def heartbeat(
    connection: sqlite3.Connection, group: str, member_id: str, sweep_every: float = 0.0
) -> tuple[bool, tuple[ExpiredMember, ...]]:
    """Record that the member is alive, heartbeating every ``sweep_every`` seconds, and
    expire the silent members (of any group), and the dead ones too unless a heartbeat of
    this process looked for them on the same log less than ``sweep_every`` seconds ago.

    One write refreshes every member of this process on the log that asked for a heartbeat
    within its own interval (a little more, for a late timer), and a member whose last ask
    was refreshed by such a write less than half its interval ago writes nothing: about two
    transactions per interval for the process, where each of the 25 members of a ``serve``
    wrote one. A member's row is at most one and a half intervals old when it asks (half the
    session timeout: Kafka's heartbeat is a third of it), and one that stops asking (a hung
    consumer) is refreshed for at most one and a quarter intervals after its last ask
    (``_LATE_TIMER_FACTOR``): its session timeout still runs from about then. A member of
    another process is untouched.

    Looking for dead members costs an ``open`` and a ``flock`` attempt per member of every
    group, so the 25 members of a ``serve`` heartbeating each on its own did it 25 times over
    per interval; one look per interval per process finds a dead member as soon. A member
    whose group has live members is found dead sooner anyway, by their polls.

    Returns:
        Whether the member still belongs to the group, and the members expired now.
    """
    log = log_path(connection)
    beats = _beats_of(log)
    me = (group, member_id)
    now = _clock()
    with _beats_lock:
        beats.asked[me] = (now, sweep_every)
        covered = beats.covered.get(me)
        if covered is not None and now - beats.written < sweep_every / 2:
            return covered, ()
        # This call writes for every member asking now: drop those that stopped asking.
        due = {
            member: every
            for member, (asked, every) in beats.asked.items()
            if now - asked <= every * _LATE_TIMER_FACTOR
        }
        beats.asked = {member: beats.asked[member] for member in due}
        beats.covered = {}  # until the write is done, nobody counts as refreshed
    written_ms = now_ms()
    sweep = _sweep_due(log, sweep_every)
    alive: dict[tuple[str, str], bool] = {}
    with write_transaction(connection):
        for member in sorted(due):
            alive[member] = bool(
                connection.execute(
                    "UPDATE group_members SET heartbeat_ms = ? "
                    "WHERE group_id = ? AND member_id = ?",
                    (written_ms, *member),
                ).rowcount
            )
        expired = _expire(connection, written_ms, look_for_dead=sweep)
    gone = {(member.group, member.member_id) for member in expired}
    with _beats_lock:
        beats.written = now
        beats.covered = {member: alive[member] and member not in gone for member in alive}
    return beats.covered[me], expired


def forget_heartbeats(connection: sqlite3.Connection, group: str, member_id: str) -> None:
    """No more heartbeats of this process's member ``member_id`` of ``group`` (it left)."""
    beats = _beats_of(log_path(connection))
    with _beats_lock:
        beats.asked.pop((group, member_id), None)
        beats.covered.pop((group, member_id), None)


_LATE_TIMER_FACTOR = 1.25
"""A member counts as asking for heartbeats until this many of its intervals after its last
ask: a timer is a little late under load, and a member left out of a write writes again."""
_clock = time.monotonic


@dataclass
class _Heartbeats:
    """This process's members heartbeating on one log file.

    Attributes:
        asked: per member (group, member id), when it last asked for a heartbeat (``_clock``)
            and its interval.
        written: when the last write for all of them began (``_clock``).
        covered: the members that write refreshed, and whether each still had its row.
    """

    asked: dict[tuple[str, str], tuple[float, float]] = field(default_factory=dict)
    written: float = 0.0
    covered: dict[tuple[str, str], bool] = field(default_factory=dict)


def _beats_of(log: Path) -> _Heartbeats:
    with _beats_lock:
        return _beats.setdefault(log, _Heartbeats())


_beats: dict[Path, _Heartbeats] = {}
_beats_lock = threading.Lock()

# When a heartbeat of this process last looked for dead members, per log file.
_swept: dict[Path, float] = {}
_swept_lock = threading.Lock()


def _sweep_due(log: Path, every: float) -> bool:
    now = time.monotonic()
    with _swept_lock:
        last = _swept.get(log)
        if last is not None and now - last < every:
            return False
        _swept[log] = now
        return True


def member_lock(connection: sqlite3.Connection, member_id: str) -> OwnerLock:
    """The lock a member holds while it is alive; acquire it before the member first syncs
    and release it after it left."""
    return OwnerLock(log_path(connection), member_id, MEMBERS)


def dead_member_in(connection: sqlite3.Connection, group: str, member_id: str) -> bool:
    """Whether another member of ``group`` has its process gone, so that a sync would expire
    it now; read-only, one ``open`` and ``flock`` attempt per member."""
    rows = connection.execute(
        "SELECT member_id FROM group_members WHERE group_id = ? AND member_id != ?",
        (group, member_id),
    ).fetchall()
    if not rows:
        return False
    log = log_path(connection)
    return any(not owner_is_alive(log, str(other), MEMBERS) for (other,) in rows)


def leave_group(connection: sqlite3.Connection, group: str, member_id: str) -> None:
    """Remove the member and release its partitions; the others rebalance."""
    forget_heartbeats(connection, group, member_id)
    now = now_ms()
    with write_transaction(connection):
        left = connection.execute(
            "DELETE FROM group_members WHERE group_id = ? AND member_id = ?", (group, member_id)
        ).rowcount
        connection.execute(
            "DELETE FROM group_partitions WHERE group_id = ? AND member_id = ?",
            (group, member_id),
        )
        if left:
            _bump_or_drop(connection, group, now)


def commit_offsets(
    connection: sqlite3.Connection,
    group: str,
    member_id: str | None,
    offsets: Mapping[TopicPartition, int],
) -> None:
    """Store ``offsets`` as the group's next offsets if the member may, in one transaction.

    ``member_id`` None is a consumer that never joined: it may commit only while the group has
    no live member (offset resets of a stopped pipeline), as Kafka accepts commits from outside
    an empty group.

    Raises:
        CommitFencedError: the member left or expired, the group moved to a newer generation
            since the member synced, or a partition is not the member's; nothing was written.
    """
    now = now_ms()
    with write_transaction(connection):
        if member_id is None:
            _expire(connection, now)
            (live,) = connection.execute(
                "SELECT count(*) FROM group_members WHERE group_id = ?", (group,)
            ).fetchone()
            if live:
                raise CommitFencedError(
                    f"consumer group {group!r} has {live} active member(s): a consumer that "
                    "has not joined it (by polling) cannot commit its offsets"
                )
        else:
            _check_member_may_commit(connection, group, member_id, offsets)
        connection.executemany(
            "INSERT INTO group_offsets (group_id, topic, partition, next_offset) "
            "VALUES (?, ?, ?, ?) ON CONFLICT (group_id, topic, partition) "
            "DO UPDATE SET next_offset = excluded.next_offset",
            [(group, t, int(p), int(offset)) for (t, p), offset in offsets.items()],
        )


def _check_member_may_commit(
    connection: sqlite3.Connection,
    group: str,
    member_id: str,
    offsets: Mapping[TopicPartition, int],
) -> None:
    row = connection.execute(
        "SELECT m.generation, g.generation FROM group_members m JOIN consumer_groups g "
        "ON g.group_id = m.group_id WHERE m.group_id = ? AND m.member_id = ?",
        (group, member_id),
    ).fetchone()
    if row is None:
        raise CommitFencedError(
            f"commit refused: this consumer is no longer a member of group {group!r} "
            "(it left, or missed its heartbeats and expired)"
        )
    synced, current = int(row[0]), int(row[1])
    if synced != current:
        raise CommitFencedError(
            f"commit refused: group {group!r} moved to generation {current} since this "
            f"member synced at {synced}; poll to take the new assignment"
        )
    foreign = sorted(set(offsets) - _owned_by(connection, group, member_id))
    if foreign:
        raise CommitFencedError(
            f"commit refused: group {group!r} does not assign {foreign} to this member"
        )


def _members(connection: sqlite3.Connection, group: str) -> list[Subscription]:
    rows = connection.execute(
        "SELECT member_id, topics, pattern FROM group_members WHERE group_id = ? "
        "ORDER BY member_id",
        (group,),
    ).fetchall()
    return [Subscription(m, tuple(json.loads(topics)), pattern) for m, topics, pattern in rows]


def _is_member(connection: sqlite3.Connection, group: str, member_id: str) -> bool:
    return (
        connection.execute(
            "SELECT 1 FROM group_members WHERE group_id = ? AND member_id = ?",
            (group, member_id),
        ).fetchone()
        is not None
    )


def _owned_by(connection: sqlite3.Connection, group: str, member_id: str) -> set[TopicPartition]:
    rows = connection.execute(
        "SELECT topic, partition FROM group_partitions WHERE group_id = ? AND member_id = ?",
        (group, member_id),
    ).fetchall()
    return {(t, int(p)) for t, p in rows}


def _owners(connection: sqlite3.Connection, group: str) -> dict[TopicPartition, _Owner]:
    rows = connection.execute(
        "SELECT o.topic, o.partition, o.member_id, m.generation, m.session_ms "
        "FROM group_partitions o LEFT JOIN group_members m "
        "ON m.group_id = o.group_id AND m.member_id = o.member_id WHERE o.group_id = ?",
        (group,),
    ).fetchall()
    return {
        (t, int(p)): _Owner(member, None if gen is None else int(gen), int(session or 0))
        for t, p, member, gen, session in rows
    }


def _generation(connection: sqlite3.Connection, group: str) -> tuple[int, int]:
    row = connection.execute(
        "SELECT generation, changed_ms FROM consumer_groups WHERE group_id = ?", (group,)
    ).fetchone()
    return (0, 0) if row is None else (int(row[0]), int(row[1]))


def _can_take(owner: _Owner, member_id: str, generation: int, changed_ms: int, now: int) -> bool:
    if owner.member_id == member_id or owner.generation is None:
        return True
    # The owner synced at the current generation: it is revoking the partition right now,
    # and releases it when its listener returns.
    return owner.generation < generation and now - changed_ms >= owner.session_ms


def _expire(
    connection: sqlite3.Connection, now: int, look_for_dead: bool = True
) -> tuple[ExpiredMember, ...]:
    """Remove every member whose process is gone (unless not ``look_for_dead``) or that was
    silent for longer than its session timeout, release its partitions and move its group to
    a new generation.

    One ``open`` and ``flock`` attempt per member looked at; this runs on syncs and
    heartbeats (and commits from outside the group), never on a plain poll.
    """
    silent_only = "" if look_for_dead else "WHERE heartbeat_ms + session_ms < ? "
    rows = connection.execute(
        "SELECT group_id, member_id, heartbeat_ms + session_ms < ? FROM group_members "
        f"{silent_only}ORDER BY group_id, member_id",
        (now,) if look_for_dead else (now, now),
    ).fetchall()
    if not rows:
        return ()
    log = log_path(connection)
    expired = []
    for group, member_id, silent in rows:
        # Checked for silent members too: that deletes a dead member's lock file.
        alive = owner_is_alive(log, str(member_id), MEMBERS)
        if silent or not alive:
            expired.append(ExpiredMember(str(group), str(member_id), process_gone=not alive))
    for member in expired:
        connection.execute(
            "DELETE FROM group_members WHERE group_id = ? AND member_id = ?",
            (member.group, member.member_id),
        )
        connection.execute(
            "DELETE FROM group_partitions WHERE group_id = ? AND member_id = ?",
            (member.group, member.member_id),
        )
    for group in sorted({member.group for member in expired}):
        _bump_or_drop(connection, group, now)
    return tuple(expired)


def _bump_or_drop(connection: sqlite3.Connection, group: str, now: int) -> None:
    # An empty group keeps nothing but its committed offsets (a `topics tail` makes a new
    # group each time). Dropping the generation is safe: every fence also checks membership.
    (members,) = connection.execute(
        "SELECT count(*) FROM group_members WHERE group_id = ?", (group,)
    ).fetchone()
    if members:
        connection.execute(
            "UPDATE consumer_groups SET generation = generation + 1, changed_ms = ? "
            "WHERE group_id = ?",
            (now, group),
        )
    else:
        connection.execute("DELETE FROM consumer_groups WHERE group_id = ?", (group,))
        connection.execute("DELETE FROM group_partitions WHERE group_id = ?", (group,))

"""How fresh a pipeline's data is, and whether a quiet pipeline is idle or stuck.

Derived at each request from the times the run recorded (``RunTimes``), so it costs nothing
between requests. The states, for a running pipeline (None otherwise):

* ``stalled``: a task sent no heartbeat (a ``poll`` that returned, even empty) for longer
  than ``stalled_after`` seconds: it is stuck in a call, or retrying one that fails;
* ``lagging``: the sink's consumer lag rose at each of its last samples;
* ``idle``: heartbeats arrive but no record came for ``idle_after`` seconds: there is
  nothing to read;
* ``active``: records arrive.

A task that never sent a heartbeat counts from when it started; the source tasks of a run
whose source is done are never stalled. The two thresholds are ``serve``'s ``--idle-after``
and ``--stalled-after`` (default 10 s and 60 s), or a pipeline's own ``freshness:`` setting.
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass
from typing import Any

from omconnect.runtime.worker.metrics import RunTimes, TaskTimes

STALLED_AFTER_SECONDS = 60.0
IDLE_AFTER_SECONDS = 10.0


class Freshness(enum.StrEnum):
    """What a running pipeline is doing, as far as its times tell."""

    ACTIVE = "active"
    IDLE = "idle"
    STALLED = "stalled"
    LAGGING = "lagging"


@dataclass(frozen=True)
class FreshnessPolicy:
    """The thresholds that turn times into a ``Freshness``, in seconds."""

    stalled_after: float = STALLED_AFTER_SECONDS
    idle_after: float = IDLE_AFTER_SECONDS

    def __post_init__(self) -> None:
        for name in ("stalled_after", "idle_after"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive seconds, not {getattr(self, name)}")

    def overridden(
        self, stalled_after: float | None = None, idle_after: float | None = None
    ) -> FreshnessPolicy:
        """This policy with the thresholds that are not None replaced (a pipeline's own
        ``freshness:`` over ``serve``'s)."""
        return FreshnessPolicy(
            self.stalled_after if stalled_after is None else stalled_after,
            self.idle_after if idle_after is None else idle_after,
        )


DEFAULT_POLICY = FreshnessPolicy()


@dataclass(frozen=True)
class TaskReport:
    """One task's ages in seconds (None: never happened) and state."""

    name: str
    since_heartbeat: float
    since_record: float | None
    state: Freshness | None

    def as_json(self) -> dict[str, Any]:
        return {
            "seconds_since_heartbeat": _rounded(self.since_heartbeat),
            "seconds_since_record": _rounded(self.since_record),
            "state": self.state.value if self.state is not None else None,
        }


@dataclass(frozen=True)
class FreshnessReport:
    """A pipeline's freshness at one moment (see the module doc)."""

    state: Freshness | None
    since_record: float | None
    since_heartbeat: float | None
    event_to_ack: float | None
    event_to_flush: float | None
    consumer_lag: int | None
    tasks: tuple[TaskReport, ...] = ()

    def as_json(self) -> dict[str, Any]:
        return {
            "state": self.state.value if self.state is not None else None,
            "seconds_since_record": _rounded(self.since_record),
            "seconds_since_heartbeat": _rounded(self.since_heartbeat),
            "event_to_ack_seconds": _rounded(self.event_to_ack),
            "event_to_flush_seconds": _rounded(self.event_to_flush),
            "consumer_lag": self.consumer_lag,
            "tasks": {task.name: task.as_json() for task in self.tasks},
        }


NO_RUN = FreshnessReport(None, None, None, None, None, None)


def freshness_report(
    times: RunTimes | None,
    running: bool,
    source_done: bool = False,
    policy: FreshnessPolicy = DEFAULT_POLICY,
    now: float | None = None,
) -> FreshnessReport:
    """The freshness of the run that recorded ``times`` (the last run, when it has ended:
    then ``running`` is false and there is no state), at ``now`` (``time.monotonic()``)."""
    if times is None:
        return NO_RUN
    now = time.monotonic() if now is None else now
    tasks = tuple(
        _task_report(
            name, task, running and not (source_done and task.kind == "source"), policy, now
        )
        for name, task in sorted(times.tasks.items())
    )
    sources = [t for t in tasks if times.tasks[t.name].kind == "source"] or list(tasks)
    record_ages = [t.since_record for t in sources if t.since_record is not None]
    state = None
    if running:
        if any(t.state is Freshness.STALLED for t in tasks):
            state = Freshness.STALLED
        elif times.lag_growing:
            state = Freshness.LAGGING
        elif any(t.state is Freshness.ACTIVE for t in sources):
            state = Freshness.ACTIVE
        else:
            state = Freshness.IDLE
    return FreshnessReport(
        state=state,
        since_record=min(record_ages) if record_ages else None,
        since_heartbeat=max((t.since_heartbeat for t in tasks), default=None),
        event_to_ack=times.event_to_ack,
        event_to_flush=times.event_to_flush,
        consumer_lag=times.consumer_lag,
        tasks=tasks,
    )


def _task_report(
    name: str, task: TaskTimes, watched: bool, policy: FreshnessPolicy, now: float
) -> TaskReport:
    since_heartbeat = now - (task.last_heartbeat or task.started)
    since_record = None if task.last_record is None else now - task.last_record
    state = None
    if watched:
        if since_heartbeat > policy.stalled_after:
            state = Freshness.STALLED
        elif since_record is None or since_record > policy.idle_after:
            state = Freshness.IDLE
        else:
            state = Freshness.ACTIVE
    return TaskReport(name, since_heartbeat, since_record, state)


def _rounded(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 3)

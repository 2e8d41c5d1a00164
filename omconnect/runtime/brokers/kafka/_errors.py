"""From librdkafka's errors to the contract's, each as one line a person can act on."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable

from confluent_kafka import KafkaError, KafkaException

from omconnect.runtime.brokers.base import BrokerError, CommitFencedError

# A commit refused because the group moved on without this member (Kafka's generation and
# member checks, and librdkafka's view of a lost assignment).
_FENCED = frozenset(
    {
        KafkaError.ILLEGAL_GENERATION,
        KafkaError.UNKNOWN_MEMBER_ID,
        KafkaError.REBALANCE_IN_PROGRESS,
        KafkaError.FENCED_INSTANCE_ID,
        KafkaError._ASSIGNMENT_LOST,
        KafkaError.STALE_MEMBER_EPOCH,
    }
)
_TRANSPORT = frozenset(
    {
        KafkaError._TRANSPORT,
        KafkaError._ALL_BROKERS_DOWN,
        KafkaError._RESOLVE,
        KafkaError._TIMED_OUT,
        KafkaError._MSG_TIMED_OUT,
    }
)


class ConnectionProblems:
    """Keeps the last few connection errors librdkafka reported (its ``error_cb``, called on
    whichever thread serves the client), so a failure can say what went wrong."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: deque[str] = deque(maxlen=8)

    def note(self, error: KafkaError) -> None:
        if error.code() in _TRANSPORT:
            with self._lock:
                self._seen.append(error.str())

    def last(self) -> str | None:
        with self._lock:
            for text in reversed(self._seen):
                if "brokers are down" not in text:
                    return text
            return self._seen[-1] if self._seen else None


def unreachable(servers: str, seconds: float, problems: ConnectionProblems) -> BrokerError:
    """No broker answered at ``servers`` within ``seconds``."""
    detail = problems.last()
    cause = f" ({_one_line(detail)})" if detail else ""
    return BrokerError(
        f"kafka: no broker answered at {servers} within {seconds:g} s{cause}; check that "
        "the Kafka broker is running and that the URL names its host and port"
    )


def broker_error(what: str, error: BaseException) -> BrokerError:
    """``what`` failed with a librdkafka error (or another exception)."""
    if isinstance(error, KafkaException) and isinstance(error.args[0], KafkaError):
        return BrokerError(f"kafka: {what} failed: {_one_line(error.args[0].str())}")
    return BrokerError(f"kafka: {what} failed: {_one_line(str(error)) or type(error).__name__}")


def is_fenced(error: KafkaException) -> bool:
    code = error.args[0].code() if isinstance(error.args[0], KafkaError) else None
    return code in _FENCED


def commit_error(error: KafkaException, group: str) -> BrokerError:
    """The error of a refused commit: ``CommitFencedError`` when the group moved on."""
    if is_fenced(error):
        return CommitFencedError(
            f"kafka: group {group!r} refused the commit: {_one_line(error.args[0].str())} "
            "(this member is stale: it polls again to take the group's new assignment)"
        )
    return broker_error(f"committing offsets of group {group!r}", error)


def fenced(group: str, why: str, partitions: Iterable[tuple[str, int]] = ()) -> CommitFencedError:
    listed = ", ".join(f"{t}[{p}]" for t, p in sorted(partitions))
    which = f" ({listed})" if listed else ""
    return CommitFencedError(f"kafka: group {group!r}: commit refused{which}: {why}")


def _one_line(text: str | None) -> str:
    return " ".join((text or "").split())

"""How long a failed continuous pipeline waits before ``serve`` starts it again."""

from __future__ import annotations

from dataclasses import dataclass

INITIAL_DELAY = 1.0
MAX_DELAY = 60.0


@dataclass
class RestartBackoff:
    """Exponential backoff: ``initial`` seconds, doubling after each failure up to ``maximum``.

    A run that stayed up for at least ``maximum`` seconds counts as healthy: the next failure
    waits ``initial`` again. A manual restart resets it too.
    """

    initial: float = INITIAL_DELAY
    maximum: float = MAX_DELAY

    def __post_init__(self) -> None:
        if not 0 < self.initial <= self.maximum:
            raise ValueError("backoff needs 0 < initial <= maximum")
        self._next = self.initial

    def after_failure(self, run_seconds: float) -> float:
        """The delay before the next start, given how long the failed run was up."""
        if run_seconds >= self.maximum:
            self._next = self.initial
        delay = self._next
        self._next = min(self.maximum, self._next * 2)
        return delay

    def reset(self) -> None:
        self._next = self.initial

"""The knobs of one pipeline's loops, taken from its pipeline file."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LoopSettings:
    """Batching, back-pressure, commit and retry settings shared by the source and sink loops."""

    topic: str
    once: bool = False
    max_rows: int = 50_000
    max_bytes: int = 16 * 1024 * 1024
    linger: float = 0.2
    max_in_flight_bytes: int = 128 * 1024 * 1024
    commit_interval: float = 5.0
    retry_timeout: float = 300.0
    retry_max_delay: float = 60.0
    exactly_once: bool = False

    def topic_for(self, stream: str | None) -> str:
        """The topic of a batch: ``<topic>.<stream>`` for multi-stream sources."""
        return f"{self.topic}.{stream}" if stream else self.topic

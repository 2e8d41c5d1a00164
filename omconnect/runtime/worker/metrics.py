"""Counters of one pipeline run, read by the progress display and the logs."""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass
class PipelineMetrics:
    """Monotonic counters; written by the loops on the event loop thread only."""

    pipeline: str
    started: float = field(default_factory=time.monotonic)
    rows_polled: int = 0
    rows_published: int = 0
    bytes_published: int = 0
    rows_consumed: int = 0
    rows_written: int = 0
    rows_dead_lettered: int = 0
    source_commits: int = 0
    source_rewinds: int = 0
    sink_commits: int = 0
    source_done: bool = False
    sink_done: bool = False

    @property
    def elapsed(self) -> float:
        return max(1e-9, time.monotonic() - self.started)

    def counts(self) -> dict[str, int]:
        """Every counter by the name an orchestrator reports it under (``records_read``,
        ``bytes_published``, ...): Airflow's XCom, Dagster's materialisation metadata."""
        return {
            "records_read": self.rows_polled,
            "records_published": self.rows_published,
            "bytes_published": self.bytes_published,
            "records_consumed": self.rows_consumed,
            "records_written": self.rows_written,
            "dead_letters": self.rows_dead_lettered,
            "source_commits": self.source_commits,
            "sink_commits": self.sink_commits,
        }

    def summary(self) -> str:
        rate = self.rows_written / self.elapsed if self.rows_written else 0.0
        return (
            f"pipeline={self.pipeline} read={self.rows_polled} published={self.rows_published} "
            f"written={self.rows_written} dead_lettered={self.rows_dead_lettered} "
            f"elapsed={self.elapsed:.1f}s write_rate={rate:,.0f} rows/s"
        )

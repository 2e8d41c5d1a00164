"""Progress while a pipeline runs: a live line on a terminal, periodic log lines otherwise."""

from __future__ import annotations

import asyncio
import logging
import sys

from omconnect.runtime.worker.metrics import PipelineMetrics
from omconnect.runtime.worker.waiting import wait_for_event

LOG_PERIOD = 5.0

log = logging.getLogger("omconnect.progress")


async def report_progress(metrics: PipelineMetrics, done: asyncio.Event) -> None:
    """Show ``metrics`` until ``done`` is set."""
    if sys.stderr.isatty():
        await _live(metrics, done)
    else:
        await _log_lines(metrics, done)


async def _live(metrics: PipelineMetrics, done: asyncio.Event) -> None:
    from rich.console import Console
    from rich.live import Live

    console = Console(stderr=True)
    with Live(console=console, refresh_per_second=4, transient=True) as live:
        while not done.is_set():
            live.update(_line(metrics))
            await wait_for_event(done, 0.25)


async def _log_lines(metrics: PipelineMetrics, done: asyncio.Event) -> None:
    while not done.is_set():
        await wait_for_event(done, LOG_PERIOD)
        if not done.is_set():
            log.info("%s", metrics.summary())


def _line(m: PipelineMetrics) -> str:
    read_rate = m.rows_polled / m.elapsed
    write_rate = m.rows_written / m.elapsed
    return (
        f"[bold]{m.pipeline}[/bold]  read {m.rows_polled:,} ({read_rate:,.0f}/s)  "
        f"published {m.rows_published:,}  written {m.rows_written:,} ({write_rate:,.0f}/s)  "
        f"dead letters {m.rows_dead_lettered:,}  {m.elapsed:.1f}s"
    )

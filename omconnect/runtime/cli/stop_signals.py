"""SIGINT and SIGTERM for long-running commands: the first stops cleanly, the second at once.

A stop always ends: if the process is still there ``HARD_STOP_AFTER`` seconds after the first
signal (a connector call that never returns holds a run), it logs what it abandons and exits
with status 1. Positions are committed only after what they cover was delivered, so what the
abandoned run had not committed is delivered again by the next one, never lost.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import threading

from omconnect.runtime.worker.task_thread import busy_task_threads

log = logging.getLogger("omconnect.signals")

HARD_STOP_AFTER = 15.0
"""Seconds from the first signal to the exit, however the stop is going."""

EXIT_ABANDONED = 1
EXIT_SECOND_SIGNAL = 130


def stop_on_signals(stop: asyncio.Event, hard_stop_after: float = HARD_STOP_AFTER) -> None:
    """Set ``stop`` on the first SIGINT/SIGTERM, and exit ``hard_stop_after`` seconds later if
    the process has not ended by then; exit with 130 on the second signal without waiting (a
    clean interpreter exit would wait for the pipelines' threads again)."""
    loop = asyncio.get_running_loop()
    received = 0

    def on_signal() -> None:
        nonlocal received
        received += 1
        if received > 1:
            log.warning("second signal: exiting without a clean stop")
            exit_now(EXIT_SECOND_SIGNAL)
        log.info("stopping: finishing what is in flight (signal again to exit at once)")
        stop.set()
        deadline = threading.Timer(hard_stop_after, _give_up, args=(hard_stop_after,))
        deadline.daemon = True
        deadline.name = "omconnect-stop-deadline"
        deadline.start()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)


def exit_abandoning(what: list[str]) -> None:
    """Exit at once with status 1 after logging ``what`` the stop could not end."""
    log.error("exiting without waiting for: %s", "; ".join(what) or "nothing known")
    exit_now(EXIT_ABANDONED)


def exit_now(status: int) -> None:
    """End the process now: threads stuck in connector calls are not waited for."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def _give_up(seconds: float) -> None:
    stuck = busy_task_threads()
    log.error(
        "did not stop within %.0fs of the signal: exiting, abandoning %s",
        seconds,
        "; ".join(stuck) or "the run still in progress",
    )
    exit_now(EXIT_ABANDONED)

"""SIGINT and SIGTERM for long-running commands: the first stops cleanly, the second at once."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys

log = logging.getLogger("omconnect.signals")


def stop_on_signals(stop: asyncio.Event) -> None:
    """Set ``stop`` on the first SIGINT/SIGTERM; exit with 130 on the second without waiting
    (a clean interpreter exit would wait for the pipelines' threads again)."""
    loop = asyncio.get_running_loop()
    received = 0

    def on_signal() -> None:
        nonlocal received
        received += 1
        if received > 1:
            log.warning("second signal: exiting without a clean stop")
            sys.stderr.flush()
            os._exit(130)
        log.info("stopping: finishing what is in flight (signal again to exit at once)")
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)

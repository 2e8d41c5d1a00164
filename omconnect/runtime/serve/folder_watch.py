"""Re-reading the pipelines folder when its files change, and at once on SIGHUP.

The watcher compares the folder's pipeline files (name, size, modification time) every
``POLL_INTERVAL`` seconds, which needs no file-notification library and costs a directory
listing; when they differ, or when ``reload_now`` is set (SIGHUP), it calls
``Supervisor.reload_folder``, which applies what changed and leaves the other pipelines
alone. A folder that cannot be read is logged and the pipelines run on.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from omconnect.runtime.config.loader import pipeline_files
from omconnect.runtime.serve.pipeline_folder import PipelineFolderError
from omconnect.runtime.serve.supervisor import Supervisor
from omconnect.runtime.worker.waiting import wait_for_event

log = logging.getLogger("omconnect.serve")

POLL_INTERVAL = 2.0

Snapshot = dict[str, tuple[int, int]]
"""File path -> (size, modification time in ns)."""


def folder_snapshot(folder: Path) -> Snapshot:
    """The pipeline files of ``folder`` with their sizes and modification times (empty when
    the folder cannot be listed)."""
    found: Snapshot = {}
    try:
        files = pipeline_files(folder)
    except OSError:
        return found
    for path in files:
        try:
            stat = path.stat()
        except OSError:  # removed between the listing and now
            continue
        found[str(path)] = (stat.st_size, stat.st_mtime_ns)
    return found


async def watch_folder(
    supervisor: Supervisor,
    folder: Path,
    stop: asyncio.Event,
    reload_now: asyncio.Event,
    interval: float = POLL_INTERVAL,
) -> None:
    """Reload ``folder`` into ``supervisor`` on every change and every ``reload_now``, until
    ``stop`` is set."""
    seen = await asyncio.to_thread(folder_snapshot, folder)
    while not stop.is_set():
        signalled = await wait_for_event(reload_now, interval)
        reload_now.clear()
        if stop.is_set():
            return
        now = await asyncio.to_thread(folder_snapshot, folder)
        if not signalled and now == seen:
            continue
        seen = now
        log.info("re-reading %s (%s)", folder, "SIGHUP" if signalled else "a file changed")
        try:
            changes = await supervisor.reload_folder()
        except PipelineFolderError as error:
            log.error("cannot re-read the pipelines folder; every pipeline runs on: %s", error)
            continue
        if changes:
            log.info(
                "pipelines folder applied: %d added, %d changed, %d removed",
                len(changes.added),
                len(changes.changed),
                len(changes.removed),
            )

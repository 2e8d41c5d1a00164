"""Run one command and measure it: wall time, CPU seconds and peak memory of its process tree.

Peak RSS is the larger of two readings, so neither a short spike nor a helper process is
missed:

- the kernel's ``ru_maxrss`` from ``wait4``: the exact peak of the largest single process in
  the tree (the command or a descendant it waited for), like ``/usr/bin/time -v``'s "Maximum
  resident set size";
- the sum of the RSS of every live process in the tree, sampled every ``POLL_SECONDS`` from
  ``/proc`` (this catches a tool that runs a helper, such as sling running the DuckDB CLI).
  Shared pages count once per process, so the sum can overstate a tree that shares memory.

Linux only (``/proc``, ``os.wait4``).
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

POLL_SECONDS = 0.02
_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")
_STDERR_TAIL_CHARS = 4000


@dataclass(frozen=True)
class Measurement:
    """What one run of a command cost.

    Attributes:
        wall_seconds: From just before the process started to its exit.
        cpu_seconds: User + system CPU of the process and the descendants it waited for.
        peak_rss_bytes: ``max(max_process_rss_bytes, peak_tree_rss_bytes)``.
        max_process_rss_bytes: Kernel ``ru_maxrss`` (largest single process, exact).
        peak_tree_rss_bytes: Largest sampled sum of RSS over the live process tree.
        returncode: The exit status (negative: killed by that signal).
        stdout: Everything the command printed on stdout.
        stderr_tail: The last few thousand characters of its stderr.
    """

    wall_seconds: float
    cpu_seconds: float
    peak_rss_bytes: int
    max_process_rss_bytes: int
    peak_tree_rss_bytes: int
    returncode: int
    stdout: str
    stderr_tail: str


def _children(pid: int) -> list[int]:
    """The direct children of every thread of ``pid`` (empty once it is gone)."""
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for task in tasks:
        try:
            text = Path(f"/proc/{pid}/task/{task}/children").read_text()
        except OSError:
            continue
        found.extend(int(child) for child in text.split())
    return found


def _rss_bytes(pid: int) -> int:
    try:
        # statm: size resident shared ... in pages
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * _PAGE_BYTES
    except (OSError, IndexError, ValueError):
        return 0


def tree_rss_bytes(root: int) -> int:
    """The summed RSS of ``root`` and all its live descendants right now."""
    total = 0
    pending = [root]
    seen: set[int] = set()
    while pending:
        pid = pending.pop()
        if pid in seen:
            continue
        seen.add(pid)
        total += _rss_bytes(pid)
        pending.extend(_children(pid))
    return total


class _TreeSampler(threading.Thread):
    """Samples the tree's RSS until stopped; keeps the peak."""

    def __init__(self, root: int) -> None:
        super().__init__(daemon=True)
        self.root = root
        self.peak = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.peak = max(self.peak, tree_rss_bytes(self.root))
            self._stop_event.wait(POLL_SECONDS)

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


def run_measured(
    argv: Sequence[str],
    cwd: Path,
    env: Mapping[str, str] | None = None,
    timeout_seconds: float = 1800.0,
) -> Measurement:
    """Run ``argv`` in ``cwd`` to completion and measure it.

    Args:
        argv: The command and its arguments.
        cwd: The working directory of the command.
        env: The environment (default: this process's).
        timeout_seconds: The command is killed after this long (its measurement then has a
            negative return code).

    Returns:
        The measurement; the caller decides what a non-zero return code means.
    """
    stdout_path = cwd / ".bench-stdout"
    stderr_path = cwd / ".bench-stderr"
    # Files, not pipes: a chatty tool can never block on a full pipe while we only poll.
    with stdout_path.open("wb") as out, stderr_path.open("wb") as err:
        started = time.perf_counter()
        process = subprocess.Popen(
            list(argv), cwd=cwd, env=dict(env) if env is not None else None, stdout=out, stderr=err
        )
        sampler = _TreeSampler(process.pid)
        sampler.start()
        killer = threading.Timer(timeout_seconds, process.kill)
        killer.start()
        # wait4, not Popen.wait: it also returns the child's resource usage.
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        killer.cancel()
        sampler.stop()
    process.returncode = os.waitstatus_to_exitcode(status)
    stdout = stdout_path.read_text(errors="replace")
    stderr = stderr_path.read_text(errors="replace")
    stdout_path.unlink()
    stderr_path.unlink()
    max_process = int(usage.ru_maxrss) * 1024  # Linux reports kilobytes
    return Measurement(
        wall_seconds=wall,
        cpu_seconds=usage.ru_utime + usage.ru_stime,
        peak_rss_bytes=max(max_process, sampler.peak),
        max_process_rss_bytes=max_process,
        peak_tree_rss_bytes=sampler.peak,
        returncode=process.returncode,
        stdout=stdout,
        stderr_tail=stderr[-_STDERR_TAIL_CHARS:],
    )

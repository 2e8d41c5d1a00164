"""Running the real ``omconnect`` command in a subprocess, for end-to-end tests."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def omconnect(*args: str, cwd: Path, timeout: float = 120, env: dict[str, str] | None = None):
    """Run ``omconnect ARGS`` (this interpreter's install) in ``cwd``; returns the result."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "omconnect.runtime.cli.main", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
    )


def spawn_omconnect(*args: str, cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "omconnect.runtime.cli.main", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def kill_at_random_moments(
    pipeline: str, cwd: Path, seed: int, attempts: int, window: tuple[float, float]
) -> int:
    """Start ``omconnect run PIPELINE --once`` up to ``attempts`` times and SIGKILL it after a
    random time in ``window`` seconds; returns how many runs were killed (fewer when a run
    finished first)."""
    rng = random.Random(seed)
    kills = 0
    for _attempt in range(attempts):
        process = spawn_omconnect("run", pipeline, "--once", cwd=cwd)
        time.sleep(rng.uniform(*window))
        if process.poll() is not None:
            break
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        kills += 1
    return kills


def tail_topic(topic: str, cwd: Path) -> list[dict]:
    """Every message of ``topic`` as ``omconnect topics tail`` prints it (one JSON object each)."""
    result = omconnect("topics", "tail", topic, "--from-beginning", "--no-follow", cwd=cwd)
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]

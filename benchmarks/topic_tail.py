"""Tailing a topic of the embedded broker while a pipeline writes it: when each record
became readable, for the lag and throughput phases of the streaming benchmarks
(``cdc_stream.py``, ``mqtt_devices.py``), and starting and stopping that pipeline.

``tail_topic`` joins a consumer group of its own at the topic's start and polls every
``READER_POLL_SECONDS``; each record it returns carries ``seen_ms`` (``time.time()`` in ms when
the poll that returned it came back: one machine, one clock, so the writers' timestamps
compare directly), ``born_ms`` (the message's timestamp, set by the runtime when it made the
message) and the columns the caller's ``columns`` function takes from the decoded rows.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from contestants import _omconnect_command as omconnect_command

READER_POLL_SECONDS = 0.005
POLL_MESSAGES = 10_000

STOP_TIMEOUT_SECONDS = 60.0
# (decoded group of one schema) -> its columns as arrays, one value per row of the group.
Columns = Callable[[Any], dict[str, np.ndarray]]


def default_linger() -> float:
    """The ``batching.linger`` a pipeline gets when it sets none, as the installed omconnect's
    pipeline JSON Schema states it (the lag phases record it beside their results)."""
    done = subprocess.run(
        [*omconnect_command(), "schema"], capture_output=True, text=True, check=True
    )
    schema = json.loads(done.stdout)
    definitions = schema.get("definitions") or schema.get("$defs") or {}
    return float(definitions["BatchingConfig"]["properties"]["linger"]["default"])


def start_pipeline(run_dir: Path) -> subprocess.Popen[bytes]:
    """``omconnect run pipeline.yaml`` (continuous) in ``run_dir``, its output in
    ``omconnect.log`` there."""
    with (run_dir / "omconnect.log").open("wb") as log:
        return subprocess.Popen(
            [*omconnect_command(), "run", "pipeline.yaml"],
            cwd=run_dir,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def stop_processes(*processes: subprocess.Popen[Any] | None) -> None:
    """SIGTERM each process still running (a pipeline stops cleanly on it), then wait; one
    that does not end within ``STOP_TIMEOUT_SECONDS`` is killed."""
    for process in processes:
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


async def tail_topic(
    folder: Path,
    topic: str,
    format_name: str,
    columns: Columns,
    stop: Callable[[int, bool], bool],
    deadline: float,
    ready: Callable[[], None] | None = None,
) -> dict[str, np.ndarray]:
    """Read ``topic`` of the embedded broker in ``folder`` (a pipeline's run directory, its
    state in ``.omconnect``; waited for when not there yet) from its start, decoded as
    ``format_name``, until ``stop(count, idle)`` says so (``idle``: a poll found nothing) or
    ``deadline`` (monotonic) passes. ``ready`` is called once the consumer has joined.

    Returns:
        The columns of every record read, concatenated: those of ``columns`` plus
        ``born_ms`` and ``seen_ms``.
    """
    from omconnect.runtime.brokers import open_broker
    from omconnect.runtime.brokers.base import BrokerNotFoundError
    from omconnect.runtime.converters import make_converter
    from omconnect.runtime.state import open_state

    state = folder / ".omconnect"
    while True:
        try:
            broker = open_broker(f"embedded://{state.resolve()}", create=False)
            break
        except BrokerNotFoundError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)
    converter: Any = None
    parts: dict[str, list[np.ndarray]] = {"born_ms": [], "seen_ms": []}
    count = 0
    try:
        consumer = await broker.consumer(
            f"bench-reader-{os.getpid()}", [], pattern=re.escape(topic), start="earliest"
        )
        try:
            while time.monotonic() < deadline:
                batches = await consumer.poll(POLL_MESSAGES, 0)  # the first joins the group
                seen_ms = time.time() * 1000
                if ready is not None:
                    ready()
                    ready = None
                if not batches:
                    if stop(count, True):
                        break
                    await asyncio.sleep(READER_POLL_SECONDS)
                    continue
                for batch in batches:
                    if converter is None:
                        registry = open_state(state).open_existing_schema_registry()
                        converter = make_converter(format_name, registry)
                    decoded = converter.decode(
                        batch.topic, batch.messages.values, batch.messages.keys
                    )
                    if decoded.failed:
                        first = next(iter(decoded.failed.values()))
                        raise ValueError(f"a message of {batch.topic} cannot be decoded: {first}")
                    born = batch.messages.timestamps.to_numpy(False)
                    for group in decoded.groups:
                        rows = group.values.num_rows
                        parts["born_ms"].append(born[group.rows.to_numpy(False)])
                        parts["seen_ms"].append(np.full(rows, seen_ms))
                        for name, values in columns(group).items():
                            parts.setdefault(name, []).append(values)
                        count += rows
                if stop(count, False):
                    break
        finally:
            await consumer.close()
    finally:
        await broker.close()
    return {k: np.concatenate(v) if v else np.zeros(0) for k, v in parts.items()}


def lag_percentiles(lags: np.ndarray) -> dict[str, float]:
    """p50, p90, p99, p99.9 and the max of ``lags`` (ms), rounded to 0.1 ms."""
    quantiles = np.percentile(lags, [50, 90, 99, 99.9])
    return {
        "lag_p50_ms": round(float(quantiles[0]), 1),
        "lag_p90_ms": round(float(quantiles[1]), 1),
        "lag_p99_ms": round(float(quantiles[2]), 1),
        "lag_p999_ms": round(float(quantiles[3]), 1),
        "lag_max_ms": round(float(lags.max()), 1),
    }

"""``exactly_once: true``: SIGKILL ``omconnect run`` at random moments, run again, and the
topic holds every row exactly once (records and source positions commit in one broker
transaction; what a killed run sent after its last commit is never visible)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

from omconnect.runtime.brokers import open_broker
from tests.support.omconnect_process import kill_at_random_moments, omconnect

ROWS = 400_000
PARTS = 4

PIPELINE = """
name: once
source:
  connector: csv
  path: data/*.csv
  batch_size: 5000
topic: seq
format: json
exactly_once: {exactly_once}
batching: {{max_rows: 5000, linger: 0}}
commit_interval: 0.1
"""


def _write_input(directory: Path) -> None:
    directory.mkdir()
    for part in range(PARTS):
        seq = np.arange(part * ROWS // PARTS, (part + 1) * ROWS // PARTS, dtype=np.int64)
        pacsv.write_csv(pa.table({"seq": seq}), directory / f"part-{part}.csv")


def _topic_values(directory: Path) -> list[bytes]:
    async def body() -> list[bytes]:
        broker = open_broker(f"embedded://{directory / '.omconnect'}")
        consumer = await broker.consumer("check", ["seq"])
        values: list[bytes] = []
        while batches := await consumer.poll(100_000, 0.5):
            for batch in batches:
                values.extend(batch.messages.values.to_pylist())
        await broker.close()
        return values

    return asyncio.run(body())


@pytest.mark.slow
def test_sigkill_leaves_every_row_on_the_topic_exactly_once(tmp_path: Path) -> None:
    _write_input(tmp_path / "data")
    (tmp_path / "once.yaml").write_text(PIPELINE.format(exactly_once="true"))
    # Kill within the run, however fast this machine is: time an undisturbed run first.
    calibration = tmp_path / "calibration"
    calibration.mkdir()
    (calibration / "data").symlink_to(tmp_path / "data")
    (calibration / "once.yaml").write_text(PIPELINE.format(exactly_once="true"))
    started = time.monotonic()
    assert omconnect("run", "once.yaml", "--once", cwd=calibration, timeout=300).returncode == 0
    took = time.monotonic() - started
    kills = kill_at_random_moments("once.yaml", tmp_path, 20261201, 4, (0.4 * took, 0.9 * took))
    finished = omconnect("run", "once.yaml", "--once", cwd=tmp_path, timeout=300)
    assert finished.returncode == 0, finished.stderr
    assert kills >= 1, "the run ended before any kill: make ROWS larger"
    values = _topic_values(tmp_path)
    seqs = sorted(int(v.split(b":")[1].rstrip(b"}")) for v in values)
    assert seqs == list(range(ROWS)), "a row is missing or on the topic twice"

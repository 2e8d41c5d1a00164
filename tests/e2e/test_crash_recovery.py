"""SIGKILL ``omconnect run`` at random moments, then run again: nothing is lost, duplicates
stay bounded by what was in flight, and no sink file is ever torn. Through the embedded broker
and without a broker (``broker: none``: the sink takes the source's rows in the process)."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from tests.support.omconnect_process import kill_at_random_moments, omconnect, spawn_omconnect

ROWS = 1_500_000
PARTS = 10
MAX_ROWS = 5_000
IN_FLIGHT_BYTES = 1 << 20

PIPELINE = f"""
name: crash
broker: BROKER
source:
  connector: csv
  path: data/*.csv
  batch_size: {MAX_ROWS}
topic: seq
format: avro
sink:
  connector: parquet
  path: out/
  max_rows: 40000
batching: {{max_rows: {MAX_ROWS}, linger: 0}}
max_in_flight_bytes: {IN_FLIGHT_BYTES}
commit_interval: 0.05
"""


def write_input(directory: Path) -> None:
    directory.mkdir()
    for part in range(PARTS):
        seq = np.arange(part * ROWS // PARTS, (part + 1) * ROWS // PARTS, dtype=np.int64)
        table = pa.table(
            {
                "seq": seq,
                "payload": pa.array(np.char.add("row-", seq.astype(str))),
                "amount": (seq % 1000).astype(np.float64) / 10,
            }
        )
        pacsv.write_csv(table, directory / f"part-{part:02d}.csv")


def read_sink(out: Path) -> np.ndarray:
    finals = sorted(p for p in out.iterdir() if not p.name.startswith("."))
    seqs = []
    for path in finals:
        # A file under its final name must be whole: the footer reads and so do all rows.
        seqs.append(pq.read_table(path, columns=["seq"]).column("seq").to_numpy())
    return np.concatenate(seqs) if seqs else np.array([], dtype=np.int64)


BROKERS = pytest.mark.parametrize("broker", ["embedded://.omconnect", "none"])


@pytest.mark.slow
@pytest.mark.parametrize(
    ("broker", "window"),
    # Without a topic a run gets further per second: it is killed sooner.
    [("embedded://.omconnect", (0.7, 1.5)), ("none", (0.5, 1.0))],
)
def test_sigkill_at_random_moments_loses_nothing(
    tmp_path: Path, broker: str, window: tuple[float, float]
) -> None:
    write_input(tmp_path / "data")
    (tmp_path / "crash.yaml").write_text(PIPELINE.replace("BROKER", broker))
    kills = kill_at_random_moments("crash.yaml", tmp_path, 20261128, 5, window)
    finished = omconnect("run", "crash.yaml", "--once", cwd=tmp_path, timeout=300)
    assert finished.returncode == 0, finished.stderr
    assert kills >= 2, "the pipeline finished too early to be killed; make the input larger"

    seen = read_sink(tmp_path / "out")
    missing = np.setdiff1d(np.arange(ROWS), seen)
    assert missing.size == 0, f"{missing.size} rows lost, e.g. {missing[:5]}"
    duplicates = seen.size - np.unique(seen).size
    # Per kill, at most the messages published but not yet committed can come again: the
    # in-flight budget plus one batch being reshaped.
    per_kill = IN_FLIGHT_BYTES // 8 + 2 * MAX_ROWS
    assert duplicates <= kills * per_kill, (duplicates, kills)

    again = omconnect("run", "crash.yaml", "--once", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert read_sink(tmp_path / "out").size == seen.size, "a finished pipeline re-read input"


@BROKERS
def test_sigterm_stops_cleanly_without_duplicates(tmp_path: Path, broker: str) -> None:
    write_input(tmp_path / "data")
    (tmp_path / "crash.yaml").write_text(PIPELINE.replace("BROKER", broker))
    process = spawn_omconnect("run", "crash.yaml", cwd=tmp_path)
    # Stop it once it is writing (a fixed sleep signalled a slow start before its handlers).
    out = tmp_path / "out"
    deadline = time.monotonic() + 60
    while not (out.is_dir() and any(out.iterdir())) and time.monotonic() < deadline:
        assert process.poll() is None, "a pipeline without --once keeps running"
        time.sleep(0.05)
    assert process.poll() is None, "a pipeline without --once keeps running"
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr

    finished = omconnect("run", "crash.yaml", "--once", cwd=tmp_path, timeout=300)
    assert finished.returncode == 0, finished.stderr
    seen = read_sink(tmp_path / "out")
    assert np.setdiff1d(np.arange(ROWS), seen).size == 0
    assert seen.size == np.unique(seen).size, "a clean stop must not cause duplicates"

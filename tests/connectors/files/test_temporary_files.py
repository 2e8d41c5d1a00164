"""Temporary files carry their writer: one writer never renames or deletes another's, and
leftovers are deleted only when their writer is known to be gone."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from omconnect.connectors.files._rolling_writer import RollingFileWriter, RollLimits, final_name

LIMITS = RollLimits(max_rows=1_000, max_bytes=1 << 30, max_age=3600)


class _Parquet:
    def __init__(self, sink: pa.NativeFile, schema: pa.Schema) -> None:
        self._writer = pq.ParquetWriter(sink, schema)

    def write(self, batch: pa.RecordBatch) -> None:
        self._writer.write_batch(batch)

    def buffered_bytes(self) -> int:
        return 0

    def close(self) -> None:
        self._writer.close()


def _writer(directory: Path) -> RollingFileWriter:
    return RollingFileWriter(directory, "orders", 0, "parquet", _Parquet, LIMITS)


def _rows(first: int, count: int) -> pa.RecordBatch:
    return pa.record_batch({"id": pa.array(range(first, first + count), pa.int64())})


def test_two_writers_of_one_file_name_keep_their_own_temporary_files(tmp_path: Path) -> None:
    a, b = _writer(tmp_path), _writer(tmp_path)
    a.write(_rows(0, 10), 0, 10)
    b.write(_rows(100, 5), 0, 5)
    b.abort()
    published = a.publish()
    assert published == tmp_path / final_name("orders", 0, 0, "parquet")
    assert pq.read_table(published)["id"].to_pylist() == list(range(10))
    assert list(tmp_path.iterdir()) == [published], "no temporary file is left"


def test_without_the_directory_lock_only_dead_writers_leftovers_go(tmp_path: Path) -> None:
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    dead_pid = _pid_of_finished()
    try:
        name = final_name("orders", 0, 0, "parquet")
        live_temp = tmp_path / f".{name}.{alive.pid}-0a1b.tmp"
        dead_temp = tmp_path / f".{name}.{dead_pid}-0a1b.tmp"
        old_temp = tmp_path / f".{name}.tmp"  # an older version's name: no writer in it
        for temp in (live_temp, dead_temp, old_temp):
            temp.write_bytes(b"partial")
        removed = _writer(tmp_path).remove_leftovers(0, exclusive=False)
        assert sorted(removed) == sorted([dead_temp, old_temp])
        assert live_temp.exists()
        assert _writer(tmp_path).remove_leftovers(0, exclusive=True) == [live_temp]
    finally:
        alive.kill()
        alive.wait()


def _pid_of_finished() -> int:
    """The pid of a process that has ended (and been reaped)."""
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()
    assert finished.pid != os.getpid()
    return finished.pid

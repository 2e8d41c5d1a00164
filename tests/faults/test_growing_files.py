"""Files that grow, half-written lines, replaced files and unreadable files, through the real
``omconnect`` command: what the README promises about appended rows and dead letters."""

from __future__ import annotations

import json
import os
import signal
import time
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from tests.support.omconnect_process import omconnect, spawn_omconnect


def csv_rows(first: int, count: int) -> str:
    return "".join(f"{i},name-{i}\n" for i in range(first, first + count))


def sink_rows(directory: Path) -> list[dict]:
    """Every row the jsonl sink published (finished files only)."""
    if not directory.is_dir():
        return []
    files = sorted(p for p in directory.glob("*.jsonl") if not p.name.startswith("."))
    return [json.loads(line) for p in files for line in p.read_text().splitlines()]


def topic_size(topic: str, cwd: Path) -> int:
    listed = omconnect("topics", "list", cwd=cwd)
    assert listed.returncode == 0, listed.stderr
    for line in listed.stdout.splitlines():
        parts = line.split()
        if parts and parts[0] == topic:
            return int(parts[-1])
    return 0


def dead_letters(topic: str, cwd: Path) -> list[dict]:
    tailed = omconnect("topics", "tail", topic, "--from-beginning", "--no-follow", cwd=cwd)
    assert tailed.returncode == 0, tailed.stderr
    return [json.loads(line) for line in tailed.stdout.splitlines()]


def wait_for(condition, timeout: float = 60.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)
    return value


PIPELINE = """\
name: grow
source:
  connector: csv
  path: in.csv
  poll_interval: 0.2
topic: grow
commit_interval: 0.2
batching: {linger: 0.05}
sink:
  connector: jsonl
  path: out/
  max_age: 0.5
"""


def test_a_running_pipeline_delivers_100_rows_appended_to_its_csv(tmp_path: Path) -> None:
    (tmp_path / "in.csv").write_text("id,name\n" + csv_rows(0, 10))
    (tmp_path / "p.yaml").write_text(PIPELINE)
    process = spawn_omconnect("run", "p.yaml", cwd=tmp_path)
    try:
        wait_for(lambda: len(sink_rows(tmp_path / "out")) >= 10)
        with (tmp_path / "in.csv").open("a") as file:
            for i in range(10, 110):
                file.write(csv_rows(i, 1))
                file.flush()
        wait_for(lambda: len(sink_rows(tmp_path / "out")) >= 110)
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    rows = sink_rows(tmp_path / "out")
    assert sorted(r["id"] for r in rows) == list(range(110)), "each row exactly once"
    assert rows[-1] == {"id": 109, "name": "name-109"}
    assert topic_size("grow", tmp_path) == 110


def test_run_once_after_an_append_delivers_exactly_the_appended_rows(tmp_path: Path) -> None:
    (tmp_path / "in.csv").write_text("id,name\n" + csv_rows(0, 1000))
    (tmp_path / "p.yaml").write_text(PIPELINE)
    ran = omconnect("run", "p.yaml", "--once", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    with (tmp_path / "in.csv").open("a") as file:
        file.write(csv_rows(1000, 100))
    ran = omconnect("run", "p.yaml", "--once", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert topic_size("grow", tmp_path) == 1100
    counts = Counter(r["id"] for r in sink_rows(tmp_path / "out"))
    assert sorted(counts) == list(range(1100)) and set(counts.values()) == {1}
    listed = omconnect("offsets", "list", "p.yaml", cwd=tmp_path)
    (source,) = [json.loads(x) for x in listed.stdout.splitlines() if '"source"' in x]
    assert source["offset"]["row"] == 1100
    assert source["offset"]["byte"] == (tmp_path / "in.csv").stat().st_size


def test_a_half_written_last_line_is_delivered_whole_once_complete(tmp_path: Path) -> None:
    (tmp_path / "in.csv").write_text("id,name\n1,alpha\n2,be")
    (tmp_path / "p.yaml").write_text(PIPELINE)
    assert omconnect("run", "p.yaml", "--once", cwd=tmp_path).returncode == 0
    assert sink_rows(tmp_path / "out") == [{"id": 1, "name": "alpha"}]
    with (tmp_path / "in.csv").open("a") as file:
        file.write("ta\n3,gamma\n")
    assert omconnect("run", "p.yaml", "--once", cwd=tmp_path).returncode == 0
    assert sink_rows(tmp_path / "out") == [
        {"id": 1, "name": "alpha"},
        {"id": 2, "name": "beta"},
        {"id": 3, "name": "gamma"},
    ]


def test_a_replaced_file_is_read_again_with_a_warning(tmp_path: Path) -> None:
    (tmp_path / "in.csv").write_text("id,name\n" + csv_rows(0, 10))
    (tmp_path / "p.yaml").write_text(PIPELINE)
    assert omconnect("run", "p.yaml", "--once", cwd=tmp_path).returncode == 0
    (tmp_path / "in.csv").write_text("id,name\n" + csv_rows(100, 3))
    ran = omconnect("run", "p.yaml", "--once", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert "in.csv changed since it was read" in ran.stderr
    assert "on_file_change: reread" in ran.stderr
    ids = [r["id"] for r in sink_rows(tmp_path / "out")]
    assert sorted(ids) == [*range(10), 100, 101, 102]

    (tmp_path / "p.yaml").write_text(
        PIPELINE.replace("  poll_interval: 0.2\n", "  poll_interval: 0.2\n  on_file_change: fail\n")
    )
    (tmp_path / "in.csv").write_text("id,name\n" + csv_rows(200, 1))
    failed = omconnect("run", "p.yaml", "--once", cwd=tmp_path)
    assert failed.returncode != 0
    assert "in.csv changed since it was read" in failed.stderr
    assert "Traceback" not in failed.stderr


UNREADABLE = """\
name: files
source:
  connector: parquet
  path: in/
topic: files
sink: {{connector: jsonl, path: out/}}
errors: {{tolerance: {tolerance}}}
"""


def write_inputs(directory: Path) -> None:
    directory.mkdir()
    table = pa.table({"id": pa.array(range(100), pa.int64())})
    pq.write_table(table.slice(0, 50), directory / "a.parquet")
    (directory / "b.parquet").write_bytes(b"this is not a parquet file")
    pq.write_table(table.slice(50, 50), directory / "c.parquet")


def test_an_unreadable_file_goes_to_the_dead_letter_topic_and_the_others_flow(
    tmp_path: Path,
) -> None:
    write_inputs(tmp_path / "in")
    (tmp_path / "p.yaml").write_text(UNREADABLE.format(tolerance="all"))
    ran = omconnect("run", "p.yaml", "--once", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert sorted(r["id"] for r in sink_rows(tmp_path / "out")) == list(range(100))
    (dead,) = dead_letters("files.dlq", tmp_path)
    headers = dead["headers"]
    assert json.loads(headers["omconnect.error.position"]) == {"file": "in/b.parquet"}
    assert headers["omconnect.error.stage"] == "read"
    assert "in/b.parquet: cannot read the file" in headers["omconnect.error.reason"]
    # Its position was committed as done: the next run neither retries nor reports it again.
    again = omconnect("run", "p.yaml", "--once", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert len(dead_letters("files.dlq", tmp_path)) == 1
    # A file fixed later (a new file under its name) is read.
    pq.write_table(pa.table({"id": pa.array([500], pa.int64())}), tmp_path / "in/b.parquet")
    assert omconnect("run", "p.yaml", "--once", cwd=tmp_path).returncode == 0
    assert sorted(r["id"] for r in sink_rows(tmp_path / "out")) == [*range(100), 500]


def test_under_tolerance_none_the_run_stops_at_the_unreadable_file(tmp_path: Path) -> None:
    write_inputs(tmp_path / "in")
    (tmp_path / "p.yaml").write_text(UNREADABLE.format(tolerance="none"))
    ran = omconnect("run", "p.yaml", "--once", cwd=tmp_path)
    assert ran.returncode == 1
    assert "in/b.parquet: cannot read the file" in ran.stderr
    assert "Traceback" not in ran.stderr
    listed = omconnect("offsets", "list", "p.yaml", cwd=tmp_path)
    sources = [json.loads(x) for x in listed.stdout.splitlines() if '"source"' in x]
    assert [(s["partition"]["file"], s["offset"]["complete"]) for s in sources] == [
        ("in/a.parquet", True)
    ]
    assert topic_size("files", tmp_path) == 50
    os.remove(tmp_path / "in/b.parquet")
    assert omconnect("run", "p.yaml", "--once", cwd=tmp_path).returncode == 0
    assert topic_size("files", tmp_path) == 100

"""A bad value near the end of a big CSV file, with the real ``omconnect`` command: under
``errors.tolerance: all`` every good row reaches the sink and the bad line reaches the dead
letter topic with its file, line, raw text and reason; under ``none`` the run stops at it."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.dataset as ds

from tests.support.omconnect_process import omconnect, tail_topic

GOOD = 200_000
BAD_AFTER = 199_990  # good rows before the bad line
BAD_LINE = BAD_AFTER + 2  # after the header
BAD_TEXT = f"{GOOD},12.x"


def write_orders(path: Path) -> None:
    lines = ["id,amount"] + [f"{i},{i}.25" for i in range(GOOD)]
    lines.insert(BAD_LINE - 1, BAD_TEXT)
    path.write_text("\n".join(lines) + "\n")


def pipeline(tolerance: str) -> str:
    return f"""
name: orders
source:
  connector: csv
  path: orders.csv
  columns: {{amount: "decimal(12,2)"}}
topic: orders
sink: {{connector: parquet, path: out/}}
errors: {{tolerance: {tolerance}}}
"""


def source_offset(cwd: Path) -> dict:
    listed = omconnect("offsets", "list", "p.yaml", cwd=cwd)
    assert listed.returncode == 0, listed.stderr
    offsets = [json.loads(line) for line in listed.stdout.splitlines()]
    (source,) = [o for o in offsets if o["kind"] == "source"]
    return source["offset"]


def written_ids(cwd: Path) -> list[int]:
    files = sorted((cwd / "out").glob("**/*.parquet"))
    if not files:
        return []
    return sorted(ds.dataset(files, format="parquet").to_table()["id"].to_pylist())


def test_a_bad_value_goes_to_the_dead_letter_topic_and_every_good_row_flows(
    tmp_path: Path,
) -> None:
    write_orders(tmp_path / "orders.csv")
    (tmp_path / "p.yaml").write_text(pipeline("all"))
    ran = omconnect("run", "p.yaml", "--once", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert "dead_lettered=1" in ran.stderr

    assert written_ids(tmp_path) == list(range(GOOD))
    (dead,) = tail_topic("orders.dlq", tmp_path)
    assert dead["value"] == BAD_TEXT
    headers = dead["headers"]
    assert headers["omconnect.error.stage"] == "read"
    assert json.loads(headers["omconnect.error.position"]) == {
        "file": "orders.csv",
        "line": BAD_LINE,
    }
    assert headers["omconnect.error.reason"].startswith(f"orders.csv: line {BAD_LINE}: ")
    assert "'12.x'" in headers["omconnect.error.reason"]
    offset = source_offset(tmp_path)
    assert (offset["row"], offset["skip"]) == (GOOD, 0)
    assert offset["byte"] == (tmp_path / "orders.csv").stat().st_size

    again = omconnect("run", "p.yaml", "--once", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert len(tail_topic("orders.dlq", tmp_path)) == 1
    assert len(written_ids(tmp_path)) == GOOD


def test_tolerance_none_stops_at_the_bad_value_and_keeps_what_was_delivered(
    tmp_path: Path,
) -> None:
    write_orders(tmp_path / "orders.csv")
    (tmp_path / "p.yaml").write_text(pipeline("none"))
    ran = omconnect("run", "p.yaml", "--once", cwd=tmp_path)
    assert ran.returncode == 1
    assert "errors.tolerance is none" in ran.stderr
    assert f"orders.csv: line {BAD_LINE}: " in ran.stderr
    # Every row before the bad line was delivered and committed; nothing past it.
    committed = source_offset(tmp_path)
    assert "complete" not in committed
    assert committed["row"] == BAD_AFTER
    assert all(i < BAD_AFTER for i in written_ids(tmp_path))

"""benchmarks/cdc_stream.py (B2) on a tiny workload, one measured round: its phases run end to
end against the local PostgreSQL (``wal_level = logical``), every run verified, results
rendered, nothing left on the server; and its checks refuse what is wrong.

It runs against ``POSTGRES_URL`` (default: the local server's ``test`` database); when no
PostgreSQL answers there the tests fail and say how to start it. The table it creates (named
after this process) is dropped.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
# benchmarks/ is a folder of scripts that import each other by plain name, as when run.
sys.path.insert(0, str(BENCHMARKS))

import cdc_stream  # noqa: E402
import oracle  # noqa: E402
import sql_snapshot  # noqa: E402

from tests.benchmarks.test_sql_benchmarks_smoke import bench_postgres  # noqa: E402

ROWS = 300
COMMITS = 200


@pytest.fixture(scope="module")
def url() -> str:
    level = bench_postgres("SHOW wal_level")
    if level != "logical":
        pytest.fail(f"wal_level is {level}: B2 needs logical (.ci/run sets it)", pytrace=False)
    return sql_snapshot.DEFAULT_URL


@pytest.fixture()
def table(url: str) -> Iterator[str]:
    name = f"smoke_cdc_{os.getpid()}"
    yield name
    cdc_stream.drop_everything(url, cdc_stream.Names(name))
    with sql_snapshot.connect(url) as conn:
        sql_snapshot.drop_table(conn, name)


def test_tiny_run_streams_verifies_and_cleans_up(url: str, table: str, tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("# Benchmarks\n\nkept text\n")
    exit_code = cdc_stream.main(
        [
            *("--rows", str(ROWS), "--commits", str(COMMITS), "--table", table, "--url", url),
            *("--rate", "200", "--lag-seconds", "1", "--writers", "2"),
            *("--runs", "1", "--warmups", "0", "--work-dir", str(tmp_path / "work")),
            *("--readme", str(readme), "--json", str(tmp_path / "results.json")),
        ]
    )
    assert exit_code == 0
    results = json.loads((tmp_path / "results.json").read_text())
    summary = results["summary"]
    readers = ["omconnect"] + (["pg_recvlogical"] if shutil.which("pg_recvlogical") else [])
    for phase, changes in (("commits", COMMITS), ("transaction", ROWS)):
        assert [e["reader"] for e in summary[phase]] == readers
        assert all(e["status"] == "verified" and e["changes"] == changes for e in summary[phase])
        for name in readers:
            [run] = results["records"][phase][name]
            assert run["events"] == changes
            assert run["checksum"]["count"] == changes
    [omconnect] = [e for e in summary["commits"] if e["reader"] == "omconnect"]
    assert omconnect["inner_seconds_median"] > 0  # read from its run summary
    assert omconnect["peak_rss_bytes"] > 10 << 20  # a Python process, measured
    assert [e["linger"] for e in summary["lag"]] == [None, 0.01]
    for entry in summary["lag"]:
        assert entry["status"] == "verified", entry["failure"]
        assert 0 < entry["lag_p50_ms"] <= entry["lag_p99_ms"] <= entry["lag_max_ms"]
    for runs in results["records"]["lag"].values():
        [run] = runs
        assert run["count"] == run["commits"] == 200
        assert run["checksum"] == run["writer"]["checksum"]
    if "pg_recvlogical" in readers:  # the decode phase reads pg_recvlogical's file
        assert [e["reader"] for e in summary["decode"]] == ["per-message", "batch"]
        assert all(e["status"] == "verified" for e in summary["decode"])
    text = readme.read_text()
    assert text.startswith("# Benchmarks\n\nkept text\n")
    assert "<!-- results:cdc-stream:start -->" in text and "| `omconnect` |" in text
    assert (tmp_path / "results.md").read_text().startswith("# B2")
    names = cdc_stream.Names(table)
    with sql_snapshot.connect(url) as conn:
        slots = conn.execute(
            "SELECT slot_name FROM pg_replication_slots WHERE starts_with(slot_name, %s)",
            [names.base],
        ).fetchall()
        publications = conn.execute(
            "SELECT pubname FROM pg_publication WHERE pubname = %s", [names.publication]
        ).fetchall()
    assert slots == [] and publications == []


def test_events_that_miss_or_repeat_a_change_are_refused() -> None:
    expected = oracle.expected_checksum(5)

    def events(ids: list[int], ops: str = "uuuuu", tombstones: int = 0) -> dict[str, object]:
        return {
            "id": np.array(ids, np.int64),
            "op": np.array(list(ops[: len(ids)])),
            "tombstones": tombstones,
        }

    assert cdc_stream.verify_events(events([3, 1, 2, 5, 4]), expected) is None
    assert "wrong output" in (cdc_stream.verify_events(events([1, 2, 3, 4]), expected) or "")
    repeated = events([1, 2, 3, 4, 5, 5], "uuuuuu")
    assert "wrong output" in (cdc_stream.verify_events(repeated, expected) or "")
    assert "ops" in (cdc_stream.verify_events(events([1, 2, 3, 4, 5], "uuucu"), expected) or "")
    assert "tombstones" in (
        cdc_stream.verify_events(events([1, 2, 3, 4, 5], tombstones=1), expected) or ""
    )


def _tuple(*values: bytes | None) -> bytes:
    out = struct.pack(">h", len(values))
    for value in values:
        out += b"n" if value is None else b"t" + struct.pack(">i", len(value)) + value
    return out


def test_recvlogical_output_is_read_message_by_message() -> None:
    """pg_recvlogical's file (each pgoutput message and a line break; binary, so a 10 in a
    length is no separator) gives the ids of the updates' new rows, old rows skipped."""
    relation = (
        b"R" + struct.pack(">I", 7) + b"s\x00t\x00d" + struct.pack(">h", 2)
        + b"\x01id\x00" + struct.pack(">Ii", 20, -1) + b"\x00v\x00" + struct.pack(">Ii", 25, -1)
    )  # fmt: skip
    messages = [
        b"B" + bytes(20),
        relation,
        b"U" + struct.pack(">I", 7) + b"N" + _tuple(b"10", b"x" * 10),
        b"U" + struct.pack(">I", 7) + b"K" + _tuple(b"3", None) + b"N" + _tuple(b"4", None),
        b"C" + bytes(25),
    ]
    data = b"".join(m + b"\n" for m in messages)
    assert [data[a:b] for a, b in cdc_stream.split_messages(data)] == messages
    assert cdc_stream.recvlogical_update_ids(data).tolist() == [10, 4]
    with pytest.raises(ValueError, match="no line break"):
        list(cdc_stream.split_messages(data[:-1] + b"x"))
    insert = b"I" + struct.pack(">I", 7) + b"N" + _tuple(b"5", None)
    with pytest.raises(ValueError, match="unexpected"):
        cdc_stream.recvlogical_update_ids(data + insert + b"\n")

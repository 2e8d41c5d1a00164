"""benchmarks/sql_snapshot.py (B1) and benchmarks/sql_upsert.py (B4) on 2,000 rows, one
measured round, omconnect only (the peers are not run): the scripts still run end to end
against the local PostgreSQL, verify what they wrote and render their results.

They run against ``POSTGRES_URL`` (default: the local server's ``test`` database); when no
PostgreSQL answers there the tests fail and say how to start it. The tables they create
(named after this process) are dropped.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
# benchmarks/ is a folder of scripts that import each other by plain name, as when run.
sys.path.insert(0, str(BENCHMARKS))

import sql_snapshot  # noqa: E402
import sql_upsert  # noqa: E402

ROWS = 2_000


def bench_postgres(query: str = "SELECT 1") -> object:
    """The value of ``query`` on the benchmarks' PostgreSQL; the test fails saying how to
    start it when it cannot be reached."""
    try:
        with sql_snapshot.connect(sql_snapshot.DEFAULT_URL) as conn:
            return conn.execute(query).fetchone()[0]
    except Exception as error:  # psycopg missing or no server: nothing to run against
        pytest.fail(
            f"no PostgreSQL at {sql_snapshot.DEFAULT_URL} ({type(error).__name__}: {error}); "
            "start it with `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main "
            "start` or set POSTGRES_URL",
            pytrace=False,
        )


@pytest.fixture(scope="module")
def url() -> str:
    bench_postgres()
    return sql_snapshot.DEFAULT_URL


@pytest.fixture()
def table(url: str) -> Iterator[str]:
    name = f"smoke_{os.getpid()}"
    yield name
    with sql_snapshot.connect(url) as conn:
        for suffix in ("", "_omconnect", "_omconnect_positions"):
            sql_snapshot.drop_table(conn, f"{name}{suffix}")


def _outputs(tmp_path: Path) -> list[str]:
    readme = tmp_path / "README.md"
    readme.write_text("# Benchmarks\n\nkept text\n")
    return [
        *("--rows", str(ROWS), "--runs", "1", "--warmups", "0"),
        *("--work-dir", str(tmp_path / "work"), "--readme", str(readme)),
        *("--json", str(tmp_path / "results.json")),
    ]


def test_snapshot_runs_and_verifies(url: str, table: str, tmp_path: Path) -> None:
    # In the order of the results: the B1a contestants, then B1b's.
    ceiling = ["copy-binary"] if shutil.which("psql") else []
    contestants = ["omconnect", "omconnect-via-topic", "adbc-parquet", *ceiling, "omconnect-topic"]
    exit_code = sql_snapshot.main(
        [
            *_outputs(tmp_path),
            "--url",
            url,
            "--table",
            table,
            "--contestants",
            ",".join(contestants),
        ]
    )
    assert exit_code == 0
    results = json.loads((tmp_path / "results.json").read_text())
    by_name = {c["contestant"]: c for c in results["contestants"]}
    assert list(by_name) == contestants
    checked = ("omconnect", "omconnect-via-topic", "adbc-parquet", "omconnect-topic")
    assert {by_name[name]["status"] for name in checked} == {"verified"}
    assert by_name["omconnect"]["workload"] == by_name["omconnect-via-topic"]["workload"] == "B1a"
    assert by_name["omconnect-topic"]["workload"] == "B1b"
    assert all(c["failure"] is None for c in results["contestants"])
    assert by_name["omconnect"]["peak_rss_bytes"] > 10 << 20  # a Python process, measured
    [run] = results["records"]["omconnect"]
    assert run["checksum"]["count"] == ROWS
    text = (tmp_path / "README.md").read_text()
    assert text.startswith("# Benchmarks\n\nkept text\n")
    assert "<!-- results:sql-snapshot:start -->" in text and "| `omconnect-topic` |" in text
    report = (tmp_path / "results.md").read_text()
    assert report.startswith("# B1")
    assert "- B1a `omconnect` against `adbc-parquet` (no runtime): " in report
    assert "- B1a `omconnect` against `omconnect-via-topic` (the same through a topic): " in report
    # The input table is reused when it holds the right rows.
    assert sql_snapshot.ensure_table(url, table, ROWS) == "reused"


def test_the_no_runtime_floor_raises_what_its_reader_met(url: str, tmp_path: Path) -> None:
    # The reader thread's error reaches the caller; nothing waits forever for its rows.
    with pytest.raises(Exception, match="does_not_exist"):
        sql_snapshot.run_adbc_parquet(url, "does_not_exist", tmp_path / "out")


def test_upsert_runs_and_verifies(url: str, table: str, tmp_path: Path) -> None:
    exit_code = sql_upsert.main(
        [
            *_outputs(tmp_path),
            *("--url", url, "--table", table, "--contestants", "omconnect"),
            *("--data-dir", str(tmp_path / "data")),
        ]
    )
    assert exit_code == 0
    results = json.loads((tmp_path / "results.json").read_text())
    [ours] = results["contestants"]
    assert (ours["contestant"], ours["status"], ours["failure"]) == ("omconnect", "verified", None)
    assert results["distinct_keys"] == 1_800
    [run] = results["records"]["omconnect"]
    assert run["checksum"]["count"] == 1_800
    assert "<!-- results:sql-upsert:start -->" in (tmp_path / "README.md").read_text()


def test_upsert_input_repeats_every_ninth_key_later() -> None:
    records = sql_upsert.upsert_records(100)
    ids = records.column("id").to_pylist()
    assert len(ids) == 100 and len(set(ids)) == sql_upsert.distinct_keys(100) == 90
    statuses = records.column("status").to_pylist()
    updated = [i for i, s in zip(ids, statuses, strict=True) if s == sql_upsert.UPDATED]
    assert updated == list(range(9, 91, 9))
    for key in updated:  # the update comes after the first version of its key
        first, last = ids.index(key), len(ids) - 1 - ids[::-1].index(key)
        assert first < last and statuses[last] == sql_upsert.UPDATED

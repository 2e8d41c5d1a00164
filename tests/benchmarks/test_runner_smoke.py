"""benchmarks/csv_to_parquet.py: arguments, the oracle's verdict per run, the README section,
and one real tiny race (omconnect and pyarrow on 10k rows)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
# benchmarks/ is a folder of scripts that import each other by plain name, as when run.
sys.path.insert(0, str(BENCHMARKS))

import csv_to_parquet  # noqa: E402
import results_report  # noqa: E402
from contestants import PYARROW  # noqa: E402

ROWS = 10_000


def test_defaults_are_the_standard_workload() -> None:
    args = csv_to_parquet.parse_args([])
    assert (args.rows, args.warmups, args.runs) == (1_000_000, 1, 3)
    assert args.memory_rows == [5_000_000]
    assert args.contestants == csv_to_parquet.ALL_CONTESTANTS


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(SystemExit):
        csv_to_parquet.parse_args(["--runs", "0"])
    with pytest.raises(SystemExit):
        csv_to_parquet.parse_args(["--memory-rows", "5M"])
    assert csv_to_parquet.parse_args(["--memory-rows", "0"]).memory_rows == []
    with pytest.raises(SystemExit, match="unknown contestants: kafka-connect"):
        csv_to_parquet.select_contestants(["omconnect", "kafka-connect"], Path("."), False)


def _write_ids(directory: Path, ids: list[int]) -> Path:
    directory.mkdir(parents=True)
    pq.write_table(pa.table({"id": pa.array(ids, pa.int64())}), directory / "part.parquet")
    return directory


def test_verify_accepts_exact_ids_and_refuses_missing_or_repeated(tmp_path: Path) -> None:
    exact = _write_ids(tmp_path / "exact", list(range(1, 101)))
    assert csv_to_parquet.verify(exact, 100)[1] is None
    short = _write_ids(tmp_path / "short", list(range(1, 100)))
    assert "wrong output" in (csv_to_parquet.verify(short, 100)[1] or "")
    repeated = _write_ids(tmp_path / "repeated", [*range(1, 100), 99])
    assert "wrong output" in (csv_to_parquet.verify(repeated, 100)[1] or "")
    assert "unreadable" in (csv_to_parquet.verify(tmp_path / "absent", 100)[1] or "")


def test_readme_section_is_replaced_and_other_text_kept() -> None:
    text = "# Benchmarks\n\nintro\n\n<!-- results:b3:start -->\nold\n<!-- results:b3:end -->\nend\n"
    updated = results_report.replace_section(text, "b3", "new table")
    assert updated.startswith("# Benchmarks\n\nintro\n\n")
    assert "new table" in updated and "old" not in updated and updated.endswith("end\n")
    assert results_report.replace_section(updated, "b3", "newer").count("results:b3:start") == 1
    appended = results_report.replace_section("# Benchmarks\n", "b1", "x")
    assert appended.endswith("<!-- results:b1:start -->\nx\n<!-- results:b1:end -->\n")


@pytest.fixture(scope="module")
def t10k(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return csv_to_parquet.ensure_csv(tmp_path_factory.mktemp("data"), ROWS)


def test_a_run_with_wrong_output_is_failed_not_timed(t10k: Path, tmp_path: Path) -> None:
    # pyarrow writes the 10k rows it reads; claiming 10,001 makes the oracle refuse the run.
    record = csv_to_parquet.run_once(PYARROW, t10k, ROWS + 1, tmp_path / "run", "measured")
    assert record.failure is not None and "wrong output" in record.failure
    assert record.checksum is not None and record.checksum["count"] == ROWS


@pytest.mark.parametrize("storage", ["local", "s3"])
def test_tiny_race_writes_verified_results(t10k: Path, tmp_path: Path, storage: str) -> None:
    """The race end to end: on the local disk, and on S3 (moto's server in a subprocess)."""
    readme = tmp_path / "README.md"
    readme.write_text("# Benchmarks\n\nkept text\n")
    results_json = tmp_path / "results.json"
    exit_code = csv_to_parquet.main(
        [
            *("--rows", str(ROWS), "--warmups", "0", "--runs", "1", "--memory-rows", "20000"),
            *("--contestants", "omconnect,pyarrow", "--data-dir", str(t10k.parent)),
            *("--work-dir", str(tmp_path / "work"), "--readme", str(readme)),
            *("--json", str(results_json), "--storage", storage),
        ]
    )
    assert exit_code == 0
    results = json.loads(results_json.read_text())
    assert results["settings"]["storage"] == storage
    by_name = {c["name"]: c for c in results["contestants"]}
    assert [by_name[n]["status"] for n in ("omconnect", "pyarrow")] == ["ok", "ok"]
    assert by_name["omconnect"]["runs"][0]["checksum"]["count"] == ROWS
    assert by_name["omconnect"]["peak_rss_bytes"] > 10 << 20  # a Python process, measured
    assert results["omconnect_time_ratio"]["pyarrow"] > 0
    [memory_point] = results["memory_check"]["points"]
    assert memory_point["status"] == "ok" and memory_point["run"]["checksum"]["count"] == 20_000
    text = readme.read_text()
    assert text.startswith("# Benchmarks\n\nkept text\n")
    section = csv_to_parquet.SECTIONS[storage]
    assert f"<!-- results:{section}:start -->" in text and "| `pyarrow` |" in text
    assert results_json.with_suffix(".md").read_text().startswith("# B3")
    for written in (text, results_json.read_text()):  # no endpoint port, no path of this machine
        assert "http://" not in written and str(tmp_path) not in written

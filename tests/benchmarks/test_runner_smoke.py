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
from contestants import PYARROW, Contestant, Invocation  # noqa: E402
from csv_to_parquet_report import markdown_section  # noqa: E402

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


def test_another_size_gets_its_own_section_and_files() -> None:
    assert csv_to_parquet.section_name("local", 1_000_000) == "csv-to-parquet"
    assert csv_to_parquet.section_name("s3", 1_000_000) == "csv-to-parquet-s3"
    assert csv_to_parquet.section_name("local", 6_000_000) == "csv-to-parquet-6m"
    assert csv_to_parquet.section_name("s3", 6_000_000) == "csv-to-parquet-s3-6m"
    assert csv_to_parquet.section_name("local", 20_000) == "csv-to-parquet-20k"
    assert csv_to_parquet.section_name("local", 12_345) == "csv-to-parquet-12345"
    assert csv_to_parquet.parse_args(["--rows", "6000000"]).json.name == "csv_to_parquet_6m.json"
    s3 = csv_to_parquet.parse_args(["--storage", "s3", "--rows", "6000000"])
    assert s3.json.name == "csv_to_parquet_s3_6m.json"
    assert s3.memory_rows == []  # the default 5M memory check is for races on fewer rows
    assert csv_to_parquet.title("local", 1_000_000) == "B3: CSV -> Parquet"
    assert csv_to_parquet.title("local", 6_000_000) == "B3: CSV -> Parquet, 6M rows"


def test_once_names_slow_contestants_only() -> None:
    assert csv_to_parquet.parse_args([]).once == []
    args = csv_to_parquet.parse_args(["--once", "dlt-read_csv, sling"])
    assert args.once == ["dlt-read_csv", "sling"]
    with pytest.raises(SystemExit):
        csv_to_parquet.parse_args(["--once", "kafka-connect"])
    with pytest.raises(SystemExit):
        csv_to_parquet.parse_args(["--once", "sling,pyarrow"])  # the target needs every round


def test_a_once_contestant_runs_only_in_the_last_round(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def fake(name: str) -> Contestant:
        return Contestant(name, f"{name}, faked", lambda csv, run_dir: Invocation([], {}, run_dir))

    fakes = [fake(name) for name in ("omconnect", "pyarrow", "sling")]
    monkeypatch.setattr(csv_to_parquet, "select_contestants", lambda *_: (fakes, {}))
    ran: list[tuple[str, str]] = []

    def run_once(contestant: Contestant, csv: Path, rows: int, run_dir: Path, phase: str, *_):
        ran.append((phase, contestant.name))
        wall = {"omconnect": 2.0, "pyarrow": 1.0}.get(contestant.name, 9.0)
        return csv_to_parquet.RunRecord(
            contestant.name, phase, rows, wall, wall, 1 << 20, 1 << 20, 1 << 20, None, None, None
        )

    monkeypatch.setattr(csv_to_parquet, "run_once", run_once)
    args = csv_to_parquet.parse_args(
        [
            *("--rows", "100", "--warmups", "1", "--runs", "2", "--memory-rows", "0"),
            *("--once", "sling", "--data-dir", str(tmp_path), "--work-dir", str(tmp_path)),
        ]
    )
    results = csv_to_parquet.run_benchmark(args)
    assert [name for phase, name in ran if name == "sling"] == ["sling"]
    assert ran[-1] == ("measured", "sling") and len(ran) == 7
    assert results["settings"]["once"] == ["sling"]
    assert results["omconnect_time_ratio"] == {"pyarrow": 2.0, "sling": 2.0 / 9.0}
    section = markdown_section(results)
    assert "| `sling` | 9.00 s (1 run) |" in section and "| `pyarrow` | 1.00 s |" in section
    assert "(`sling`: 1 measured run, in the last round, no warm-up)" in section


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
    section = csv_to_parquet.section_name(storage, ROWS)  # csv-to-parquet[-s3]-10k
    assert f"<!-- results:{section}:start -->" in text and "| `pyarrow` |" in text
    assert results_json.with_suffix(".md").read_text().startswith("# B3")
    for written in (text, results_json.read_text()):  # no endpoint port, no path of this machine
        assert "http://" not in written and str(tmp_path) not in written

"""B3, files: the t1m CSV -> Parquet, omconnect against plain pyarrow and the peers.

    python benchmarks/csv_to_parquet.py                        # 1M rows, 1 warm-up + 3 runs
    python benchmarks/csv_to_parquet.py --rows 100000 --runs 1 --contestants omconnect,pyarrow
    python benchmarks/csv_to_parquet.py --storage s3 --memory-rows 6000000   # on an S3 endpoint
    python benchmarks/csv_to_parquet.py --rows 6000000 --memory-rows 0 --once dlt-read_csv,sling

Every contestant runs in the same invocation, as a subprocess in a fresh directory per run,
round by round (each round runs every contestant once, so a change in the shared machine's
load hits all of them alike). Each run is measured (wall, CPU, peak RSS of the process tree:
``process_meter.py``) and its output is checked with the oracle (row count and key-set
checksum of the ids): a run with wrong output is FAILED and its time is never reported.
omconnect also runs once on a larger file (``--memory-rows``) to show its peak RSS does not
grow with the input. Results go to ``benchmarks/README.md`` (its ``csv-to-parquet`` section)
and ``benchmarks/results/csv_to_parquet.json`` (and ``.md``).

With ``--storage s3`` the same race runs on object storage: moto's S3 server in a subprocess
(``s3_endpoint.py``), the CSV files uploaded to its bucket off the clock, each contestant
reading its object and writing Parquet under an ``out-<run>/`` prefix; after each run that
prefix is downloaded (off the clock) for the oracle, then deleted. Results go to the
``csv-to-parquet-s3`` section and ``results/csv_to_parquet_s3.json`` (and ``.md``).

A race at another size than the standard 1,000,000 rows keeps its own results: with
``--rows 6000000`` the ``csv-to-parquet-6m`` (or ``csv-to-parquet-s3-6m``) section and
``results/csv_to_parquet_6m.json`` (``_s3_6m``); see ``size_label``. ``--once`` names slow
contestants that run a single measured run, in the last round, with no warm-up, so a large
race does not take hours; omconnect and pyarrow, whose times the target compares, run every
round.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import generate
import oracle
from contestants import (
    BENCHMARKS_DIR,
    OMCONNECT,
    PYARROW,
    Contestant,
    omconnect_at,
    s3_contestants,
)
from csv_to_parquet_report import markdown_section, summarise
from peers import peer_contestants
from process_meter import run_measured
from results_report import update_readme, write_results
from s3_endpoint import S3Endpoint, running_s3

SECTIONS = {"local": "csv-to-parquet", "s3": "csv-to-parquet-s3"}
TITLES = {"local": "B3: CSV -> Parquet", "s3": "B3 on S3: CSV -> Parquet, object to objects"}
JSON_NAMES = {"local": "csv_to_parquet.json", "s3": "csv_to_parquet_s3.json"}
ALL_CONTESTANTS = ["omconnect", "pyarrow", "dlt-read_csv", "dlt-arrow", "sling"]
# The target compares these two, so they run every round and cannot be named in --once.
EVERY_ROUND = ["omconnect", "pyarrow"]
STANDARD_ROWS = 1_000_000  # the race whose results are the unsuffixed section and files
DEFAULT_MEMORY_ROWS = 5_000_000
RUN_TIMEOUT_SECONDS = 1800.0  # per run at the standard size; scaled with the rows above it


@dataclass(frozen=True)
class RunRecord:
    """One run of one contestant; ``failure`` is None only for a verified, successful run."""

    contestant: str
    phase: str  # "warm-up", "measured" or "memory"
    rows: int
    wall_seconds: float
    cpu_seconds: float
    peak_rss_bytes: int
    max_process_rss_bytes: int
    peak_tree_rss_bytes: int
    inner_seconds: float | None
    checksum: dict[str, int] | None
    failure: str | None


def size_label(rows: int) -> str | None:
    """The suffix of a race's section and results files: None for the standard 1,000,000
    rows, ``6m`` for 6,000,000, ``20k`` for 20,000, else the row count itself."""
    if rows == STANDARD_ROWS:
        return None
    for unit, suffix in ((1_000_000, "m"), (1_000, "k")):
        if rows % unit == 0:
            return f"{rows // unit}{suffix}"
    return str(rows)


def section_name(storage: str, rows: int) -> str:
    """The README section of a race: ``csv-to-parquet[-s3][-6m]``."""
    label = size_label(rows)
    return SECTIONS[storage] + ("" if label is None else f"-{label}")


def json_name(storage: str, rows: int) -> str:
    """The results file of a race: ``csv_to_parquet[_s3][_6m].json``."""
    label = size_label(rows)
    stem = JSON_NAMES[storage].removesuffix(".json")
    return f"{stem}.json" if label is None else f"{stem}_{label}.json"


def title(storage: str, rows: int) -> str:
    """The heading of the results Markdown: the storage's title, and the size when not 1M."""
    if rows == STANDARD_ROWS:
        return TITLES[storage]
    size = f"{rows // 1_000_000}M" if rows % 1_000_000 == 0 else f"{rows:,}"
    return f"{TITLES[storage]}, {size} rows"


def ensure_csv(data_dir: Path, rows: int) -> Path:
    """The t1m CSV of ``rows`` rows, generated once and reused (the generator is deterministic)."""
    path = data_dir / f"t1m-{rows}.csv"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.partial")
        generate.write_csv(partial, rows)
        partial.rename(path)  # an interrupted generation is never mistaken for a finished one
    return path


def verify(output_dir: Path, rows: int) -> tuple[dict[str, int] | None, str | None]:
    """The checksum found in ``output_dir`` and the failure (None when ids 1..rows are exact)."""
    try:
        found = oracle.key_set_checksum(output_dir)
    except (OSError, ValueError, KeyError) as error:
        return None, f"output unreadable: {error}"
    except Exception as error:  # pyarrow raises its own types for a torn or wrong file
        return None, f"output unreadable: {type(error).__name__}: {error}"
    expected = oracle.expected_checksum(rows)
    if found != expected:
        return asdict(found), f"wrong output: {asdict(found)} != expected {asdict(expected)}"
    return asdict(found), None


def run_once(
    contestant: Contestant,
    csv_path: Path,
    rows: int,
    run_dir: Path,
    phase: str,
    s3: S3Endpoint | None = None,
) -> RunRecord:
    """Run ``contestant`` once in a fresh ``run_dir``, measure and verify it (on ``s3``: its
    output downloaded first, off the clock), then clean up."""
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    invocation = contestant.prepare(csv_path, run_dir)
    os.sync()  # the previous run's dirty pages are written back before this one starts
    timeout = RUN_TIMEOUT_SECONDS * max(1.0, rows / STANDARD_ROWS)
    measured = run_measured(invocation.argv, run_dir, invocation.env, timeout)
    checksum: dict[str, int] | None = None
    if measured.returncode != 0:
        last_line = (measured.stderr_tail.strip().splitlines() or ["(no stderr)"])[-1]
        failure: str | None = f"exit {measured.returncode}: {last_line}"
    else:
        if s3 is not None and invocation.output_prefix is not None:
            s3.download(invocation.output_prefix, invocation.output_dir)
        checksum, failure = verify(invocation.output_dir, rows)
    shutil.rmtree(run_dir, ignore_errors=True)
    if s3 is not None:
        s3.delete_outputs()
    record = RunRecord(
        contestant=contestant.name,
        phase=phase,
        rows=rows,
        wall_seconds=round(measured.wall_seconds, 3),
        cpu_seconds=round(measured.cpu_seconds, 3),
        peak_rss_bytes=measured.peak_rss_bytes,
        max_process_rss_bytes=measured.max_process_rss_bytes,
        peak_tree_rss_bytes=measured.peak_tree_rss_bytes,
        inner_seconds=contestant.inner_seconds(measured.stdout + measured.stderr_tail),
        checksum=checksum,
        failure=failure,
    )
    status = record.failure or "ok"
    print(
        f"  {phase:8} {contestant.name:13} {record.wall_seconds:7.2f} s  "
        f"{record.peak_rss_bytes / (1 << 20):6.0f} MiB  {status}",
        flush=True,
    )
    return record


def select_contestants(
    names: list[str], work_dir: Path, install_peers: bool, s3: S3Endpoint | None = None
) -> tuple[list[Contestant], dict[str, str]]:
    """The contestants named, in the order of ``ALL_CONTESTANTS``, and the peer versions;
    with ``s3``, those reading and writing that endpoint."""
    unknown = sorted(set(names) - set(ALL_CONTESTANTS))
    if unknown:
        raise SystemExit(f"unknown contestants: {', '.join(unknown)}; known: {ALL_CONTESTANTS}")
    own = [OMCONNECT, PYARROW] if s3 is None else s3_contestants(s3)
    available = {contestant.name: contestant for contestant in own}
    peer_versions: dict[str, str] = {}
    if set(names) - set(available):
        peers, peer_versions = peer_contestants(work_dir, install_peers, s3)
        available.update({peer.name: peer for peer in peers})
    return [available[name] for name in ALL_CONTESTANTS if name in names], peer_versions


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--rows",
        type=int,
        default=STANDARD_ROWS,
        help="rows of the t1m CSV; other than 1,000,000, the results go to a section and files "
        "of their own (csv-to-parquet-6m, results/csv_to_parquet_6m.json for 6,000,000)",
    )
    parser.add_argument("--warmups", type=int, default=1, help="unmeasured runs first")
    parser.add_argument("--runs", type=int, default=3, help="measured runs (median reported)")
    parser.add_argument(
        "--memory-rows",
        help="comma-separated row counts of the one-run omconnect memory checks (0: none; "
        f"default: {DEFAULT_MEMORY_ROWS} when --rows is smaller, else none)",
    )
    parser.add_argument(
        "--contestants",
        default=",".join(ALL_CONTESTANTS),
        help=f"comma-separated subset of {','.join(ALL_CONTESTANTS)}",
    )
    parser.add_argument(
        "--once",
        default="",
        metavar="CONTESTANTS",
        help="comma-separated slow contestants that run once, measured, in the last round "
        f"only (no warm-up); not {' or '.join(EVERY_ROUND)}, which run every round",
    )
    parser.add_argument(
        "--baseline",
        metavar="REF",
        help="also run omconnect as of this git ref (e.g. HEAD~1), to compare two commits",
    )
    parser.add_argument("--data-dir", type=Path, default=BENCHMARKS_DIR / "data")
    parser.add_argument("--work-dir", type=Path, default=BENCHMARKS_DIR / "work")
    parser.add_argument(
        "--storage",
        choices=sorted(SECTIONS),
        default="local",
        help="where the CSV and the Parquet files live: the local disk or an S3 endpoint "
        "(moto's server, started here)",
    )
    parser.add_argument("--readme", type=Path, default=BENCHMARKS_DIR / "README.md")
    parser.add_argument(
        "--json",
        type=Path,
        help="the results file (default: results/csv_to_parquet[_s3][_6m].json)",
    )
    parser.add_argument(
        "--render-only",
        action="store_true",
        help="run nothing: rewrite the README section from the existing --json results "
        "(the section of the storage and rows recorded in that JSON)",
    )
    parser.add_argument(
        "--no-install-peers",
        action="store_true",
        help="do not create the peers' virtualenv; peers not installed are reported not run",
    )
    args = parser.parse_args(argv)
    if args.memory_rows is None:
        args.memory_rows = str(DEFAULT_MEMORY_ROWS) if args.rows < DEFAULT_MEMORY_ROWS else "0"
    try:
        args.memory_rows = [int(n) for n in args.memory_rows.split(",") if int(n) > 0]
    except ValueError:
        parser.error(f"--memory-rows: not a list of row counts: {args.memory_rows!r}")
    if args.rows < 1 or args.runs < 1 or args.warmups < 0:
        parser.error("--rows and --runs must be >= 1, --warmups >= 0")
    args.contestants = _names(args.contestants)
    args.once = _names(args.once)
    unknown = sorted(set(args.once) - set(ALL_CONTESTANTS))
    if unknown:
        parser.error(f"--once: unknown contestants: {', '.join(unknown)}")
    every_round = sorted(set(args.once) & set(EVERY_ROUND))
    if every_round:
        parser.error(f"--once: {', '.join(every_round)} run every round (the target uses them)")
    if args.json is None:
        args.json = BENCHMARKS_DIR / "results" / json_name(args.storage, args.rows)
    if args.baseline and args.storage == "s3":
        parser.error("--baseline runs on local storage only")
    return args


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, write the results; exit 1 when omconnect FAILED."""
    args = parse_args(argv)
    if args.render_only:
        results = json.loads(args.json.read_text())
        storage, rows = results["settings"].get("storage", "local"), results["settings"]["rows"]
        body = markdown_section(results)
        args.json.with_suffix(".md").write_text(f"# {title(storage, rows)}\n\n{body}\n")
        update_readme(args.readme, section_name(storage, rows), body)
        return 0
    if args.storage == "s3":
        with running_s3(args.work_dir / "moto-server.log") as s3:
            results = run_benchmark(args, s3)
    else:
        results = run_benchmark(args)
    write_results(
        results,
        args.json,
        args.readme,
        section_name(args.storage, args.rows),
        title(args.storage, args.rows),
        markdown_section(results),
    )
    omconnect = next((c for c in results["contestants"] if c["name"] == OMCONNECT.name), None)
    return 1 if omconnect is not None and omconnect["status"] == "FAILED" else 0


def run_benchmark(args: argparse.Namespace, s3: S3Endpoint | None = None) -> dict[str, Any]:
    """Every round of the race (then omconnect's memory checks), on ``s3`` when given; the
    results as ``summarise`` makes them."""
    started = datetime.now(UTC)
    start_load = [round(x, 2) for x in os.getloadavg()]
    contestants, peer_versions = select_contestants(
        args.contestants, args.work_dir, not args.no_install_peers, s3
    )
    if args.baseline:
        baseline = omconnect_at(args.baseline, args.work_dir)
        at = next((i for i, c in enumerate(contestants) if c.name == OMCONNECT.name), -1)
        contestants.insert(at + 1, baseline)
    csv_path = ensure_csv(args.data_dir, args.rows)
    where = "" if s3 is None else f", uploaded to {s3.upload(csv_path)}"
    print(f"B3 csv -> parquet: {csv_path} ({args.rows:,} rows){where}", flush=True)
    runs_dir = args.work_dir / "runs"
    records: list[RunRecord] = []
    runnable = [c for c in contestants if c.not_run is None]
    last_round = args.warmups + args.runs - 1
    for round_index in range(last_round + 1):
        phase = "warm-up" if round_index < args.warmups else "measured"
        for contestant in runnable:
            if contestant.name in args.once and round_index != last_round:
                continue  # a slow contestant: its one measured run is in the last round
            run_dir = runs_dir / contestant.name
            records.append(run_once(contestant, csv_path, args.rows, run_dir, phase, s3))
    omconnect = next((c for c in runnable if c.name == OMCONNECT.name), None)
    for memory_rows in args.memory_rows if omconnect is not None else []:
        assert omconnect is not None
        memory_csv = ensure_csv(args.data_dir, memory_rows)
        if s3 is not None:
            s3.upload(memory_csv)
        print(f"memory check: {memory_csv} ({memory_rows:,} rows)", flush=True)
        run_dir = runs_dir / f"{OMCONNECT.name}-memory"
        records.append(run_once(omconnect, memory_csv, memory_rows, run_dir, "memory", s3))
    return summarise(
        started=started,
        csv_path=csv_path,
        rows=args.rows,
        warmups=args.warmups,
        runs=args.runs,
        contestants=contestants,
        records=[asdict(record) for record in records],
        peer_versions=peer_versions,
        storage=args.storage,
        start_load=start_load,
        once=[name for name in args.once if name in args.contestants],
    )


if __name__ == "__main__":
    sys.exit(main())

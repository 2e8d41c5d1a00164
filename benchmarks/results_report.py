"""Where a benchmark ran and how its results read: machine, versions, Markdown, README section.

A read benchmark (``avro_read.py``, ``csv_read_paths.py``) runs each reader in rounds of
measured subprocesses (``run_rounds``, ``run_verified_read``) that print ``read_result``, and
reports the medians of the measured rounds (``summarise_reads``).

Results are committed: the raw JSON under ``benchmarks/results/`` and a Markdown section in
``benchmarks/README.md`` between ``<!-- results:NAME:start -->`` and
``<!-- results:NAME:end -->``; the rest of the README is left as it is.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import oracle
from process_meter import run_measured

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
MIB = 1 << 20


def machine_facts() -> dict[str, Any]:
    """CPU count and model, RAM, kernel and load: what a reader needs to compare numbers."""
    model = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    ram_bytes = 0
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram_bytes = int(line.split()[1]) * 1024
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "ram_gib": round(ram_bytes / (1 << 30), 1),
        "kernel": platform.release(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def git_commit(root: Path = REPOSITORY_ROOT) -> str:
    """The short commit of ``root``, with ``+dirty`` when files differ from it."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{commit}+dirty" if dirty else commit


def replace_section(text: str, name: str, body: str) -> str:
    """``text`` with the results section ``name`` set to ``body`` (appended when absent)."""
    start = f"<!-- results:{name}:start -->"
    end = f"<!-- results:{name}:end -->"
    block = f"{start}\n{body.rstrip()}\n{end}"
    head, found_start, rest = text.partition(start)
    if not found_start:
        return f"{text.rstrip()}\n\n{block}\n" if text.strip() else f"{block}\n"
    _, found_end, tail = rest.partition(end)
    if not found_end:
        raise ValueError(f"{start} has no matching {end}")
    return f"{head}{block}{tail}"


def update_readme(readme: Path, name: str, body: str) -> None:
    """Rewrite the results section ``name`` of ``readme`` in place (creating the file)."""
    text = readme.read_text() if readme.exists() else ""
    readme.parent.mkdir(parents=True, exist_ok=True)
    readme.write_text(replace_section(text, name, body))


def write_json(path: Path, results: Mapping[str, Any]) -> None:
    """Write ``results`` as indented JSON (creating its directory)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, sort_keys=False) + "\n")


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines.extend("| " + " | ".join(row) + " |" for row in rows)
    return "\n".join(lines)


def mib(value: float | None) -> str:
    return "-" if value is None else f"{value / MIB:,.0f} MiB"


def seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


def rate(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def times(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def run_line(results: Mapping[str, Any], versions: str = "") -> str:
    """The first line of a results section: when, on what machine, with which versions
    (``versions`` names more libraries after pyarrow's, e.g. ``", fastavro 1.9"``)."""
    machine = results["machine"]
    return (
        f"Run {results['started']} on {machine['cpus']} CPUs ({machine['cpu_model']}), "
        f"load average at start {machine['load_average_at_start'][0]} (a shared machine). "
        f"Python {results['python']}, pyarrow {results['pyarrow']}{versions}, omconnect at "
        f"commit `{results['commit']}`."
    )


def timing_row(
    entry: Mapping[str, Any],
    name_key: str,
    what: str,
    reference: Mapping[str, Any] | None,
    time_key: str = "read_seconds_median",
) -> list[str]:
    """A table row of one reader's (or writer's) medians: name, what it is, its time, rows/s,
    wall, CPU, peak RSS, its time against ``reference``'s, and its outcome."""
    median = entry[time_key]
    base = reference[time_key] if reference else None
    return [
        f"`{entry[name_key]}`",
        what,
        seconds(median),
        rate(entry["rows_per_second"]),
        seconds(entry["wall_seconds_median"]),
        seconds(entry["cpu_seconds_median"]),
        mib(entry["peak_rss_bytes"]),
        times(median / base) if median and base else "-",
        entry["status"] if not entry["failure"] else f"FAILED: {entry['failure']}",
    ]


def common_results(args: argparse.Namespace) -> dict[str, Any]:
    """The facts every results file starts with (taken as the run starts)."""
    import pyarrow

    return {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine_facts(),
        "python": sys.version.split()[0],
        "pyarrow": pyarrow.__version__,
        "commit": git_commit(),
        "rows": args.rows,
        "warmups": args.warmups,
        "runs": args.runs,
    }


def chosen_contestants(
    parser: argparse.ArgumentParser, listed: str, known: Sequence[str]
) -> list[str]:
    """The comma-separated contestants of an option, each one of ``known`` (else a usage
    error naming the unknown ones)."""
    chosen = [name.strip() for name in listed.split(",") if name.strip()]
    unknown = sorted(set(chosen) - set(known))
    if unknown:
        parser.error(f"unknown contestants: {', '.join(unknown)}; known: {list(known)}")
    return chosen


def write_results(
    results: dict[str, Any], json_path: Path, readme: Path, section: str, title: str, body: str
) -> None:
    """``results`` as JSON, ``body`` (its Markdown) under ``title`` next to it and as the
    README's ``section``; the Markdown is printed too."""
    write_json(json_path, results)
    json_path.with_suffix(".md").write_text(f"# {title}\n\n{body}\n")
    update_readme(readme, section, body)
    print(body)


def read_result(
    rows: int, started: float, checksum: oracle.KeySetChecksum, bad_rows: int
) -> dict[str, Any]:
    """What a reading subprocess prints (one JSON line) after reading since ``started``."""
    return {
        "rows": rows,
        "seconds": time.perf_counter() - started,
        "checksum": [checksum.count, checksum.sum, checksum.xor],
        "bad_rows": bad_rows,
    }


def read_with_source(connector: str, path: Path) -> dict[str, Any]:
    """Read ``path`` with omconnect's ``connector`` source (no broker, no sink); what a run
    prints (``read_result``)."""
    from omconnect.runtime.testing import SourceDriver

    started = time.perf_counter()
    source = SourceDriver(connector, {"path": str(path)})
    checksum = oracle.EMPTY
    rows = 0
    while (polled := source.poll()) is not None:
        for batch in polled:
            rows += batch.values.num_rows
            checksum = checksum + oracle.checksum_of_keys(batch.values.column("id"))
    return read_result(rows, started, checksum, len(source.errors.raw_reports))


def read_benchmark_arguments(
    description: str, benchmarks_dir: Path, json_name: str
) -> argparse.ArgumentParser:
    """The options every read benchmark takes (sizes, rounds, folders, outputs, and the hidden
    ``--read`` of its measured subprocesses)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--warmups", type=int, default=1)
    parser.add_argument("--data-dir", type=Path, default=benchmarks_dir / "data")
    parser.add_argument("--work-dir", type=Path, default=benchmarks_dir / "work")
    parser.add_argument("--readme", type=Path, default=benchmarks_dir / "README.md")
    parser.add_argument("--json", type=Path, default=benchmarks_dir / "results" / json_name)
    parser.add_argument("--render-only", action="store_true")
    parser.add_argument("--read", type=Path, help=argparse.SUPPRESS)
    return parser


def run_verified_read(command: Sequence[str], rows: int, work_dir: Path) -> dict[str, Any]:
    """One measured run of ``command``, a reader printing ``read_result``, verified: its
    ``failure`` says why when it failed or did not read the ``rows`` rows generated."""
    work_dir.mkdir(parents=True, exist_ok=True)
    measured = run_measured([sys.executable, *command], work_dir)
    record: dict[str, Any] = {
        "wall_seconds": round(measured.wall_seconds, 3),
        "cpu_seconds": round(measured.cpu_seconds, 3),
        "peak_rss_bytes": measured.peak_rss_bytes,
        "read_seconds": None,
        "failure": None,
    }
    if measured.returncode != 0:
        record["failure"] = f"exit {measured.returncode}: {measured.stderr_tail[-300:]}"
        return record
    printed = json.loads(measured.stdout.strip().splitlines()[-1])
    expected = oracle.expected_checksum(rows)
    found = oracle.KeySetChecksum(*printed["checksum"])
    if printed["rows"] != rows or found != expected or printed["bad_rows"]:
        record["failure"] = (
            f"wrong output: {printed['rows']} rows, {printed['bad_rows']} bad, "
            f"checksum {found} != {expected}"
        )
    record["read_seconds"] = round(printed["seconds"], 3)
    return record


def run_rounds(
    runs_of: Mapping[str, Callable[[], dict[str, Any]]], warmups: int, runs: int, width: int
) -> dict[str, list[dict[str, Any]]]:
    """Each run of ``runs_of`` ``warmups + runs`` times, round by round, printing each run
    (its name padded to ``width``): the records of each, by name, with their phase."""
    records: dict[str, list[dict[str, Any]]] = {name: [] for name in runs_of}
    for round_index in range(warmups + runs):
        phase = "warm-up" if round_index < warmups else "measured"
        for name, run in runs_of.items():
            record = run()
            records[name].append({"phase": phase, **record})
            outcome = record["failure"] or "ok"
            print(f"  {phase:8} {name:{width}} {record['read_seconds']} s  {outcome}")
    return records


def summarise_reads(
    records: Mapping[str, list[dict[str, Any]]], rows: int, key: str
) -> list[dict[str, Any]]:
    """The medians of the measured runs of each reader (its name under ``key``); a reader
    with a failed run has no read time."""
    summary = []
    for name, runs in records.items():
        measured = [r for r in runs if r["phase"] == "measured"]
        failed = [r for r in measured if r["failure"]]
        read = statistics.median(r["read_seconds"] for r in measured) if not failed else None
        summary.append(
            {
                key: name,
                "status": "FAILED" if failed else "verified",
                "failure": failed[0]["failure"] if failed else None,
                "read_seconds_median": read,
                "rows_per_second": round(rows / read) if read else None,
                "wall_seconds_median": statistics.median(r["wall_seconds"] for r in measured),
                "cpu_seconds_median": statistics.median(r["cpu_seconds"] for r in measured),
                "peak_rss_bytes": max(r["peak_rss_bytes"] for r in measured),
            }
        )
    return summary

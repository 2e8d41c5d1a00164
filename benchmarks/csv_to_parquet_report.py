"""The results of B3 (CSV -> Parquet): medians, ratios, targets, and their Markdown section.

``summarise`` turns the run records of ``csv_to_parquet.py`` into the JSON that is committed;
``markdown_section`` renders that JSON (and only it), so the README can be rebuilt from the
JSON alone. A contestant run with ``--once`` has a single measured run: its "median" is that
run, and the table says so.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import statistics
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
from contestants import Contestant
from results_report import git_commit, machine_facts, markdown_table, mib, rate, seconds, times
from s3_endpoint import SERVER_DESCRIPTION

TARGET_ROWS_PER_SECOND = 200_000  # the end-to-end target through the topic
TARGET_PYARROW_TIME_RATIO = 2.0  # B3: within 2x of plain pyarrow
# Peak RSS at 5x the rows may grow by this much and still count as independent of input size.
MEMORY_GROWTH_ALLOWED = 1.25
RSS_METHOD = (
    "max(kernel ru_maxrss of the largest process via wait4, sum of /proc RSS over the live "
    "process tree sampled every 20 ms)"
)


def _summarise_contestant(
    contestant: Contestant, records: Sequence[dict[str, Any]], rows: int, csv_bytes: int
) -> dict[str, Any]:
    summary: dict[str, Any] = {
        "name": contestant.name,
        "description": contestant.description,
        "status": "ok",
        "reason": None,
    }
    if contestant.not_run is not None:
        return {**summary, "status": "not run", "reason": contestant.not_run, "runs": []}
    mine = [r for r in records if r["contestant"] == contestant.name and r["phase"] != "memory"]
    summary["runs"] = mine
    failures = [r["failure"] for r in mine if r["failure"]]
    if failures:
        return {**summary, "status": "FAILED", "reason": f"{len(failures)} run(s): {failures[0]}"}
    measured = [r for r in mine if r["phase"] == "measured"]
    wall = statistics.median(r["wall_seconds"] for r in measured)
    inner = [r["inner_seconds"] for r in measured if r["inner_seconds"] is not None]
    return {
        **summary,
        "median_wall_seconds": wall,
        "rows_per_second": rows / wall,
        "mb_per_second": csv_bytes / 1e6 / wall,
        "median_cpu_seconds": statistics.median(r["cpu_seconds"] for r in measured),
        "peak_rss_bytes": max(r["peak_rss_bytes"] for r in measured),
        "median_inner_seconds": statistics.median(inner) if inner else None,
    }


def _memory_check(
    records: Sequence[dict[str, Any]], omconnect: dict[str, Any] | None
) -> dict[str, Any] | None:
    """omconnect's peak RSS on the larger files against the base run's.

    The verdict compares the first (smallest) larger file with the base size; every further
    size is compared with the one before it, which shows whether memory levels off.
    """
    memory = sorted((r for r in records if r["phase"] == "memory"), key=lambda r: r["rows"])
    if not memory or omconnect is None:
        return None
    base = omconnect.get("peak_rss_bytes")
    points: list[dict[str, Any]] = []
    previous = base
    for run in memory:
        point: dict[str, Any] = {"rows": run["rows"], "run": run, "status": "ok"}
        if run["failure"] or previous is None:
            point.update(status="FAILED", reason=run["failure"] or "no base run to compare")
            previous = None
        else:
            point.update(
                wall_seconds=run["wall_seconds"],
                rows_per_second=run["rows"] / run["wall_seconds"],
                peak_rss_bytes=run["peak_rss_bytes"],
                growth_from_previous=run["peak_rss_bytes"] / previous,
            )
            previous = run["peak_rss_bytes"]
        points.append(point)
    first = points[0]
    independent = (
        first["growth_from_previous"] <= MEMORY_GROWTH_ALLOWED if first["status"] == "ok" else None
    )
    return {"base_peak_rss_bytes": base, "points": points, "independent": independent}


def summarise(
    *,
    started: datetime,
    csv_path: Path,
    rows: int,
    warmups: int,
    runs: int,
    contestants: Sequence[Contestant],
    records: Sequence[dict[str, Any]],
    peer_versions: dict[str, str],
    storage: str = "local",
    start_load: list[float] | None = None,
    once: Sequence[str] = (),
) -> dict[str, Any]:
    """The committed results: settings, machine, versions, one summary per contestant,
    omconnect's ratios to the others, the memory check and the targets met. ``storage`` is
    where the files lived (``local`` or ``s3``); ``start_load`` the load average when the
    run started (None: now); ``once`` the contestants that ran one measured run only."""
    csv_bytes = csv_path.stat().st_size
    summaries = [_summarise_contestant(c, records, rows, csv_bytes) for c in contestants]
    by_name = {s["name"]: s for s in summaries}
    omconnect = by_name.get("omconnect")
    om_wall = omconnect.get("median_wall_seconds") if omconnect else None
    # > 1: omconnect takes longer than the other; < 1: omconnect is faster.
    ratios = {
        s["name"]: om_wall / s["median_wall_seconds"]
        for s in summaries
        if om_wall and s["name"] != "omconnect" and s.get("median_wall_seconds")
    }
    try:
        omconnect_version = importlib.metadata.version("omconnect")
    except importlib.metadata.PackageNotFoundError:
        omconnect_version = "not installed"
    memory = _memory_check(records, omconnect)
    targets: dict[str, bool | None] = {
        f"rows_per_second >= {TARGET_ROWS_PER_SECOND:,}": (
            omconnect["rows_per_second"] >= TARGET_ROWS_PER_SECOND
            if omconnect and "rows_per_second" in omconnect
            else None
        ),
        f"time <= {TARGET_PYARROW_TIME_RATIO}x pyarrow": (
            ratios["pyarrow"] <= TARGET_PYARROW_TIME_RATIO if "pyarrow" in ratios else None
        ),
        "peak RSS independent of input size": (memory["independent"] if memory else None),
    }
    machine = machine_facts()
    if start_load is not None:
        machine["load_average_at_start"] = start_load
    machine["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    return {
        "benchmark": "B3 csv -> parquet (t1m)" + ("" if storage == "local" else f" on {storage}"),
        "date": started.isoformat(timespec="seconds"),
        "settings": {
            "storage": storage,
            "s3_server": SERVER_DESCRIPTION if storage == "s3" else None,
            "rows": rows,
            "csv_bytes": csv_bytes,
            "warmups": warmups,
            "measured_runs": runs,
            "once": list(once),
            "statistic": "median of the measured runs (peak RSS: max of them)",
            "peak_rss_method": RSS_METHOD,
        },
        "machine": machine,
        "versions": {
            "python": platform.python_version(),
            "pyarrow": pa.__version__,
            "omconnect": omconnect_version,
            "omconnect_commit": git_commit(),
            "peers": peer_versions,
        },
        "contestants": summaries,
        "omconnect_time_ratio": ratios,
        "memory_check": memory,
        "targets": targets,
    }


def _verdict(met: bool | None) -> str:
    return {True: "met", False: "**missed**", None: "not measured"}[met]


def _end_load(machine: dict[str, Any]) -> str:
    end = machine.get("load_average_at_end")
    return f", at the end {end[0]}" if end else ""


def _storage_text(settings: dict[str, Any]) -> str:
    if settings.get("storage", "local") != "s3":
        return ""
    return (
        f", as an object on {settings['s3_server']}; each run writes under a prefix of its "
        "own, downloaded after the run (off the clock) for the check. CPU is the contestant's "
        "process tree only: the S3 server's work shows in the wall time"
    )


def _runs_text(settings: dict[str, Any]) -> str:
    """How many runs each contestant had: the rounds, and the ``--once`` contestants' one run."""
    text = (
        f"{settings['warmups']} warm-up + {settings['measured_runs']} measured runs per contestant"
    )
    once = settings.get("once") or []
    if once:
        names = ", ".join(f"`{name}`" for name in once)
        text += f" ({names}: 1 measured run, in the last round, no warm-up)"
    return text


def markdown_section(results: dict[str, Any]) -> str:
    """The README section for ``results`` (as written by ``summarise``)."""
    settings, machine, versions = results["settings"], results["machine"], results["versions"]
    ratios = results["omconnect_time_ratio"]
    once = set(settings.get("once") or [])
    rows = []
    for s in results["contestants"]:
        if s["status"] != "ok":
            rows.append([f"`{s['name']}`", f"{s['status']}: {s['reason']}", *["-"] * 6])
            continue
        rows.append(
            [
                f"`{s['name']}`",
                seconds(s["median_wall_seconds"]) + (" (1 run)" if s["name"] in once else ""),
                rate(s["rows_per_second"]),
                f"{s['mb_per_second']:.0f}",
                seconds(s["median_cpu_seconds"]),
                mib(s["peak_rss_bytes"]),
                times(ratios.get(s["name"])) if s["name"] != "omconnect" else "1.00x",
                "verified",
            ]
        )
    header = ["contestant", "wall (median)", "rows/s", "MB/s", "CPU", "peak RSS"]
    header += ["omconnect time / this", "output"]
    peers = ", ".join(f"{k} {v}" for k, v in versions["peers"].items()) or "none installed"
    lines = [
        f"Run {results['date']} on {machine['cpus']} CPUs ({machine['cpu_model']}), "
        f"{machine['ram_gib']} GiB RAM, Linux {machine['kernel']}, load average at start "
        f"{machine['load_average_at_start'][0]} (a machine shared with other work)"
        f"{_end_load(machine)}. "
        f"Python {versions['python']}, pyarrow {versions['pyarrow']}, omconnect "
        f"{versions['omconnect']} at commit `{versions['omconnect_commit']}`; peers: {peers}.",
        "",
        f"Input: t1m CSV, {settings['rows']:,} rows, {settings['csv_bytes'] / 1e6:.0f} MB"
        f"{_storage_text(settings)}. "
        f"{_runs_text(settings)}, median reported; every run's output verified (row count + "
        f"key-set checksum), a wrong output is FAILED. Peak RSS: {settings['peak_rss_method']}, "
        "the largest of the measured runs.",
        "",
        markdown_table(header, rows),
        "",
    ]
    lines += [f"- `{s['name']}`: {s['description']}" for s in results["contestants"]]
    faster = [
        f"is {1 / ratio:.1f}x faster than {name}"
        if ratio < 1
        else f"takes {ratio:.1f}x {name}'s time"
        for name, ratio in ratios.items()
    ]
    if faster:
        lines.append(f"- omconnect {', '.join(faster)} (median wall time).")
    omconnect: dict[str, Any] = next(
        (s for s in results["contestants"] if s["name"] == "omconnect"), {}
    )
    if omconnect.get("median_inner_seconds"):
        lines.append(
            f"- omconnect's own run summary (pipeline only, no interpreter start-up): "
            f"{omconnect['median_inner_seconds']:.2f} s, "
            f"{settings['rows'] / omconnect['median_inner_seconds']:,.0f} rows/s."
        )
    memory = results["memory_check"]
    if memory:
        lines += ["", "Memory check, omconnect, one run per size:", ""]
        memory_rows = [
            [f"{settings['rows']:,}", "(above)", "-", mib(memory["base_peak_rss_bytes"]), "-"]
        ]
        for point in memory["points"]:
            if point["status"] != "ok":
                memory_rows.append([f"{point['rows']:,}", f"FAILED: {point['reason']}", *"---"])
                continue
            memory_rows.append(
                [
                    f"{point['rows']:,}",
                    seconds(point["wall_seconds"]),
                    rate(point["rows_per_second"]),
                    mib(point["peak_rss_bytes"]),
                    f"{point['growth_from_previous']:.2f}x",
                ]
            )
        header = ["rows", "wall", "rows/s", "peak RSS", "vs the size before"]
        lines.append(markdown_table(header, memory_rows))
        lines += [
            "",
            f"Independent of input size means at most {MEMORY_GROWTH_ALLOWED}x from "
            f"{settings['rows']:,} rows to the first larger size.",
        ]
    lines += ["", "Targets for omconnect:", ""]
    lines += [f"- {name}: {_verdict(met)}" for name, met in results["targets"].items()]
    return "\n".join(lines) + "\n"

"""Where a benchmark ran and how its results read: machine, versions, Markdown, README section.

Results are committed: the raw JSON under ``benchmarks/results/`` and a Markdown section in
``benchmarks/README.md`` between ``<!-- results:NAME:start -->`` and
``<!-- results:NAME:end -->``; the rest of the README is left as it is.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

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

"""The csv source's read rate on its two paths: the fast path and the quote-aware path.

    python benchmarks/csv_read_paths.py                  # 1M rows, 1 warm-up + 3 runs
    python benchmarks/csv_read_paths.py --rows 100000 --runs 1

A CSV file is read in blocks cut at line breaks. A file without line breaks inside quoted
values takes the fast path: each block is cut at its last line break (one count of quote
characters checks it). A file with them takes the quote-aware path for the blocks whose last
line break is inside a value (numpy finds the last one outside quotes). Two inputs of the same
size and rows: ``t1m`` as generated, and ``t1m`` with a line break in the middle of every
``payload`` (quoted, as Arrow's writer quotes every string).

Each run is a subprocess that reads the file with the csv source alone (the task the pipeline
runs, through the testing kit's ``SourceDriver``: read, parse, batches of ``batch_size``; no
broker, no sink), measured like every benchmark here (``process_meter.py``), and checked: the
row count and key-set checksum of the ids it read, and no bad row. Results go to
``benchmarks/README.md`` (its ``csv-read-paths`` section) and
``benchmarks/results/csv_read_paths.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from functools import partial
from pathlib import Path
from typing import Any

import generate
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
from contestants import BENCHMARKS_DIR
from results_report import (
    common_results,
    markdown_table,
    read_benchmark_arguments,
    read_with_source,
    run_line,
    run_rounds,
    run_verified_read,
    summarise_reads,
    timing_row,
    update_readme,
    write_json,
)

SECTION = "csv-read-paths"
PATHS = {"fast": "t1m as generated", "quote-aware": "t1m, a line break inside every payload"}


def ensure_input(data_dir: Path, rows: int, path_name: str) -> Path:
    """The input of ``path_name`` with ``rows`` rows, generated once and reused."""
    suffix = "" if path_name == "fast" else "-multiline"
    path = data_dir / f"t1m-{rows}{suffix}.csv"
    if path.exists():
        return path
    data_dir.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    with pa_csv.CSVWriter(str(partial), generate.T1M_SCHEMA) as writer:
        for batch in generate.generate_batches(rows):
            if suffix:
                payload = batch.column("payload")
                broken = pc.binary_join_element_wise(
                    pc.utf8_slice_codeunits(payload, 0, 32),
                    pc.utf8_slice_codeunits(payload, 32),
                    "\n",
                )
                batch = batch.set_column(9, "payload", broken)
            writer.write_batch(batch)
    partial.rename(path)
    return path


def markdown_section(results: dict[str, Any]) -> str:
    lines = [
        run_line(results),
        "",
        f"The csv source alone (read + parse + batches, no broker, no sink) on "
        f"{results['rows']:,} rows; {results['warmups']} warm-up + {results['runs']} measured "
        "runs per path, median reported; every run's rows verified (count + key-set checksum "
        "of the ids, no bad row). `read` is the time the source took inside the process; "
        "`wall` includes the interpreter's start.",
        "",
    ]
    fast = next((p for p in results["paths"] if p["path"] == "fast"), None)
    table = []
    for path in results["paths"]:
        row = timing_row(path, "path", PATHS[path["path"]], fast)
        size = f"{results['inputs'][path['path']]['bytes'] / 1e6:,.0f} MB"
        table.append([*row[:2], size, *row[2:]])
    header = ["path", "input", "size", "read", "rows/s", "wall", "CPU", "peak RSS"]
    lines.append(markdown_table([*header, "read / fast", "output"], table))
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = read_benchmark_arguments(__doc__.split("\n")[0], BENCHMARKS_DIR, "csv_read_paths.json")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.read:
        print(json.dumps(read_with_source("csv", args.read)))
        return 0
    if args.render_only:
        update_readme(args.readme, SECTION, markdown_section(json.loads(args.json.read_text())))
        return 0
    results = common_results(args)
    inputs = {name: ensure_input(args.data_dir, args.rows, name) for name in PATHS}
    script = str(Path(__file__).resolve())
    work_dir = args.work_dir / "csv-read-paths"
    records = run_rounds(
        {
            name: partial(run_verified_read, [script, "--read", str(path)], args.rows, work_dir)
            for name, path in inputs.items()
        },
        args.warmups,
        args.runs,
        width=12,
    )
    results |= {
        "inputs": {
            name: {"file": path.name, "bytes": os.path.getsize(path)}
            for name, path in inputs.items()
        },
        "paths": summarise_reads(records, args.rows, "path"),
        "records": records,
    }
    write_json(args.json, results)
    update_readme(args.readme, SECTION, markdown_section(results))
    print(markdown_section(results))
    return 1 if any(p["status"] == "FAILED" for p in results["paths"]) else 0


if __name__ == "__main__":
    sys.exit(main())

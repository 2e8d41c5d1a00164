"""The avro source's read rate against fastavro's reader, over one Avro container file.

    python benchmarks/avro_read.py                  # 1M rows, 1 warm-up + 3 runs
    python benchmarks/avro_read.py --rows 100000 --runs 1

The input is ``t1m`` written once as an Avro container file (deflate, fastavro's default
block size of about 16 kB, the schema ``omconnect.schemas`` maps ``t1m`` to). Three readers:

- ``omconnect``: the avro source alone (the task the pipeline runs, through the testing kit's
  ``SourceDriver``: header, blocks decompressed and decoded by the vectorised codec, batches
  of ``batch_size``; no broker, no sink);
- ``fastavro``: ``fastavro.reader`` over the file, one Python dict per row, nothing more;
- ``fastavro + Arrow``: the same dicts turned into record batches of 100,000 rows with
  ``pa.RecordBatch.from_pylist`` (what the avro source did before the vectorised codec).

Each run is a subprocess measured like every benchmark here (``process_meter.py``) and
checked: the row count and key-set checksum of the ids it read (and, for the source, no bad
row). Results go to ``benchmarks/README.md`` (its ``avro-read`` section) and
``benchmarks/results/avro_read.json``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

import fastavro
import generate
import oracle
import pyarrow as pa
from contestants import BENCHMARKS_DIR
from results_report import (
    common_results,
    markdown_table,
    read_benchmark_arguments,
    read_result,
    read_with_source,
    run_line,
    run_rounds,
    run_verified_read,
    summarise_reads,
    timing_row,
    update_readme,
    write_json,
)

SECTION = "avro-read"
READERS = {
    "omconnect": "the avro source (vectorised codec)",
    "fastavro": "`fastavro.reader`, a dict per row",
    "fastavro + Arrow": "`fastavro.reader` + `RecordBatch.from_pylist`",
}
_ARROW_ROWS = 100_000


def ensure_input(data_dir: Path, rows: int) -> Path:
    """``t1m`` with ``rows`` rows as an Avro container file, written once and reused."""
    from omconnect.schemas.arrow import from_arrow_schema
    from omconnect.schemas.avro import to_avro_schema

    path = data_dir / f"t1m-{rows}.avro"
    if path.exists():
        return path
    data_dir.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    schema = fastavro.parse_schema(to_avro_schema(from_arrow_schema(generate.T1M_SCHEMA, "t1m")))
    with partial.open("wb") as file:
        writer = fastavro.write.Writer(file, schema, codec="deflate")
        for batch in generate.generate_batches(rows):
            for record in batch.to_pylist():
                writer.write(record)
        writer.flush()
    partial.rename(path)
    return path


def read_once(path: Path, reader: str) -> dict[str, Any]:
    """Read ``path`` with ``reader``; what a run prints (one JSON line)."""
    if reader == "omconnect":
        return read_with_source("avro", path)
    started = time.perf_counter()
    checksum = oracle.EMPTY
    rows = 0
    with path.open("rb") as file:
        records = fastavro.reader(file)
        if reader == "fastavro":
            ids = [record["id"] for record in records]  # type: ignore[call-overload,index]
            rows, checksum = len(ids), oracle.checksum_of_keys(pa.array(ids, pa.int64()))
        else:
            while chunk := list(itertools.islice(records, _ARROW_ROWS)):
                batch = pa.RecordBatch.from_pylist(chunk)
                rows += batch.num_rows
                checksum = checksum + oracle.checksum_of_keys(batch.column("id"))
    return read_result(rows, started, checksum, 0)


def markdown_section(results: dict[str, Any]) -> str:
    lines = [
        run_line(results, f", fastavro {results['fastavro']}"),
        "",
        f"`t1m` ({results['rows']:,} rows) as one Avro container file of "
        f"{results['input']['bytes'] / 1e6:,.0f} MB (deflate, blocks of about 16 kB); "
        f"{results['warmups']} warm-up + {results['runs']} measured runs per reader, median "
        "reported; every run's rows verified (count + key-set checksum of the ids). `read` is "
        "the time the reader took inside the process; `wall` includes the interpreter's start.",
        "",
    ]
    ours = next((r for r in results["readers"] if r["reader"] == "omconnect"), None)
    table = [timing_row(r, "reader", READERS[r["reader"]], ours) for r in results["readers"]]
    header = ["reader", "what", "read", "rows/s", "wall", "CPU", "peak RSS"]
    lines.append(markdown_table([*header, "read / omconnect", "output"], table))
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = read_benchmark_arguments(__doc__.split("\n")[0], BENCHMARKS_DIR, "avro_read.json")
    parser.add_argument("--reader", choices=list(READERS), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.read:
        print(json.dumps(read_once(args.read, args.reader)))
        return 0
    if args.render_only:
        update_readme(args.readme, SECTION, markdown_section(json.loads(args.json.read_text())))
        return 0
    results = common_results(args)
    path = ensure_input(args.data_dir, args.rows)
    script = str(Path(__file__).resolve())
    work_dir = args.work_dir / "avro-read"
    records = run_rounds(
        {
            name: partial(
                run_verified_read,
                [script, "--read", str(path), "--reader", name],
                args.rows,
                work_dir,
            )
            for name in READERS
        },
        args.warmups,
        args.runs,
        width=16,
    )
    results |= {
        "fastavro": fastavro.__version__,
        "input": {"file": path.name, "bytes": os.path.getsize(path)},
        "readers": summarise_reads(records, args.rows, "reader"),
        "records": records,
    }
    write_json(args.json, results)
    update_readme(args.readme, SECTION, markdown_section(results))
    print(markdown_section(results))
    return 1 if any(r["status"] == "FAILED" for r in results["readers"]) else 0


if __name__ == "__main__":
    sys.exit(main())

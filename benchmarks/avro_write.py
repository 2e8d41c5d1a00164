"""The avro sink's write rate against fastavro's writer, over the ``t1m`` table.

    python benchmarks/avro_write.py                  # 1M rows, 1 warm-up + 3 runs
    python benchmarks/avro_write.py --rows 100000 --runs 1

Each run is a subprocess that generates ``t1m`` in memory (the table ``avro_read.py`` writes
as its input, in ``generate``'s batches of 65,536 rows) and writes it as one Avro container
file, deflate, with the schema ``omconnect.schemas`` maps ``t1m`` to. Three writers:

- ``omconnect``: the avro sink task (through the testing kit's ``SinkDriver``: each batch
  encoded by the vectorised codec, ``encode_batch``, and written by ``ContainerWriter`` as
  blocks of about 16 kB; the file published with fsync and rename; no broker);
- ``fastavro``: ``fastavro``'s ``Writer`` (blocks of about 16 kB) fed one Python dict per row;
  the dicts are made from the batches off the clock;
- ``fastavro + Arrow``: the same, with ``RecordBatch.to_pylist`` on the clock (what the avro
  sink did before the vectorised codec).

The fastavro files are fsynced too, on the clock. After the clock stops, each run reads its
file back with the avro source and prints the row count and key-set checksum of the ids,
which are verified like every benchmark's (``results_report.run_verified_read``). Results go
to ``benchmarks/results/avro_write.md`` and ``benchmarks/results/avro_write.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

import fastavro
import generate
import pyarrow as pa
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

SECTION = "avro-write"
WRITERS = {
    "omconnect": "the avro sink (`encode_batch` + `ContainerWriter`)",
    "fastavro": "fastavro's `Writer`, a dict per row (dicts made off the clock)",
    "fastavro + Arrow": "`RecordBatch.to_pylist` + fastavro's `Writer`",
}


def write_with_sink(batches: list[pa.RecordBatch], out: Path) -> float:
    """Write ``batches`` into ``out`` with the avro sink; the seconds it took."""
    from omconnect.runtime.testing import SinkDriver, sink_batches

    rows = sum(batch.num_rows for batch in batches)
    sent = sink_batches(
        pa.Table.from_batches(batches),
        topic="t1m",
        partition=0,
        first_offset=0,
        batch_rows=generate.BLOCK_ROWS,
    )
    sink = SinkDriver("avro", {"path": str(out), "compression": "deflate", "max_rows": rows})
    started = time.perf_counter()
    sink.put_all(sent)
    sink.flush(sent)
    return time.perf_counter() - started


def write_with_fastavro(batches: list[pa.RecordBatch], out: Path, dicts_on_clock: bool) -> float:
    """Write ``batches`` into ``out/t1m.avro`` with fastavro's writer; the seconds spent
    writing (and converting the batches to dicts when ``dicts_on_clock``)."""
    from omconnect.schemas.arrow import from_arrow_schema
    from omconnect.schemas.avro import to_avro_schema

    schema = fastavro.parse_schema(to_avro_schema(from_arrow_schema(generate.T1M_SCHEMA, "t1m")))
    spent = 0.0
    with (out / "t1m.avro").open("wb") as file:
        writer = fastavro.write.Writer(file, schema, codec="deflate")
        for batch in batches:
            started = time.perf_counter()
            records = batch.to_pylist()
            if not dicts_on_clock:
                started = time.perf_counter()
            for record in records:
                writer.write(record)
            spent += time.perf_counter() - started
        started = time.perf_counter()
        writer.flush()
        file.flush()
        os.fsync(file.fileno())
        spent += time.perf_counter() - started
    return spent


def write_once(out: Path, writer: str, rows: int) -> dict[str, Any]:
    """Generate ``t1m``, write it into the emptied folder ``out`` with ``writer`` and read it
    back; what a run prints (one JSON line): the write time and what was read back."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    batches = list(generate.generate_batches(rows))
    if writer == "omconnect":
        spent = write_with_sink(batches, out)
    else:
        spent = write_with_fastavro(batches, out, dicts_on_clock=writer == "fastavro + Arrow")
    return {**read_with_source("avro", out), "seconds": spent}


def file_bytes(out: Path) -> int:
    """Bytes of the published Avro files in ``out`` (not hidden temporary ones)."""
    return sum(p.stat().st_size for p in out.glob("*.avro") if not p.name.startswith("."))


def markdown_section(results: dict[str, Any]) -> str:
    lines = [
        run_line(results, f", fastavro {results['fastavro']}"),
        "",
        f"`t1m` ({results['rows']:,} rows, generated in memory by each run) written as one Avro "
        "container file (deflate, blocks of about 16 kB, fsynced); "
        f"{results['warmups']} warm-up + {results['runs']} measured runs per writer, median "
        "reported; every run's file read back by the avro source and verified (count + key-set "
        "checksum of the ids). `write` is the time the writer took inside the process; `wall`, "
        "`CPU` and `peak RSS` also include the interpreter's start, generating the table and "
        "reading the file back.",
        "",
    ]
    ours = next((w for w in results["writers"] if w["writer"] == "omconnect"), None)
    table = []
    for writer in results["writers"]:
        row = timing_row(writer, "writer", WRITERS[writer["writer"]], ours, "write_seconds_median")
        table.append([*row[:4], f"{writer['file_bytes'] / 1e6:,.1f} MB", *row[4:]])
    header = ["writer", "what", "write", "rows/s", "file", "wall", "CPU", "peak RSS"]
    lines.append(markdown_table([*header, "write / omconnect", "output"], table))
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = read_benchmark_arguments(__doc__.split("\n")[0], BENCHMARKS_DIR, "avro_write.json")
    parser.set_defaults(readme=BENCHMARKS_DIR / "results" / "avro_write.md")
    parser.add_argument("--write", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--writer", choices=list(WRITERS), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def _as_writes(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Records or summaries of the shared read helpers, with their times named as writes."""
    renames = {"read_seconds": "write_seconds", "read_seconds_median": "write_seconds_median"}
    return [{renames.get(key, key): value for key, value in entry.items()} for entry in entries]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.write:
        print(json.dumps(write_once(args.write, args.writer, args.rows)))
        return 0
    if args.render_only:
        update_readme(args.readme, SECTION, markdown_section(json.loads(args.json.read_text())))
        return 0
    results = common_results(args)
    script = str(Path(__file__).resolve())
    work_dir = args.work_dir / "avro-write"
    outputs = {name: work_dir / name.replace(" + ", "-").lower() for name in WRITERS}
    records = run_rounds(
        {
            name: partial(
                run_verified_read,
                [script, "--write", str(out), "--writer", name, "--rows", str(args.rows)],
                args.rows,
                work_dir,
            )
            for name, out in outputs.items()
        },
        args.warmups,
        args.runs,
        width=16,
    )
    writers = _as_writes(summarise_reads(records, args.rows, "writer"))
    for writer in writers:
        writer["file_bytes"] = file_bytes(outputs[writer["writer"]])
    results |= {
        "fastavro": fastavro.__version__,
        "writers": writers,
        "records": {name: _as_writes(runs) for name, runs in records.items()},
    }
    write_json(args.json, results)
    update_readme(args.readme, SECTION, markdown_section(results))
    print(markdown_section(results))
    return 1 if any(w["status"] == "FAILED" for w in writers) else 0


if __name__ == "__main__":
    sys.exit(main())

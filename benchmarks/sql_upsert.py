"""B4, upsert sink: 1M records (10% repeated keys) from a topic -> a PostgreSQL table.

    python benchmarks/sql_upsert.py                          # 1M records, 1 warm-up + 3 runs
    python benchmarks/sql_upsert.py --rows 2000 --runs 1 --warmups 0 --contestants omconnect

The input is ``--rows`` records of the t1m table: ids 1..D once each (D = 90% of the records,
in id order), and every 9th of them once more (the other 10%), as an update (``status`` set to
``updated``, ``updated_at`` an hour later) placed nine records after its first version, so a
key and its update often meet in one batch. They are written once as Parquet under ``data/``
and published once, off the clock, to the topic ``t1m-upsert`` of an embedded broker (Avro),
by an omconnect pipeline (parquet source, key ``id``). Then, round by round, each contestant
writes them into a fresh table of the schema ``omconnect_bench`` (dropped before every run);
every run is a subprocess measured by ``process_meter.py`` (wall, CPU of the client process
tree, peak RSS; the Postgres server's own work is in the wall time, not in the CPU):

- ``omconnect``: ``omconnect run --once`` of a pipeline with no source that reads the topic
  into the ``sql`` sink, ``mode: upsert``, ``create: true`` (COPY into a staging table, one
  ``INSERT ... ON CONFLICT`` per batch, positions stored in the same transaction);
- ``dlt-merge``: dlt's ``postgres`` destination, ``write_disposition="merge"`` on primary key
  ``id`` (``dedup_sort`` on ``updated_at``: dlt cannot read the topic, so it reads the same
  records from the Parquet file, in the same order), CSV/COPY loader files.

Every run's table is verified: row count = distinct keys, the key-set checksum of the ids, and
each key holding its latest version (the ``updated`` rows are exactly the repeated keys); for
omconnect also its stored position (the topic's end offset). Results go to
``benchmarks/README.md`` (section ``sql-upsert``), ``benchmarks/results/sql_upsert.md`` and
``.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import generate
import numpy as np
import oracle
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from contestants import BENCHMARKS_DIR, Invocation, omconnect_inner_seconds
from contestants import _omconnect_command as omconnect_command
from peers import SQL_PEER_DISTRIBUTIONS, SQL_PEER_REQUIREMENTS, PeerEnvironment
from results_report import (
    chosen_contestants,
    common_results,
    markdown_table,
    run_rounds,
    write_results,
)
from sql_snapshot import (
    BENCH_SCHEMA,
    DEFAULT_URL,
    RUN_TIMEOUT_SECONDS,
    SqlContestant,
    connect,
    contestant_row,
    drop_table,
    first_line,
    postgres_checksum,
    quoted,
    redacted,
    run_once,
    server_facts,
    summarise,
    table_exists,
    with_driver,
)

SECTION = "sql-upsert"
TOPIC = "t1m-upsert"
REPEAT_EVERY = 9  # every 9th key comes twice: 10% of the records are repeats
UPDATED = "updated"
TARGET_ROWS_PER_SECOND = 100_000  # records/s, from the issue
ALL_CONTESTANTS = ["omconnect", "dlt-merge"]
DLT_STAGING_SCHEMA = f"{BENCH_SCHEMA}_staging"
DLT_TABLES = ["_dlt_loads", "_dlt_version", "_dlt_pipeline_state"]


# --- the input --------------------------------------------------------------------------------


def distinct_keys(records: int) -> int:
    """Of ``records`` records, how many distinct keys (the rest repeat every 9th)."""
    return records - records // (REPEAT_EVERY + 1)


def repeated_ids(records: int) -> np.ndarray:
    return np.arange(REPEAT_EVERY, distinct_keys(records) + 1, REPEAT_EVERY, dtype=np.int64)


def upsert_records(records: int) -> pa.Table:
    """The records in publishing order: t1m ids 1..D, each repeated id's update nine records
    after its first version (or at the end)."""
    distinct = distinct_keys(records)
    originals = pa.Table.from_batches(list(generate.generate_batches(distinct)))
    repeats = originals.take(pa.array(repeated_ids(records) - 1))
    hour = pa.scalar(3_600_000_000, pa.duration("us"))
    repeats = repeats.set_column(
        repeats.schema.get_field_index("status"),
        generate.T1M_SCHEMA.field("status"),
        pa.array([UPDATED] * repeats.num_rows, pa.string()),
    ).set_column(
        repeats.schema.get_field_index("updated_at"),
        generate.T1M_SCHEMA.field("updated_at"),
        pc.add(repeats.column("updated_at"), hour),
    )
    ids = originals.column("id").to_numpy()
    later = np.minimum(repeats.column("id").to_numpy() + REPEAT_EVERY, distinct)
    order = np.concatenate([2 * ids, 2 * later + 1])
    table = pa.concat_tables([originals, repeats])
    return table.take(pa.array(np.argsort(order, kind="stable")))


def ensure_input(data_dir: Path, records: int) -> Path:
    """The records as one Parquet file (generated once; the generator is deterministic)."""
    path = data_dir / f"t1m-upsert-{records}.parquet"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        partial_path = path.with_name(f".{path.name}.partial")
        pq.write_table(upsert_records(records), partial_path, row_group_size=generate.BLOCK_ROWS)
        partial_path.rename(path)
    return path


def publish(parquet: Path, topic_dir: Path) -> None:
    """Publish the records to ``TOPIC`` on a fresh embedded broker in ``topic_dir``."""
    shutil.rmtree(topic_dir, ignore_errors=True)
    topic_dir.mkdir(parents=True)
    pipeline = topic_dir / "publish.yaml"
    pipeline.write_text(
        "name: bench-upsert-publish\n"
        "broker: embedded://.omconnect\n"
        "state: .omconnect\n"
        "source:\n"
        "  connector: parquet\n"
        f"  path: {parquet.resolve()}\n"
        "  key: [id]\n"
        f"topic: {TOPIC}\n"
        "format: avro\n"
    )
    done = subprocess.run(
        [*omconnect_command(), "run", str(pipeline), "--once"],
        cwd=topic_dir,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_SECONDS,
    )
    if done.returncode != 0:
        raise SystemExit(f"publishing the input failed: {done.stderr.strip()[-500:]}")


# --- checking a table -------------------------------------------------------------------------


def verify_table(url: str, table: str, records: int) -> tuple[dict[str, int] | None, str | None]:
    """Row count = distinct keys, the ids' key-set checksum, and the latest version of every
    key (the ``updated`` rows are exactly the repeated ids)."""
    expected = oracle.expected_checksum(distinct_keys(records))
    expected_updated = oracle.checksum_of_keys(repeated_ids(records))
    with connect(url) as conn:
        if not table_exists(conn, table):
            return None, f"wrong output: no table {quoted(table)}"
        found = postgres_checksum(conn, table)
        updated = postgres_checksum(conn, table, where=f"status = '{UPDATED}'")
    if found != expected:
        return found.__dict__, f"wrong output: {found} != expected {expected}"
    if updated != expected_updated:
        return found.__dict__, f"not the latest versions: updated rows {updated}"
    return found.__dict__, None


def verify_positions(url: str, positions_table: str, records: int) -> str | None:
    """The omconnect sink's stored position: the topic's end (every record consumed, the next
    offset of its one partition = the record count)."""
    with connect(url) as conn:
        stored = conn.execute(
            f"SELECT topic, topic_partition, next_offset FROM {quoted(positions_table)}"
        ).fetchall()
    if [tuple(row) for row in stored] != [(TOPIC, 0, records)]:
        return f"stored positions {stored} are not the topic's end ({TOPIC}, 0, {records})"
    return None


# --- contestants ------------------------------------------------------------------------------


def sink_pipeline_yaml(name: str, url: str, table: str, topic_dir: Path) -> str:
    """The timed omconnect pipeline: the prepared topic -> sql sink, upsert."""
    state = (topic_dir / ".omconnect").resolve()
    return (
        f"name: {name}\n"
        f"broker: embedded://{state}\n"
        f"state: {state}\n"
        f"topic: {TOPIC}\n"
        "format: avro\n"
        "sink:\n"
        "  connector: sql\n"
        f"  url: {url}\n"
        f"  table: {BENCH_SCHEMA}.{table}\n"
        "  mode: upsert\n"
        "  create: true\n"
        f"  positions_table: {table}_positions\n"
    )


def omconnect_contestant(url: str, table: str, records: int, topic_dir: Path) -> SqlContestant:
    """omconnect writing the topic into ``table`` (its positions in ``<table>_positions``)."""
    runs = iter(range(1_000_000))

    def prepare(run_dir: Path) -> Invocation:
        with connect(url) as conn:
            drop_table(conn, table)
            drop_table(conn, f"{table}_positions")
        pipeline = run_dir / "pipeline.yaml"
        name = f"bench-upsert-{next(runs)}"  # a new consumer group each run
        pipeline.write_text(sink_pipeline_yaml(name, url, table, topic_dir))
        return Invocation(
            argv=[*omconnect_command(), "run", str(pipeline), "--once"],
            env=dict(os.environ),
            output_dir=run_dir,
        )

    def verify(_invocation: Invocation, _run_dir: Path, _stdout: str) -> Any:
        checksum, failure = verify_table(url, table, records)
        return checksum, failure or verify_positions(url, f"{table}_positions", records)

    return SqlContestant(
        name="omconnect",
        workload="B4",
        description=(
            f"`omconnect run --once`: topic `{TOPIC}` (Avro) -> sql sink, `mode: upsert`, "
            "`create: true` (COPY into staging + INSERT ... ON CONFLICT, positions in the same "
            "transaction)"
        ),
        prepare=prepare,
        verify=verify,
        inner_seconds=omconnect_inner_seconds,
    )


def drop_dlt_tables(url: str, table: str) -> None:
    with connect(url) as conn:
        for name in [table, *DLT_TABLES]:
            drop_table(conn, name)
        conn.execute(f'DROP SCHEMA IF EXISTS "{DLT_STAGING_SCHEMA}" CASCADE')


def dlt_contestant(
    url: str, table: str, records: int, parquet: Path, work_dir: Path, install: bool
) -> tuple[SqlContestant, dict[str, str]]:
    """dlt merging the records into ``table``, from the peers' virtualenv."""
    peers = PeerEnvironment(work_dir)
    reason = peers.ensure_installed(install, SQL_PEER_REQUIREMENTS, SQL_PEER_DISTRIBUTIONS)
    script = str(Path(__file__).resolve())

    def prepare(run_dir: Path) -> Invocation:
        drop_dlt_tables(url, table)
        return Invocation(
            argv=[
                *(str(peers.python), script, "--dlt-merge", str(parquet.resolve())),
                *("--url", with_password(with_driver(url, "postgresql")), "--table", table),
            ],
            env=peers.base_env(),
            output_dir=run_dir,
        )

    versions = peers.versions(SQL_PEER_DISTRIBUTIONS)
    contestant = SqlContestant(
        name="dlt-merge",
        workload="B4",
        description=(
            f"dlt {versions.get('dlt', '?')} `postgres` destination, "
            "`write_disposition='merge'`, primary key `id`, `dedup_sort` on `updated_at`, "
            "`loader_file_format='csv'` (COPY), from the same records as Arrow batches"
        ),
        prepare=prepare,
        verify=lambda _i, _d, _o: verify_table(url, table, records),
        not_run=reason,
    )
    return contestant, versions


def with_password(url: str) -> str:
    """``url`` with a password: dlt's postgres credentials refuse a URL without one, even for a
    server that does not ask (trust authentication ignores it)."""
    parts = urlsplit(url)
    if parts.password is not None or parts.username is None:
        return url
    netloc = parts.netloc.replace(f"{parts.username}@", f"{parts.username}:unused@", 1)
    return urlunsplit((parts.scheme, netloc, *parts[2:]))


def run_dlt_merge(parquet: Path, url: str, table: str) -> str:
    """Under the peers' Python: the records into ``omconnect_bench.<table>`` with dlt's merge
    (delete-insert on ``id``, the latest ``updated_at`` of a key kept); dlt's load info."""
    import dlt

    @dlt.resource(
        name=table,
        primary_key="id",
        write_disposition="merge",
        columns={"updated_at": {"dedup_sort": "desc"}},
    )
    def batches() -> Any:
        for batch in pq.ParquetFile(parquet).iter_batches(batch_size=generate.BLOCK_ROWS):
            yield pa.Table.from_batches([batch])

    pipeline = dlt.pipeline(
        pipeline_name="bench_upsert",
        destination=dlt.destinations.postgres(credentials=url),
        dataset_name=BENCH_SCHEMA,
        pipelines_dir=str(Path.cwd() / "dlt-pipelines"),
    )
    return str(pipeline.run(batches(), loader_file_format="csv"))


# --- report -----------------------------------------------------------------------------------


def markdown_section(results: dict[str, Any]) -> str:
    server = results["postgres"]
    entries = results["contestants"]
    reference = next((e for e in entries if e["contestant"] == "omconnect"), None)
    header = ["contestant", "wall (median)", "records/s", "CPU", "peak RSS"]
    lines = [
        first_line(results),
        "",
        f"Input: {results['rows']:,} t1m records on the topic `{TOPIC}` (Avro, 1 partition, "
        f"published once before the runs), {results['distinct_keys']:,} distinct keys: "
        f"{results['rows'] - results['distinct_keys']:,} records (every {REPEAT_EVERY}th key) "
        f"are a later version of a key. Target: a fresh table in `{BENCH_SCHEMA}` of "
        f"PostgreSQL {server['version']} on the same machine (shared_buffers "
        f"{server['shared_buffers']}, synchronous_commit {server['synchronous_commit']}). "
        f"{results['warmups']} warm-up + {results['runs']} measured runs per contestant, round "
        "by round, median reported. records/s is over the wall time of the whole process; CPU "
        "is the client's process tree only (the server's work shows in the wall time). Every "
        "run's table verified: row count = distinct keys, key-set checksum of the ids, and the "
        "repeated keys (only they) holding their later version; for omconnect also its stored "
        "position at the topic's end. A wrong table is FAILED.",
        "",
        markdown_table(
            [*header, "wall / omconnect", "output"], [contestant_row(e, reference) for e in entries]
        ),
        "",
        *(f"- `{e['contestant']}`: {e['description']}" for e in entries),
    ]
    if reference and reference["inner_seconds_median"]:
        inner = reference["inner_seconds_median"]
        lines.append(
            f"- omconnect's own run summary (pipeline only, no interpreter start-up): "
            f"{inner:.2f} s, {results['rows'] / inner:,.0f} records/s."
        )
    found = reference["rows_per_second"] if reference else None
    verdict = "met" if found and found >= TARGET_ROWS_PER_SECOND else "**missed**"
    lines += [
        "",
        "Targets (issue 8):",
        "",
        f"- B4 `omconnect` >= {TARGET_ROWS_PER_SECOND:,} records/s with exactly-once positions:"
        f" {verdict} ({f'{found:,.0f}' if found else '-'} records/s)",
    ]
    return "\n".join(lines)


# --- command line -----------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="records on the topic")
    parser.add_argument("--runs", type=int, default=3, help="measured runs (median reported)")
    parser.add_argument("--warmups", type=int, default=1, help="unmeasured runs first")
    parser.add_argument("--url", default=DEFAULT_URL, help="the PostgreSQL database")
    parser.add_argument(
        "--contestants",
        default=",".join(ALL_CONTESTANTS),
        help=f"comma-separated subset of {','.join(ALL_CONTESTANTS)}",
    )
    parser.add_argument("--no-install-peers", action="store_true")
    parser.add_argument("--data-dir", type=Path, default=BENCHMARKS_DIR / "data")
    parser.add_argument("--work-dir", type=Path, default=BENCHMARKS_DIR / "work")
    parser.add_argument("--readme", type=Path, default=BENCHMARKS_DIR / "README.md")
    parser.add_argument("--json", type=Path, default=BENCHMARKS_DIR / "results" / "sql_upsert.json")
    parser.add_argument(
        "--table",
        default="upsert",
        help="the tables written: <table>_omconnect (+ _positions) and <table>_dlt",
    )
    parser.add_argument("--render-only", action="store_true")
    parser.add_argument("--keep-tables", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--dlt-merge", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rows < 10 or args.runs < 1 or args.warmups < 0:
        parser.error("--rows must be >= 10, --runs >= 1, --warmups >= 0")
    args.contestants = chosen_contestants(parser, args.contestants, ALL_CONTESTANTS)
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, write the results; exit 1 when omconnect FAILED."""
    args = parse_args(argv)
    if args.dlt_merge:
        print(run_dlt_merge(args.dlt_merge, args.url, args.table))
        return 0
    if args.render_only:
        write_results(
            json.loads(args.json.read_text()),
            args.json,
            args.readme,
            SECTION,
            "B4: topic -> PostgreSQL upsert",
            markdown_section(json.loads(args.json.read_text())),
        )
        return 0
    results = common_results(args)
    parquet = ensure_input(args.data_dir, args.rows)
    topic_dir = args.work_dir / "sql-upsert-topic"
    print(f"B4: publishing {parquet} to {TOPIC} (not timed)", flush=True)
    publish(parquet, topic_dir)
    with connect(args.url) as conn:
        conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{BENCH_SCHEMA}"')
    ours, theirs = f"{args.table}_omconnect", f"{args.table}_dlt"
    contestants = [omconnect_contestant(args.url, ours, args.rows, topic_dir)]
    versions: dict[str, str] = {}
    if "dlt-merge" in args.contestants:
        dlt, versions = dlt_contestant(
            args.url, theirs, args.rows, parquet, args.work_dir, not args.no_install_peers
        )
        contestants.append(dlt)
    contestants = [c for c in contestants if c.name in args.contestants]
    runs_dir = args.work_dir / "sql-upsert"
    records = run_rounds(
        {c.name: partial(run_once, c, runs_dir / c.name) for c in contestants if c.not_run is None},
        args.warmups,
        args.runs,
        width=10,
    )
    if not args.keep_tables:
        with connect(args.url) as conn:
            for name in (ours, f"{ours}_positions"):
                drop_table(conn, name)
        if "dlt-merge" in args.contestants:
            drop_dlt_tables(args.url, theirs)
    shutil.rmtree(runs_dir, ignore_errors=True)
    shutil.rmtree(topic_dir, ignore_errors=True)
    results |= {
        "url": redacted(args.url),
        "distinct_keys": distinct_keys(args.rows),
        "topic": TOPIC,
        "tables": [ours, theirs],
        "postgres": server_facts(args.url),
        "peer_versions": versions,
        "target_rows_per_second": TARGET_ROWS_PER_SECOND,
        "contestants": summarise(contestants, records, args.rows),
        "records": records,
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
    }
    write_results(
        results,
        args.json,
        args.readme,
        SECTION,
        "B4: topic -> PostgreSQL upsert",
        markdown_section(results),
    )
    ours = [e for e in results["contestants"] if e["contestant"] == "omconnect"]
    return 1 if any(e["status"] == "FAILED" for e in ours) else 0


if __name__ == "__main__":
    sys.exit(main())

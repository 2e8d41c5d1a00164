"""B1, bulk snapshot: the t1m table in PostgreSQL -> (a) Parquet files, (b) a topic (Avro).

    python benchmarks/sql_snapshot.py                          # 1M rows, 1 warm-up + 3 runs
    python benchmarks/sql_snapshot.py --rows 2000 --runs 1 --warmups 0 --contestants omconnect

The table ``omconnect_bench.t1m`` (``generate.py``'s t1m, ``t1m_<rows>`` for another size) is
loaded with COPY into the database of ``--url`` (default: ``$POSTGRES_URL``, else the
local server's ``test`` database) when it is missing or does not hold ids 1..rows, then every
contestant runs in the same invocation, round by round, each run a subprocess in a fresh
directory measured by ``process_meter.py`` (wall, CPU of the client process tree, peak RSS;
the Postgres server's own CPU is not counted). Contestants:

- B1a, table -> Parquet: ``omconnect`` (``omconnect run --once``: sql source, snapshot ->
  parquet sink with ``broker: none``, no topic between, as the peers land a table),
  ``omconnect-via-topic`` (the same through the embedded topic, Avro: what the topic costs),
  ``dlt-pyarrow`` and ``dlt-connectorx`` (dlt's ``sql_table`` -> ``filesystem``, Parquet),
  ``sling`` (Postgres -> a folder of Parquet files), ``adbc-parquet`` (no runtime: the reads
  omconnect's source makes, ADBC keyset chunks of 50,000 rows, written by pyarrow's
  ``ParquetWriter`` in a second thread, in omconnect's interpreter: what a Python process that
  reads the table and writes Parquet, with no topic between, reaches on this machine) and
  ``copy-binary`` (``psql``'s ``COPY ... TO STDOUT (FORMAT binary)`` into the null device: the
  physical ceiling);
- B1b, table -> topic: ``omconnect-topic`` (the sql source and no sink).

Every run's output is verified: the Parquet files with the oracle (row count + key-set
checksum of the ids); the topic of B1b by reading it back, off the clock, with a second
pipeline (topic -> parquet sink) and the oracle; the ceiling by the row count COPY reports
(its bytes are thrown away). Results go to ``benchmarks/README.md`` (section
``sql-snapshot``), ``benchmarks/results/sql_snapshot.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import generate
import oracle
import pyarrow.csv as pa_csv
from contestants import BENCHMARKS_DIR, Invocation, omconnect_inner_seconds
from contestants import _omconnect_command as omconnect_command
from csv_to_parquet import verify
from peers import SQL_PEER_DISTRIBUTIONS, SQL_PEER_REQUIREMENTS, PeerEnvironment
from process_meter import run_measured
from results_report import (
    chosen_contestants,
    common_results,
    markdown_table,
    mib,
    rate,
    run_line,
    run_rounds,
    seconds,
    summarise_reads,
    times,
    write_results,
)

SECTION = "sql-snapshot"
DEFAULT_URL = os.environ.get("POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
BENCH_SCHEMA = "omconnect_bench"
RUN_TIMEOUT_SECONDS = 1800.0
# rows/s, from the issue: B1a's is for the table landed as Parquet (the peers' job, no topic:
# it is above B1b's, which only writes a topic), B1b's for the table into a topic.
TARGETS = {"omconnect": 450_000, "omconnect-topic": 300_000}
WORKLOADS = {
    "B1a": "table -> Parquet files",
    "B1b": "table -> embedded topic (Avro), no sink",
}
ALL_CONTESTANTS = [
    "omconnect",
    "omconnect-via-topic",
    "dlt-pyarrow",
    "dlt-connectorx",
    "sling",
    "adbc-parquet",
    "copy-binary",
    "omconnect-topic",
]
PEERS = {"dlt-pyarrow", "dlt-connectorx", "sling"}
_COPY_TAG = re.compile(r"^COPY (\d+)$", re.MULTILINE)


# --- PostgreSQL -------------------------------------------------------------------------------


def connect(url: str) -> Any:
    """A psycopg connection in autocommit (psycopg is imported here: the peers' Python, which
    runs this file's hidden modes, does not have it)."""
    import psycopg

    return psycopg.connect(url, autocommit=True)


def quoted(table: str) -> str:
    """``schema.table`` of the benchmark schema, quoted."""
    return f'"{BENCH_SCHEMA}"."{table}"'


def default_table(rows: int) -> str:
    return "t1m" if rows == generate.DEFAULT_ROWS else f"t1m_{rows}"


def postgres_checksum(
    conn: Any, table: str, key: str = "id", where: str = ""
) -> oracle.KeySetChecksum:
    """The oracle's key-set checksum of ``key`` over the table (its rows where ``where``, an
    SQL condition, holds), computed by Postgres."""
    rows = f"{quoted(table)} WHERE {where}" if where else quoted(table)
    sql = oracle.POSTGRES_CHECKSUM_SQL.format(key=f'"{key}"', table=rows)
    count, total, xor = conn.execute(sql).fetchone()
    return oracle.KeySetChecksum(int(count), int(total), int(xor))


def table_exists(conn: Any, table: str) -> bool:
    return conn.execute("SELECT to_regclass(%s)", [quoted(table)]).fetchone()[0] is not None


def drop_table(conn: Any, table: str) -> None:
    conn.execute(f"DROP TABLE IF EXISTS {quoted(table)}")


def ensure_table(url: str, table: str, rows: int) -> str:
    """The t1m table of ``rows`` rows in the benchmark schema, (re)loaded with COPY unless it
    already holds exactly ids 1..rows; says which."""
    with connect(url) as conn:
        conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{BENCH_SCHEMA}"')
        if table_exists(conn, table):
            if postgres_checksum(conn, table) == oracle.expected_checksum(rows):
                return "reused"
            drop_table(conn, table)
        create = generate.T1M_DDL.replace("CREATE TABLE t1m", f"CREATE TABLE {quoted(table)}")
        conn.execute(create.split(";")[0])
        options = pa_csv.WriteOptions(include_header=False)
        load = f"COPY {quoted(table)} FROM STDIN WITH (FORMAT csv)"
        with conn.cursor() as cursor, cursor.copy(load) as copy:
            for batch in generate.generate_batches(rows):
                buffer = io.BytesIO()
                pa_csv.write_csv(batch, buffer, options)
                copy.write(buffer.getvalue())
        conn.execute(f"VACUUM (FREEZE, ANALYZE) {quoted(table)}")
        found = postgres_checksum(conn, table)
        if found != oracle.expected_checksum(rows):
            raise SystemExit(f"loading {quoted(table)} went wrong: {found}")
    return "loaded"


def server_facts(url: str) -> dict[str, str]:
    """The server's version and the settings that matter for reading and writing."""
    with connect(url) as conn:
        facts = {"version": conn.execute("SHOW server_version").fetchone()[0]}
        for setting in ("shared_buffers", "synchronous_commit", "wal_level"):
            facts[setting] = conn.execute(f"SHOW {setting}").fetchone()[0]
    return facts


def with_driver(url: str, scheme: str) -> str:
    """``url`` with another scheme (``postgresql+psycopg2`` for dlt's SQLAlchemy)."""
    parts = urlsplit(url)
    return urlunsplit((scheme, *parts[1:]))


def redacted(url: str) -> str:
    """``url`` without its password (for the results)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit((parts.scheme, netloc, *parts[2:]))


# --- contestants ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SqlContestant:
    """One tool of B1: how to start a run in a fresh ``run_dir`` and how to check its output.

    Attributes:
        name: Short name used in tables and on the command line.
        workload: ``B1a`` or ``B1b``.
        description: One line for the results table.
        prepare: ``run_dir -> Invocation``.
        verify: ``(invocation, run_dir, stdout) -> (checksum or None, failure or None)``.
        not_run: Why it cannot run here (None when it can).
        inner_seconds: The tool's own elapsed time, read from its output, if it prints one.
    """

    name: str
    workload: str
    description: str
    prepare: Callable[[Path], Invocation]
    verify: Callable[[Invocation, Path, str], tuple[dict[str, int] | None, str | None]]
    not_run: str | None = None
    inner_seconds: Callable[[str], float | None] = lambda _output: None


def omconnect_pipeline_yaml(
    name: str, url: str, table: str, parquet: bool, broker: str = "embedded://.omconnect"
) -> str:
    """The omconnect pipeline of B1: the sql source (snapshot) -> topic ``t1m``, Avro, and the
    parquet sink when ``parquet`` (B1a) or no sink (B1b); with ``broker: none`` (B1a) the
    source's rows go to the sink with no topic between."""
    text = (
        f"name: {name}\n"
        f"broker: {broker}\n"
        "state: .omconnect\n"
        "source:\n"
        "  connector: sql\n"
        f"  url: {url}\n"
        f"  tables: [{BENCH_SCHEMA}.{table}]\n"
        "  mode: snapshot\n"
        "topic: t1m\n"
    )
    if broker != "none":
        text += "format: avro\n"
    if parquet:
        text += "sink:\n  connector: parquet\n  path: out/\n"
    return text


def topic_reader_yaml(topic: str) -> str:
    """A pipeline that reads ``topic`` back into Parquet (verifies B1b, off the clock)."""
    return (
        "name: bench-read-back\n"
        "broker: embedded://.omconnect\n"
        "state: .omconnect\n"
        f"topic: {topic}\n"
        "format: avro\n"
        "sink:\n  connector: parquet\n  path: read-back/\n"
    )


def _omconnect_prepare(
    url: str, table: str, parquet: bool, broker: str, run_dir: Path
) -> Invocation:
    pipeline = run_dir / "pipeline.yaml"
    name = "bench-sql-to-parquet" if parquet else "bench-sql-to-topic"
    pipeline.write_text(omconnect_pipeline_yaml(name, url, table, parquet, broker))
    return Invocation(
        argv=[*omconnect_command(), "run", str(pipeline), "--once"],
        env=dict(os.environ),
        output_dir=run_dir / ("out" if parquet else "read-back"),
    )


def verify_parquet(rows: int, invocation: Invocation, _run_dir: Path, _stdout: str) -> Any:
    return verify(invocation.output_dir, rows)


def verify_topic(rows: int, table: str, invocation: Invocation, run_dir: Path, _out: str) -> Any:
    """Read the topic the run wrote back into Parquet with a second pipeline, then check it."""
    reader = run_dir / "read-back.yaml"
    reader.write_text(topic_reader_yaml(f"t1m.{BENCH_SCHEMA}.{table}"))
    done = subprocess.run(
        [*omconnect_command(), "run", str(reader), "--once"],
        cwd=run_dir,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_SECONDS,
    )
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["(no stderr)"])[-1]
        return None, f"reading the topic back failed: {tail}"
    return verify(invocation.output_dir, rows)


def verify_copy_count(rows: int, _invocation: Invocation, _run_dir: Path, stdout: str) -> Any:
    """The ceiling's bytes are discarded: only COPY's own row count can be checked."""
    found = _COPY_TAG.findall(stdout)
    if not found or int(found[-1]) != rows:
        return None, f"wrong output: COPY reported {found[-1] if found else 'nothing'}"
    return {"count": rows}, None


def omconnect_contestants(url: str, table: str, rows: int) -> list[SqlContestant]:
    return [
        SqlContestant(
            name="omconnect",
            workload="B1a",
            description=(
                "`omconnect run --once`: sql source (snapshot, ADBC binary COPY) -> parquet "
                "sink (zstd), `broker: none` (no topic between)"
            ),
            prepare=partial(_omconnect_prepare, url, table, True, "none"),
            verify=partial(verify_parquet, rows),
            inner_seconds=omconnect_inner_seconds,
        ),
        SqlContestant(
            name="omconnect-via-topic",
            workload="B1a",
            description=(
                "`omconnect run --once`: sql source (snapshot, ADBC binary COPY) -> embedded "
                "topic (Avro) -> parquet sink (zstd)"
            ),
            prepare=partial(_omconnect_prepare, url, table, True, "embedded://.omconnect"),
            verify=partial(verify_parquet, rows),
            inner_seconds=omconnect_inner_seconds,
        ),
        SqlContestant(
            name="omconnect-topic",
            workload="B1b",
            description="`omconnect run --once`: sql source (snapshot) -> embedded topic (Avro)",
            prepare=partial(_omconnect_prepare, url, table, False, "embedded://.omconnect"),
            verify=partial(verify_topic, rows, table),
            inner_seconds=omconnect_inner_seconds,
        ),
    ]


# The t1m columns as omconnect's sql source selects them on PostgreSQL: numeric(12, 2) as its
# value times 100 in a bigint (``_arrow_reads``), NaN as the smallest bigint (t1m holds none,
# so the floor does not look for it).
_FLOOR_COLUMNS = (
    "id, quantity, CASE WHEN (amount = 'NaN'::numeric) THEN CAST(-9223372036854775808 AS BIGINT)"
    " ELSE CAST(amount * 100 AS BIGINT) END AS amount, score, status, country, active,"
    " created_at, updated_at, payload"
)
FLOOR_CHUNK_ROWS = 50_000


def run_adbc_parquet(url: str, table: str, out: Path) -> str:
    """The ``adbc-parquet`` contestant: ``table`` read in keyset chunks through ADBC on one
    thread, the amounts made decimals again, and written by ``ParquetWriter`` (zstd, one row
    group per chunk) on this one; returns the rows written."""
    import queue
    import threading

    import adbc_driver_postgresql.dbapi as adbc
    import pyarrow as pa
    import pyarrow.parquet as pq

    chunks: queue.Queue[pa.RecordBatch | BaseException | None] = queue.Queue(maxsize=8)

    def read() -> None:
        try:
            with adbc.connect(url) as connection:
                last, count = 0, FLOOR_CHUNK_ROWS
                while count == FLOOR_CHUNK_ROWS:
                    statement = (
                        f"SELECT {_FLOOR_COLUMNS} FROM {quoted(table)} WHERE id > {last}"
                        f" ORDER BY id LIMIT {FLOOR_CHUNK_ROWS}"
                    )
                    count = 0
                    with connection.cursor() as cursor:
                        cursor.execute(statement)
                        for batch in cursor.fetch_record_batch():
                            columns = list(batch.columns)
                            whole = columns[2].cast(pa.decimal128(19, 0))
                            columns[2] = pa.Array.from_buffers(
                                pa.decimal128(12, 2), len(whole), whole.buffers()
                            )
                            chunks.put(pa.RecordBatch.from_arrays(columns, batch.schema.names))
                            count += batch.num_rows
                            last = batch.column(0)[-1].as_py() if batch.num_rows else last
            chunks.put(None)
        except BaseException as error:  # handed to the writer, which raises it
            chunks.put(error)

    # A daemon: when writing fails, the process ends with the error even if the reader waits
    # for room in the queue.
    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    out.mkdir(parents=True, exist_ok=True)
    writer, rows = None, 0
    try:
        while (chunk := chunks.get()) is not None:
            if isinstance(chunk, BaseException):
                raise chunk
            if writer is None:
                writer = pq.ParquetWriter(out / "part-0.parquet", chunk.schema, compression="zstd")
            writer.write_batch(chunk)
            rows += chunk.num_rows
    finally:
        if writer is not None:
            writer.close()
    reader.join()
    return f"{rows} rows"


def floor_contestant(url: str, table: str, rows: int) -> SqlContestant:
    def prepare(run_dir: Path) -> Invocation:
        out = run_dir / "out"
        return Invocation(
            argv=[
                *(sys.executable, str(Path(__file__).resolve())),
                *("--adbc-parquet-out", str(out), "--url", url, "--table", table),
            ],
            env=dict(os.environ),
            output_dir=out,
        )

    return SqlContestant(
        name="adbc-parquet",
        workload="B1a",
        description=(
            "no runtime: ADBC keyset reads of 50,000 rows (as omconnect's source makes them) ->"
            " pyarrow `ParquetWriter` (zstd) in a second thread, omconnect's interpreter"
        ),
        prepare=prepare,
        verify=partial(verify_parquet, rows),
    )


def copy_contestant(url: str, table: str, rows: int) -> SqlContestant:
    description = f"`psql`: `COPY {BENCH_SCHEMA}.{table} TO STDOUT (FORMAT binary)` -> null device"
    psql = shutil.which("psql")

    def prepare(run_dir: Path) -> Invocation:
        copy = f"\\copy {quoted(table)} TO '{os.devnull}' WITH (FORMAT binary)"
        return Invocation(
            argv=[str(psql), "--no-psqlrc", "-d", url, "-c", copy],
            env=dict(os.environ),
            output_dir=run_dir,
        )

    return SqlContestant(
        name="copy-binary",
        workload="B1a",
        description=description,
        prepare=prepare,
        verify=partial(verify_copy_count, rows),
        not_run=None if psql else "psql is not installed",
    )


def peer_contestants(
    url: str, table: str, rows: int, work_dir: Path, install: bool
) -> tuple[list[SqlContestant], dict[str, str]]:
    """dlt (pyarrow, connectorx) and sling, from the peers' virtualenv."""
    peers = PeerEnvironment(work_dir)
    reason = peers.ensure_installed(install, SQL_PEER_REQUIREMENTS, SQL_PEER_DISTRIBUTIONS)
    script = str(Path(__file__).resolve())
    dlt_url = with_driver(url, "postgresql+psycopg2")

    def dlt_prepare(backend: str, run_dir: Path) -> Invocation:
        out = run_dir / "out"
        return Invocation(
            argv=[
                *(str(peers.python), script, "--dlt-backend", backend, "--dlt-out", str(out)),
                *("--url", dlt_url, "--table", table),
            ],
            env=peers.base_env(),
            output_dir=out / "t1m" / table,
        )

    def sling_prepare(run_dir: Path) -> Invocation:
        env = peers.sling_env(run_dir)
        env["BENCH_PG"] = f"{url}{'&' if '?' in url else '?'}sslmode=disable"
        out = run_dir / "out"
        return Invocation(
            argv=[
                str(peers.sling_binary()),
                "run",
                "--src-conn",
                "BENCH_PG",
                "--src-stream",
                f"{BENCH_SCHEMA}.{table}",
                "--tgt-object",
                f"{out.as_uri()}/",
                "--tgt-options",
                f"{{format: parquet, file_max_rows: {max(rows, 1)}}}",
            ],
            env=env,
            output_dir=out,
        )

    versions = peers.versions(SQL_PEER_DISTRIBUTIONS)
    dlt_version = versions.get("dlt", "?")
    cx_version = versions.get("connectorx", "?")
    sling_version = versions.get("sling-linux-amd64", "?")
    contestants = [
        SqlContestant(
            name="dlt-pyarrow",
            workload="B1a",
            description=f"dlt {dlt_version} `sql_table(backend='pyarrow')` -> filesystem, parquet",
            prepare=partial(dlt_prepare, "pyarrow"),
            verify=partial(verify_parquet, rows),
        ),
        SqlContestant(
            name="dlt-connectorx",
            workload="B1a",
            description=(
                f"dlt {dlt_version} `sql_table(backend='connectorx')` (connectorx {cx_version})"
                " -> filesystem, parquet"
            ),
            prepare=partial(dlt_prepare, "connectorx"),
            verify=partial(verify_parquet, rows),
        ),
        SqlContestant(
            name="sling",
            workload="B1a",
            description=(
                f"sling {sling_version} `run --src-conn PG --src-stream {BENCH_SCHEMA}.{table}"
                " --tgt-object file://DIR/` (parquet, file_max_rows), DuckDB CLI"
            ),
            prepare=sling_prepare,
            verify=partial(verify_parquet, rows),
            not_run=peers.sling_missing(),
        ),
    ]
    if reason is not None:
        contestants = [
            SqlContestant(c.name, c.workload, c.description, c.prepare, c.verify, not_run=reason)
            for c in contestants
        ]
    return contestants, versions


def select_contestants(
    args: argparse.Namespace,
) -> tuple[list[SqlContestant], dict[str, str]]:
    """The contestants named by ``--contestants``, in the order of ``ALL_CONTESTANTS``."""
    available = {c.name: c for c in omconnect_contestants(args.url, args.table, args.rows)}
    available["copy-binary"] = copy_contestant(args.url, args.table, args.rows)
    available["adbc-parquet"] = floor_contestant(args.url, args.table, args.rows)
    versions: dict[str, str] = {}
    if PEERS & set(args.contestants):
        peers, versions = peer_contestants(
            args.url, args.table, args.rows, args.work_dir, not args.no_install_peers
        )
        available.update({peer.name: peer for peer in peers})
    return [available[name] for name in ALL_CONTESTANTS if name in args.contestants], versions


# --- running ----------------------------------------------------------------------------------


def run_once(contestant: SqlContestant, run_dir: Path) -> dict[str, Any]:
    """One run of ``contestant`` in a fresh ``run_dir``, measured and verified; its record
    (``read_seconds`` is the wall time, the time every contestant is compared by)."""
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    invocation = contestant.prepare(run_dir)
    os.sync()  # the previous run's dirty pages are written back before this one starts
    measured = run_measured(invocation.argv, run_dir, invocation.env, RUN_TIMEOUT_SECONDS)
    checksum: dict[str, int] | None = None
    if measured.returncode != 0:
        last_line = (measured.stderr_tail.strip().splitlines() or ["(no stderr)"])[-1]
        failure: str | None = f"exit {measured.returncode}: {last_line[-300:]}"
    else:
        checksum, failure = contestant.verify(invocation, run_dir, measured.stdout)
    shutil.rmtree(run_dir, ignore_errors=True)
    return {
        "read_seconds": round(measured.wall_seconds, 3),
        "wall_seconds": round(measured.wall_seconds, 3),
        "cpu_seconds": round(measured.cpu_seconds, 3),
        "peak_rss_bytes": measured.peak_rss_bytes,
        "inner_seconds": contestant.inner_seconds(measured.stdout + measured.stderr_tail),
        "checksum": checksum,
        "failure": failure,
    }


def summarise(
    contestants: list[SqlContestant], records: dict[str, list[dict[str, Any]]], rows: int
) -> list[dict[str, Any]]:
    """Medians per contestant (``summarise_reads``), with what it is and its own timing; a
    contestant that could not run is FAILED with the reason."""
    medians = {s["contestant"]: s for s in summarise_reads(records, rows, "contestant")}
    summary = []
    for contestant in contestants:
        entry: dict[str, Any] = {
            "contestant": contestant.name,
            "workload": contestant.workload,
            "description": contestant.description,
        }
        if contestant.not_run is not None:
            entry |= {
                "status": "FAILED",
                "failure": f"not run: {contestant.not_run}",
                "read_seconds_median": None,
                "rows_per_second": None,
                "wall_seconds_median": None,
                "cpu_seconds_median": None,
                "peak_rss_bytes": None,
                "inner_seconds_median": None,
            }
        else:
            entry |= medians[contestant.name]
            inner = sorted(
                r["inner_seconds"]
                for r in records[contestant.name]
                if r["phase"] == "measured" and r["inner_seconds"] is not None
            )
            entry["inner_seconds_median"] = inner[len(inner) // 2] if inner else None
            if contestant.name == "copy-binary" and entry["status"] == "verified":
                entry["status"] = "row count verified (output discarded)"
        summary.append(entry)
    return summary


# --- report -----------------------------------------------------------------------------------


def contestant_row(entry: dict[str, Any], reference: dict[str, Any] | None) -> list[str]:
    """name, wall, rows/s, CPU, peak RSS, wall against ``reference``'s, output."""
    wall = entry["wall_seconds_median"]
    base = reference["wall_seconds_median"] if reference else None
    return [
        f"`{entry['contestant']}`",
        seconds(wall),
        rate(entry["rows_per_second"]),
        seconds(entry["cpu_seconds_median"]),
        mib(entry["peak_rss_bytes"]),
        times(wall / base) if wall and base else "-",
        entry["status"] if not entry["failure"] else f"FAILED: {entry['failure']}",
    ]


def target_lines(results: dict[str, Any]) -> list[str]:
    lines = []
    for entry in results["contestants"]:
        target = TARGETS.get(entry["contestant"])
        if target is None:
            continue
        found = entry["rows_per_second"]
        verdict = "met" if found and found >= target else "**missed**"
        lines.append(
            f"- {entry['workload']} `{entry['contestant']}` >= {target:,} rows/s: {verdict} "
            f"({rate(found)} rows/s)"
        )
    return lines + relative_lines(results)


def relative_lines(results: dict[str, Any]) -> list[str]:
    """B1a's ``omconnect`` against the same run's ceiling, itself through a topic,
    dlt-connectorx and the no-runtime floor: the issue puts its 450,000 rows/s at a quarter of
    what COPY reaches, and well ahead of dlt-connectorx, on the machine it was written on."""
    found = {e["contestant"]: e["rows_per_second"] for e in results["contestants"]}
    ours = found.get("omconnect")
    if not ours:
        return []
    lines = []
    copy = found.get("copy-binary")
    if copy:
        lines.append(
            f"- B1a `omconnect` against `copy-binary` in this run: {ours / copy:.2f} of its rate "
            f"(a quarter of it here: {rate(copy / 4)} rows/s)"
        )
    for peer, what in (
        ("omconnect-via-topic", " (the same through a topic)"),
        ("dlt-connectorx", ""),
        ("adbc-parquet", " (no runtime)"),
    ):
        if found.get(peer):
            lines.append(
                f"- B1a `omconnect` against `{peer}`{what}: {ours / found[peer]:.2f}x its rate"
            )
    return lines


def first_line(results: dict[str, Any]) -> str:
    """``run_line`` with the peers' versions and the load average when the runs ended (other
    work on the machine shows there too)."""
    peers = ", ".join(f"{k} {v}" for k, v in results["peer_versions"].items()) or "none"
    end = results.get("load_average_at_end")
    at_end = f" Load average at the end: {end[0]}." if end else ""
    return f"{run_line(results)} Peers: {peers}.{at_end}"


def markdown_section(results: dict[str, Any]) -> str:
    server = results["postgres"]
    lines = [
        first_line(results),
        "",
        f"Input: `{BENCH_SCHEMA}.{results['table']}`, the t1m table ({results['rows']:,} rows x "
        f"10 columns), PostgreSQL {server['version']} on the same machine "
        f"(shared_buffers {server['shared_buffers']}, synchronous_commit "
        f"{server['synchronous_commit']}). {results['warmups']} warm-up + {results['runs']} "
        "measured runs per contestant, round by round, median reported. rows/s is over the "
        "wall time of the whole process (interpreter start included); CPU is the client's "
        "process tree only (not the Postgres server's); peak RSS is the largest of the "
        "measured runs. Every run's output verified (row count + key-set checksum of the ids); "
        "a wrong output is FAILED.",
        "",
    ]
    header = ["contestant", "wall (median)", "rows/s", "CPU", "peak RSS"]
    for workload, title in WORKLOADS.items():
        entries = [e for e in results["contestants"] if e["workload"] == workload]
        if not entries:
            continue
        reference = next((e for e in entries if e["contestant"].startswith("omconnect")), None)
        lines += [f"{workload}, {title}:", ""]
        table = [contestant_row(e, reference) for e in entries]
        lines += [markdown_table([*header, "wall / omconnect", "output"], table), ""]
        lines += [f"- `{e['contestant']}`: {e['description']}" for e in entries]
        for entry in entries:
            if entry["inner_seconds_median"]:
                lines.append(
                    f"- `{entry['contestant']}`'s own run summary (pipeline only, no "
                    f"interpreter start-up): {seconds(entry['inner_seconds_median'])}, "
                    f"{rate(results['rows'] / entry['inner_seconds_median'])} rows/s."
                )
        lines.append("")
    lines += ["Targets (issue 8):", "", *target_lines(results)]
    return "\n".join(lines)


# --- the dlt contestant (runs under the peers' Python) ----------------------------------------


def run_dlt(backend: str, url: str, table: str, out: Path) -> str:
    """dlt's ``sql_table`` of ``table`` -> ``filesystem`` destination at ``out``, Parquet (files
    under ``out/t1m/<table>/``); dlt's load info."""
    import dlt
    from dlt.sources.sql_database import sql_table

    resource = sql_table(credentials=url, schema=BENCH_SCHEMA, table=table, backend=backend)
    pipeline = dlt.pipeline(
        pipeline_name=f"bench_sql_{backend}",
        destination=dlt.destinations.filesystem(bucket_url=out.resolve().as_uri()),
        dataset_name="t1m",
        pipelines_dir=str(Path.cwd() / "dlt-pipelines"),
    )
    return str(pipeline.run(resource, loader_file_format="parquet"))


# --- command line -----------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=generate.DEFAULT_ROWS)
    parser.add_argument("--runs", type=int, default=3, help="measured runs (median reported)")
    parser.add_argument("--warmups", type=int, default=1, help="unmeasured runs first")
    parser.add_argument("--url", default=DEFAULT_URL, help="the PostgreSQL database")
    parser.add_argument("--table", help="the input table (default: t1m, t1m_<rows>)")
    parser.add_argument(
        "--contestants",
        default=",".join(ALL_CONTESTANTS),
        help=f"comma-separated subset of {','.join(ALL_CONTESTANTS)}",
    )
    parser.add_argument("--no-install-peers", action="store_true")
    parser.add_argument("--work-dir", type=Path, default=BENCHMARKS_DIR / "work")
    parser.add_argument("--readme", type=Path, default=BENCHMARKS_DIR / "README.md")
    parser.add_argument(
        "--json", type=Path, default=BENCHMARKS_DIR / "results" / "sql_snapshot.json"
    )
    parser.add_argument("--render-only", action="store_true")
    parser.add_argument("--dlt-backend", help=argparse.SUPPRESS)
    parser.add_argument("--dlt-out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--adbc-parquet-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rows < 1 or args.runs < 1 or args.warmups < 0:
        parser.error("--rows and --runs must be >= 1, --warmups >= 0")
    args.contestants = chosen_contestants(parser, args.contestants, ALL_CONTESTANTS)
    args.table = args.table or default_table(args.rows)
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, write the results; exit 1 when an omconnect contestant FAILED."""
    args = parse_args(argv)
    if args.dlt_backend:
        print(run_dlt(args.dlt_backend, args.url, args.table, args.dlt_out))
        return 0
    if args.adbc_parquet_out:
        print(run_adbc_parquet(args.url, args.table, args.adbc_parquet_out))
        return 0
    if args.render_only:
        write_results(
            json.loads(args.json.read_text()),
            args.json,
            args.readme,
            SECTION,
            "B1: PostgreSQL snapshot",
            markdown_section(json.loads(args.json.read_text())),
        )
        return 0
    results = common_results(args)
    loaded = ensure_table(args.url, args.table, args.rows)
    print(f"B1 {quoted(args.table)}: {args.rows:,} rows ({loaded})", flush=True)
    contestants, versions = select_contestants(args)
    runs_dir = args.work_dir / "sql-snapshot"
    records = run_rounds(
        {c.name: partial(run_once, c, runs_dir / c.name) for c in contestants if c.not_run is None},
        args.warmups,
        args.runs,
        width=16,
    )
    shutil.rmtree(runs_dir, ignore_errors=True)
    results |= {
        "url": redacted(args.url),
        "table": args.table,
        "input": loaded,
        "postgres": server_facts(args.url),
        "peer_versions": versions,
        "targets_rows_per_second": TARGETS,
        "contestants": summarise(contestants, records, args.rows),
        "records": records,
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
    }
    write_results(
        results,
        args.json,
        args.readme,
        SECTION,
        "B1: PostgreSQL snapshot",
        markdown_section(results),
    )
    ours = [e for e in results["contestants"] if e["contestant"].startswith("omconnect")]
    return 1 if any(e["status"] == "FAILED" for e in ours) else 0


if __name__ == "__main__":
    sys.exit(main())

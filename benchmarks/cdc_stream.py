"""B2, CDC: PostgreSQL row changes streamed by the ``postgres-cdc`` source into a topic.

    python benchmarks/cdc_stream.py                     # the standard workload, 1 warm-up + 3 runs
    python benchmarks/cdc_stream.py --baseline 37eede1  # and omconnect as of that commit
    python benchmarks/cdc_stream.py --rows 2000 --commits 200 --lag-seconds 1 --runs 1 --warmups 0

The table ``omconnect_bench.cdc_t1m`` (``generate.py``'s t1m; ``cdc_t1m_<rows>`` for another
size) is loaded with COPY when it is missing or does not hold ids 1..rows. Each round then:

- **commits**: ``--commits`` (100,000) single-row ``UPDATE`` transactions (ids 1..N), written
  by a server-side loop before anything reads them, so the slots hold a backlog and what is
  measured is how fast a reader gets through it (not how fast the loop writes);
- **transaction**: one ``UPDATE`` of all ``--rows`` (1,000,000) rows;

each read, from the same WAL, through its own slot (made just before the workload) by
``omconnect`` (``omconnect run --once`` in a fresh directory: the ``postgres-cdc`` source,
``snapshot: never`` -> the embedded topic, Avro), ``omconnect@REF`` (``--baseline REF``: the
same pipeline on omconnect as of a git ref) and ``pg_recvlogical`` (PostgreSQL's own client,
``-P pgoutput -o proto_version=1`` into a file, stopped by ``--endpos`` at a logical message
written after the workload: what the server sends, the limit). Then:

- **lag**: ``omconnect run`` streams continuously while a writer process commits single-row
  updates at ``--rate`` (5,000/s) for ``--lag-seconds`` (20), over ``--writers`` (8)
  connections (one connection commits about 4,000 times a second here: each commit waits for
  its WAL flush), and a reader process tails the topic with the embedded broker's consumer.
  An event's lag is the wall-clock time at which the reader's poll returned it minus its
  commit time, ``source.ts_ms`` (PostgreSQL's commit timestamp, taken before the commit's
  WAL flush; the same machine and clock). The reader polls every ``READER_POLL_SECONDS`` and
  ``ts_ms`` is cut to the millisecond, so a lag is overstated by up to about 6 ms, never
  understated. Once with the pipeline's default ``batching.linger`` (recorded with the results:
  a batch waits that long for more rows) and once with ``--low-linger`` (0.01 s).
- **decode**: the decode path alone, no server, no broker, no runtime: the messages of the
  1M-row transaction (``pg_recvlogical``'s file of round 1) through ``_pgoutput`` and
  ``_cdc_events`` into envelope batches, in polls of 10,000 messages as the task reads them:
  ``per-message`` (``decode`` per message, ``rows_from_texts``: what the task called until
  it took a poll at once), ``batch`` (``decode_all``, ``rows_of``: what the task calls now)
  and ``per-message@REF``.

Every run is verified: the topic is read back (off the clock) and must hold exactly the
changes made (count, key-set checksum of the ids, every ``op`` ``u``); ``pg_recvlogical``'s
file is parsed by this script (not by omconnect's decoder) for the same count and checksum;
the decode runs' keys too. A wrong or incomplete run is FAILED and has no time. Slots and the
publication are dropped after each phase and at exit. Results go to ``benchmarks/README.md``
(section ``cdc-stream``), ``benchmarks/results/cdc_stream.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import generate
import numpy as np
import oracle
from contestants import BENCHMARKS_DIR, export_baseline, omconnect_inner_seconds
from contestants import _omconnect_command as omconnect_command
from process_meter import run_measured
from results_report import common_results, markdown_table, mib, rate, run_line, seconds, times
from results_report import write_results as write_results_files
from sql_snapshot import (
    BENCH_SCHEMA,
    DEFAULT_URL,
    connect,
    ensure_table,
    quoted,
    redacted,
    server_facts,
)
from topic_tail import (
    READER_POLL_SECONDS,
    default_linger,
    lag_percentiles,
    start_pipeline,
    stop_processes,
    tail_topic,
)

SECTION = "cdc-stream"
TITLE = "B2: PostgreSQL CDC -> topic"
RUN_TIMEOUT_SECONDS = 1800.0
# Lag phase: how long the topic may take to catch up after the writer, per second written.
CATCH_UP_SECONDS = 60.0
CATCH_UP_PER_SECOND = 10.0
POLL_MESSAGES = 10_000  # the source's default batch_size: messages per poll
TARGET_CHANGES_PER_SECOND = 30_000
TARGET_P99_MS = 250.0
MARKER_PREFIX = "omconnect-bench"
PHASES = {
    "commits": "single-row UPDATE commits (a backlog)",
    "transaction": "one UPDATE transaction",
}
T = TypeVar("T")
# The local message parser's integers.
_INT32 = struct.Struct(">i")
_INT16 = struct.Struct(">h")


# --- names and PostgreSQL ---------------------------------------------------------------------


@dataclass(frozen=True)
class Names:
    """The table of a benchmark and the publication and slots made for it."""

    table: str

    @property
    def base(self) -> str:
        return f"omc_bench_{self.table}"[:52]

    @property
    def publication(self) -> str:
        return self.base

    def slot(self, who: str) -> str:
        """``<base>__<who>``: the double underscore keeps another table's slots apart."""
        return f"{self.base}__{re.sub(r'[^a-z0-9_]', '_', who.lower())}"[:63]

    @property
    def topic(self) -> str:
        return f"cdc.{BENCH_SCHEMA}.{self.table}"


def default_table(rows: int) -> str:
    return "cdc_t1m" if rows == generate.DEFAULT_ROWS else f"cdc_t1m_{rows}"


def create_publication(url: str, names: Names) -> None:
    with connect(url) as conn:
        conn.execute(f'DROP PUBLICATION IF EXISTS "{names.publication}"')
        conn.execute(f'CREATE PUBLICATION "{names.publication}" FOR TABLE {quoted(names.table)}')


def create_slot(url: str, slot: str) -> None:
    with connect(url) as conn:
        conn.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", [slot])


def drop_slots(url: str, names: Names) -> list[str]:
    """Drop every slot of ``names`` (ending the sessions that stream them); their names."""
    pattern = names.base.replace("_", r"\_") + r"\_\_%"
    dropped = []
    with connect(url) as conn:
        for _ in range(100):
            rows = conn.execute(
                "SELECT slot_name, active_pid FROM pg_replication_slots WHERE slot_name LIKE %s",
                [pattern],
            ).fetchall()
            if not rows:
                break
            for slot, pid in rows:
                if pid is not None:
                    conn.execute("SELECT pg_terminate_backend(%s)", [pid])
                    continue
                with contextlib.suppress(Exception):  # it became active again: next pass
                    conn.execute("SELECT pg_drop_replication_slot(%s)", [slot])
                    dropped.append(slot)
            time.sleep(0.1)
    return dropped


def drop_everything(
    url: str, names: Names, publication: bool = True, wait_seconds: float = 120.0
) -> None:
    """The slots of ``names`` and its publication (after each phase, at exit, and before a
    run), waiting up to ``wait_seconds`` for a server that is restarting: a slot left behind
    keeps its WAL."""
    import psycopg

    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            drop_slots(url, names)
            if publication:
                with connect(url) as conn:
                    conn.execute(f'DROP PUBLICATION IF EXISTS "{names.publication}"')
            return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1.0)


def write_marker(url: str, text: str) -> int:
    """A non-transactional logical message after everything so far; its LSN."""
    with connect(url) as conn:
        lsn = conn.execute(
            "SELECT pg_logical_emit_message(false, %s, %s)::text", [MARKER_PREFIX, text]
        ).fetchone()[0]
    high, low = lsn.split("/")
    return (int(high, 16) << 32) | int(low, 16)


def lsn_text(lsn: int) -> str:
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


def write_commits(url: str, table: str, count: int) -> float:
    """``count`` single-row UPDATE transactions of ids 1..count, by a server-side loop (no
    round trip per commit; ``synchronous_commit`` off: they are read later, not waited for);
    its seconds."""
    started = time.perf_counter()
    with connect(url) as conn:
        conn.execute("SET synchronous_commit = off")
        conn.execute(
            f"DO $$ BEGIN FOR i IN 1..{int(count)} LOOP "
            f"UPDATE {quoted(table)} SET quantity = quantity + 1 WHERE id = i; COMMIT; "
            "END LOOP; END $$"
        )
    return time.perf_counter() - started


def write_transaction(url: str, table: str) -> float:
    """One UPDATE of every row; its seconds."""
    started = time.perf_counter()
    with connect(url) as conn:
        conn.execute(f"UPDATE {quoted(table)} SET quantity = quantity + 1")
    return time.perf_counter() - started


def vacuum(url: str, table: str) -> None:
    """The last round's dead rows gone, so every round updates a table of the same shape."""
    with connect(url) as conn:
        conn.execute(f"VACUUM {quoted(table)}")


# --- omconnect ----------------------------------------------------------------------------------


def pipeline_yaml(url: str, names: Names, slot: str, linger: float | None = None) -> str:
    """The pipeline every omconnect run uses: postgres-cdc (``snapshot: never``, the slot made
    for it) -> topic ``cdc.<schema>.<table>``, Avro."""
    text = (
        "name: bench-cdc\n"
        "broker: embedded://.omconnect\n"
        "state: .omconnect\n"
        "source:\n"
        "  connector: postgres-cdc\n"
        f"  url: {url}\n"
        f"  tables: [{BENCH_SCHEMA}.{names.table}]\n"
        f"  slot: {slot}\n"
        f"  publication: {names.publication}\n"
        "  snapshot: never\n"
        "topic: cdc\n"
        "format: avro\n"
    )
    if linger is not None:
        text += f"batching:\n  linger: {linger}\n"
    return text


@dataclass(frozen=True)
class Omconnect:
    """One omconnect to run: today's tree, or ``ref``'s (exported, first on PYTHONPATH)."""

    name: str
    argv: list[str]
    env: dict[str, str]
    python_path: str | None = None


def current_omconnect() -> Omconnect:
    return Omconnect("omconnect", omconnect_command(), dict(os.environ))


def baseline_omconnect(ref: str, work_dir: Path) -> Omconnect | str:
    """omconnect as of git ``ref`` (as ``contestants.omconnect_at`` exports it), or why not."""
    exported = export_baseline(ref, work_dir)
    if isinstance(exported, str):
        return exported
    sha, tree = exported
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tree), env.get("PYTHONPATH")]))
    argv = [sys.executable, "-m", "omconnect.runtime.cli.main"]
    return Omconnect(f"omconnect@{sha}", argv, env, str(tree))


async def _read_topic(
    folder: Path,
    topic: str,
    stop: Callable[[int, bool], bool],
    deadline: float,
    ready: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Read ``topic`` of the embedded broker in ``folder`` from its start until ``stop(count,
    idle)`` says so (``idle``: a poll found nothing) or ``deadline`` (monotonic) passes. Keeps,
    per event, its id, op, ``source.ts_ms`` and when the poll that returned it came back
    (``time.time()`` in ms). ``ready`` is called once the consumer has joined."""

    def events_of(group: Any) -> dict[str, np.ndarray]:
        assert group.keys is not None, "change events have keys"
        tombstones = group.tombstones
        return {
            "id": group.keys.column("id").to_numpy(False),
            "op": group.values.column("op").to_numpy(False),
            "ts_ms": group.values.column("source").field("ts_ms").to_numpy(False),
            "tombstone": (
                np.zeros(group.values.num_rows, bool)
                if tombstones is None
                else tombstones.to_numpy(False)
            ),
        }

    events = await tail_topic(folder, topic, "avro", events_of, stop, deadline, ready)
    tombstones = int(events.pop("tombstone", np.zeros(0)).sum())
    for name in ("id", "op", "ts_ms"):
        events.setdefault(name, np.zeros(0))
    return {"count": len(events["seen_ms"]), "tombstones": tombstones, **events}


def read_topic(folder: Path, topic: str, timeout: float = 600.0) -> dict[str, Any]:
    """Every event on ``topic`` (a finished run's: read until a poll finds nothing)."""
    deadline = time.monotonic() + timeout
    return asyncio.run(_read_topic(folder, topic, lambda _count, idle: idle, deadline))


def check_topic(folder: Path, topic: str, expected: int) -> dict[str, Any]:
    """``--check-topic``: the events on ``topic`` against the ids 1..``expected``."""
    events = read_topic(folder, topic)
    return {
        "events": events["count"],
        "checksum": _checksum_dict(events["id"]),
        "failure": verify_events(events, oracle.expected_checksum(expected)),
    }


def check_recvlogical(path: Path, expected: int) -> dict[str, Any]:
    """``--check-recvlogical``: ``pg_recvlogical``'s file against the ids 1..``expected``."""
    try:
        ids = recvlogical_update_ids(path.read_bytes())
    except (OSError, ValueError, IndexError, struct.error) as error:
        return {"events": None, "checksum": None, "failure": f"output unreadable: {error}"}
    found = oracle.checksum_of_keys(ids)
    wanted = oracle.expected_checksum(expected)
    return {
        "events": len(ids),
        "checksum": _checksum_dict(ids),
        "failure": None if found == wanted else f"wrong output: {found} != {wanted}",
    }


def checked(*argv: str) -> dict[str, Any]:
    """A step of this file's (``--check-topic``, ``--check-recvlogical``, ``--load-table``)
    in a subprocess: a measured process's peak RSS includes the most this process ever held
    (the kernel counts it at the child's exec), so big data never lives here."""
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "check.json"
        done = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), *argv, "--out", str(out)],
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT_SECONDS,
        )
        if done.returncode != 0:
            tail = (done.stderr.strip().splitlines() or ["(no stderr)"])[-1][-300:]
            return {"events": None, "checksum": None, "failure": f"check failed: {tail}"}
        result: dict[str, Any] = json.loads(out.read_text())
        return result


def verify_events(events: dict[str, Any], expected: oracle.KeySetChecksum) -> str | None:
    """None when the events are exactly the updates of the expected ids, else what is wrong."""
    if events["tombstones"]:
        return f"wrong output: {events['tombstones']} tombstones among updates"
    found = oracle.checksum_of_keys(events["id"].astype(np.int64))
    if found != expected:
        return f"wrong output: {found} != expected {expected}"
    ops = set(events["op"].tolist())
    if ops - {"u"}:
        return f"wrong output: ops {sorted(ops)}, expected only u"
    return None


def drain_omconnect(
    who: Omconnect, url: str, names: Names, slot: str, run_dir: Path, expected: int
) -> dict[str, Any]:
    """``omconnect run --once`` of the slot's backlog in a fresh ``run_dir``, measured; then
    the topic read back and checked (off the clock)."""
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    (run_dir / "pipeline.yaml").write_text(pipeline_yaml(url, names, slot))
    measured = run_measured(
        [*who.argv, "run", "pipeline.yaml", "--once"], run_dir, who.env, RUN_TIMEOUT_SECONDS
    )
    record = _measured_record(measured)
    record["inner_seconds"] = omconnect_inner_seconds(measured.stdout + measured.stderr_tail)
    if record["failure"] is None:
        record |= checked(
            *("--check-topic", str(run_dir), "--topic", names.topic, "--expect", str(expected))
        )
    shutil.rmtree(run_dir, ignore_errors=True)
    return record


# --- pg_recvlogical -----------------------------------------------------------------------------


def drain_recvlogical(
    url: str, names: Names, slot: str, end_lsn: int, run_dir: Path, expected: int, keep: Path | None
) -> dict[str, Any]:
    """``pg_recvlogical --start`` of the slot until the marker at ``end_lsn``, into a file,
    measured; the file parsed and checked (off the clock), and kept at ``keep`` if given."""
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    out = run_dir / "changes.bin"
    argv = [
        str(shutil.which("pg_recvlogical")),
        *("-d", url, "--slot", slot, "--start", "--no-loop"),
        *("-o", "proto_version=1", "-o", f"publication_names={names.publication}"),
        *("-o", "messages=true", "--endpos", lsn_text(end_lsn), "-f", str(out)),
    ]
    measured = run_measured(argv, run_dir, dict(os.environ), RUN_TIMEOUT_SECONDS)
    record = _measured_record(measured)
    record["inner_seconds"] = None
    if record["failure"] is None:
        record |= checked("--check-recvlogical", str(out), "--expect", str(expected))
        if keep is not None and record["failure"] is None:
            keep.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(out, keep)
    shutil.rmtree(run_dir, ignore_errors=True)
    return record


def split_messages(data: bytes) -> Iterator[tuple[int, int]]:
    """(start, end) of each pgoutput message of ``pg_recvlogical``'s output (each followed by
    a line break), found from the message layouts themselves: this script's own reading,
    independent of omconnect's decoder."""
    at, size = 0, len(data)
    while at < size:
        end = _message_end(data, at)
        if end >= size or data[end] != 0x0A:
            raise ValueError(f"no line break after the message at byte {at}")
        yield at, end
        at = end + 1


def _message_end(data: bytes, at: int) -> int:
    kind = data[at]
    if kind == 0x42:  # Begin: final LSN, commit time, xid
        return at + 21
    if kind == 0x43:  # Commit: flags, commit LSN, end LSN, commit time
        return at + 26
    if kind in (0x49, 0x55, 0x44):  # Insert, Update, Delete
        mark = data[at + 5]
        end = _tuple_end(data, at + 6)
        if kind == 0x55 and mark in (0x4B, 0x4F):  # an old row, then N and the new row
            end = _tuple_end(data, end + 1)
        return end
    if kind == 0x52:  # Relation: oid, schema, name, identity, columns
        end = data.index(0, data.index(0, at + 5) + 1) + 2
        columns = _INT16.unpack_from(data, end)[0]
        end += 2
        for _ in range(columns):
            end = data.index(0, end + 1) + 9
        return end
    if kind == 0x4D:  # Message: flags, LSN, prefix, length, content
        end = data.index(0, at + 10) + 1
        return end + 4 + _INT32.unpack_from(data, end)[0]
    if kind == 0x59:  # Type: oid, schema, name
        return data.index(0, data.index(0, at + 5) + 1) + 1
    if kind == 0x4F:  # Origin: LSN, name
        return data.index(0, at + 9) + 1
    if kind == 0x54:  # Truncate: count, options, oids
        return at + 6 + 4 * _INT32.unpack_from(data, at + 1)[0]
    raise ValueError(f"unknown pgoutput message kind {chr(kind)!r} at byte {at}")


def _tuple_end(data: bytes, at: int) -> int:
    count = _INT16.unpack_from(data, at)[0]
    at += 2
    for _ in range(count):
        at += 5 + _INT32.unpack_from(data, at + 1)[0] if data[at] == 0x74 else 1
    return at


def recvlogical_update_ids(data: bytes) -> np.ndarray:
    """The ``id`` (first column) of every Update message's new row in ``pg_recvlogical``'s
    output; ValueError for an Insert or Delete (none is made here)."""
    ids = []
    for start, _end in split_messages(data):
        kind = data[start]
        if kind in (0x49, 0x44):
            raise ValueError(f"an unexpected {chr(kind)!r} message at byte {start}")
        if kind != 0x55:
            continue
        at = start + 6
        if data[at - 1] != 0x4E:  # an old row first
            at = _tuple_end(data, at) + 1
        if data[at + 2] != 0x74:
            raise ValueError(f"an update without an id at byte {start}")
        length = _INT32.unpack_from(data, at + 3)[0]
        ids.append(int(data[at + 7 : at + 7 + length]))
    return np.array(ids, np.int64)


def _measured_record(measured: Any) -> dict[str, Any]:
    failure = None
    if measured.returncode != 0:
        last = (measured.stderr_tail.strip().splitlines() or ["(no stderr)"])[-1]
        failure = f"exit {measured.returncode}: {last[-300:]}"
    return {
        "wall_seconds": round(measured.wall_seconds, 3),
        "cpu_seconds": round(measured.cpu_seconds, 3),
        "peak_rss_bytes": measured.peak_rss_bytes,
        "events": None,
        "checksum": None,
        "failure": failure,
    }


def _checksum_dict(ids: np.ndarray) -> dict[str, int]:
    found = oracle.checksum_of_keys(np.asarray(ids, np.int64))
    return {"count": found.count, "sum": found.sum, "xor": found.xor}


# --- the phases of a round ----------------------------------------------------------------------


@dataclass(frozen=True)
class Setup:
    """What every phase of a run needs."""

    url: str
    names: Names
    rows: int
    commits: int
    omconnects: list[Omconnect]
    recvlogical: bool
    run_dir: Path


def drain_phase(setup: Setup, phase: str, keep: Path | None = None) -> dict[str, dict[str, Any]]:
    """One workload read by every contestant, each through its own slot made before it."""
    url, names = setup.url, setup.names
    readers = [o.name for o in setup.omconnects] + (["pg_recvlogical"] if setup.recvlogical else [])
    for name in readers:
        create_slot(url, names.slot(name))
    try:
        if phase == "commits":
            expected = setup.commits
            write_seconds = write_commits(url, names.table, expected)
        else:
            expected = setup.rows
            write_seconds = write_transaction(url, names.table)
        end_lsn = write_marker(url, phase)
        records: dict[str, dict[str, Any]] = {}
        for who in setup.omconnects:
            records[who.name] = drain_omconnect(
                who, url, names, names.slot(who.name), setup.run_dir / who.name, expected
            )
        if setup.recvlogical:
            records["pg_recvlogical"] = drain_recvlogical(
                url,
                names,
                names.slot("pg_recvlogical"),
                end_lsn,
                setup.run_dir / "pg_recvlogical",
                expected,
                keep,
            )
        for record in records.values():
            record["changes"] = expected
            record["write_seconds"] = round(write_seconds, 3)
        return records
    finally:
        drop_everything(url, names, publication=False)


def lag_phase(
    setup: Setup, rate_per_second: int, duration: float, writers: int, linger: float | None
) -> dict[str, Any]:
    """``omconnect run`` streaming while the writer commits at ``rate_per_second``; the
    reader's lag per event (see the module docstring)."""
    url, names = setup.url, setup.names
    slot = names.slot("lag")
    run_dir = setup.run_dir / "lag"
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    commits = max(1, int(rate_per_second * duration))
    wait_seconds = duration + CATCH_UP_SECONDS + CATCH_UP_PER_SECOND * duration
    (run_dir / "pipeline.yaml").write_text(pipeline_yaml(url, names, slot, linger))
    create_slot(url, slot)
    record: dict[str, Any] = {
        "linger": linger,
        "default_linger": default_linger(),
        "offered_rate": rate_per_second,
        "commits": commits,
    }
    script = str(Path(__file__).resolve())
    pipeline = reader = None
    try:
        pipeline = start_pipeline(run_dir)
        _wait_streaming(url, slot, pipeline)
        reader = subprocess.Popen(
            [
                sys.executable,
                script,
                *("--read-lag", str(run_dir), "--topic", names.topic),
                *("--expect", str(commits), "--timeout", str(wait_seconds)),
                *("--out", str(run_dir / "lag.json")),
            ],
            cwd=run_dir,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert reader.stdout is not None
        if reader.stdout.readline().strip() != "ready":
            raise RuntimeError(
                f"the reader did not start: {reader.stderr.read() if reader.stderr else ''}"
            )
        written = subprocess.run(
            [
                sys.executable,
                script,
                *("--write", url, "--table", names.table, "--rate", str(rate_per_second)),
                *("--count", str(commits), "--writers", str(writers)),
            ],
            cwd=run_dir,
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT_SECONDS,
        )
        if written.returncode != 0:
            raise RuntimeError(f"the writer failed: {written.stderr.strip()[-300:]}")
        record["writer"] = json.loads(written.stdout.strip().splitlines()[-1])
        deadline = time.monotonic() + wait_seconds + 60
        while reader.poll() is None:  # the reader ends once every change came (or times out)
            if pipeline.poll() is not None:
                log = (run_dir / "omconnect.log").read_text(errors="replace").strip()
                tail = (log.splitlines() or ["(no output)"])[-1][-300:]
                raise RuntimeError(f"omconnect run exited with {pipeline.returncode}: {tail}")
            if time.monotonic() > deadline:
                raise RuntimeError("the reader did not finish")
            time.sleep(0.5)
        _, err = reader.communicate()
        if reader.returncode != 0:
            raise RuntimeError(f"the reader failed: {err.strip()[-300:]}")
        result = json.loads((run_dir / "lag.json").read_text())
        record |= {k: v for k, v in result.items() if k != "lags_ms"}
        lags = np.array(result["lags_ms"], np.float64)
        record["failure"] = result["failure"]
        if record["failure"] is None and result["checksum"] != record["writer"]["checksum"]:
            record["failure"] = (
                f"wrong output: {result['checksum']} for the commits' "
                f"{record['writer']['checksum']}"
            )
        if len(lags):
            record |= lag_percentiles(lags)
    except (RuntimeError, subprocess.TimeoutExpired, ValueError) as error:
        record["failure"] = f"{type(error).__name__}: {error}"
    finally:
        stop_processes(reader, pipeline)
        drop_everything(url, names, publication=False)
        shutil.rmtree(run_dir, ignore_errors=True)
    return record


def _wait_streaming(url: str, slot: str, pipeline: subprocess.Popen[bytes]) -> None:
    """Until ``pipeline`` streams ``slot`` (the slot is active)."""
    deadline = time.monotonic() + 120
    with connect(url) as conn:
        while time.monotonic() < deadline:
            if pipeline.poll() is not None:
                raise RuntimeError(f"omconnect run exited with {pipeline.returncode}")
            active = conn.execute(
                "SELECT active FROM pg_replication_slots WHERE slot_name = %s", [slot]
            ).fetchone()
            if active and active[0]:
                return
            time.sleep(0.05)
    raise RuntimeError(f"omconnect run did not stream {slot} within 120 s")


def server_started(url: str, wait_seconds: float = 300.0) -> str:
    """When the server started (``pg_postmaster_start_time``), waiting for it to answer."""
    import psycopg

    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            with connect(url) as conn:
                return str(conn.execute("SELECT pg_postmaster_start_time()").fetchone()[0])
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1.0)


def undisturbed(url: str, phase: Callable[[], T], attempts: int = 5) -> T:
    """``phase()``, done again when the server restarted meanwhile: on a shared machine another
    job may restart PostgreSQL, and a run that saw a restart measured the restart. Its
    result, or its error, counts when the server stayed up through it."""
    for _ in range(attempts):
        before = server_started(url)
        try:
            result = phase()
        except Exception:
            if server_started(url) == before:
                raise
        else:
            if server_started(url) == before:
                return result
        print("  the server restarted during this phase (another job?): it runs again", flush=True)
    raise SystemExit(f"the server restarted during each of {attempts} attempts of a phase")


def decode_phase(
    input_file: Path, variant: str, python_path: str | None, rows: int, run_dir: Path
) -> dict[str, Any]:
    """The decode path alone over ``input_file`` (``--decode`` in a measured subprocess)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    if python_path is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [python_path, env.get("PYTHONPATH")]))
    argv = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--decode",
        str(input_file),
        "--variant",
        variant,
    ]
    measured = run_measured(argv, run_dir, env, RUN_TIMEOUT_SECONDS)
    record = _measured_record(measured)
    record["inner_seconds"] = None
    if record["failure"] is None:
        printed = json.loads(measured.stdout.strip().splitlines()[-1])
        record["inner_seconds"] = round(printed["seconds"], 3)
        record["events"] = printed["rows"]
        record["checksum"] = printed["checksum"]
        found = oracle.KeySetChecksum(**printed["checksum"])
        if found != oracle.expected_checksum(rows):
            record["failure"] = f"wrong output: {found} != {oracle.expected_checksum(rows)}"
    return record


# --- hidden modes: the writer, the reader, the decode runs --------------------------------------


def run_writer(url: str, table: str, per_second: int, count: int, writers: int) -> dict[str, Any]:
    """Commit ``count`` single-row updates (ids 1..count, cycling over the table) at
    ``per_second``, commit k due at ``start + k / per_second``, over ``writers`` connections
    (commit k on connection k mod writers)."""
    import psycopg

    connections = [psycopg.connect(url, autocommit=True) for _ in range(writers)]
    statement = f"UPDATE {quoted(table)} SET quantity = quantity + 1 WHERE id = %s"
    with connections[0].cursor() as cursor:
        size = cursor.execute(f"SELECT count(*) FROM {quoted(table)}").fetchone()[0]
    start = time.monotonic() + 0.2
    behind = [0.0] * writers
    failures: list[BaseException] = []

    def write(number: int) -> None:
        conn = connections[number]
        try:
            for k in range(number, count, writers):
                due = start + k / per_second
                wait = due - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                else:
                    behind[number] = max(behind[number], -wait)
                updated = conn.execute(statement, (k % size + 1,), prepare=True).rowcount
                if updated != 1:
                    raise RuntimeError(f"an update of id {k % size + 1} changed {updated} rows")
        except BaseException as error:  # reported by the main thread: the commits are short
            failures.append(error)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    took = time.monotonic() - start
    for conn in connections:
        conn.close()
    if failures:
        raise SystemExit(f"the writer failed: {failures[0]!r}")
    return {
        "written": count,
        "seconds": round(took, 3),
        "achieved_rate": round(count / took),
        "most_behind_ms": round(max(behind) * 1000, 1),
        "checksum": _checksum_dict(np.arange(count) % size + 1),
    }


def run_lag_reader(folder: Path, topic: str, expect: int, timeout: float) -> dict[str, Any]:
    """Tail ``topic`` until ``expect`` events came (and half a second more, for any extra);
    per event its lag in ms. Prints ``ready`` once the consumer has joined."""
    reached: list[float] = []

    def stop(count: int, _idle: bool) -> bool:
        if count >= expect and not reached:
            reached.append(time.monotonic())
        return bool(reached) and time.monotonic() - reached[0] > 0.5

    def ready() -> None:
        print("ready", flush=True)

    deadline = time.monotonic() + timeout
    events = asyncio.run(_read_topic(folder, topic, stop, deadline, ready))
    failure = None
    ops = set(events["op"].tolist())
    if events["tombstones"] or ops - {"u"}:
        failure = f"wrong output: ops {sorted(ops)}, {events['tombstones']} tombstones"
    lags = events["seen_ms"] - events["ts_ms"]
    # Where the time goes: commit -> the runtime made the message (the source, the slot, the
    # batching linger), and the message made -> readable (encoding, the broker's append).
    made = events["born_ms"] - events["ts_ms"]
    published = events["seen_ms"] - events["born_ms"]
    return {
        "count": events["count"],
        "checksum": _checksum_dict(events["id"]),
        "failure": failure,
        "made_p50_ms": round(float(np.percentile(made, 50)), 1) if len(made) else None,
        "made_p99_ms": round(float(np.percentile(made, 99)), 1) if len(made) else None,
        "published_p50_ms": round(float(np.percentile(published, 50)), 1) if len(made) else None,
        "published_p99_ms": round(float(np.percentile(published, 99)), 1) if len(made) else None,
        "lags_ms": [round(float(x), 2) for x in lags],
    }


def run_decode(input_file: Path, variant: str) -> dict[str, Any]:
    """The decode path over the messages in ``input_file`` (``pg_recvlogical``'s output of
    one transaction), in polls of ``POLL_MESSAGES``: envelope batches and their keys, as the
    task builds them; the messages are split off the clock."""
    from omconnect.connectors.sql import _cdc_events as events
    from omconnect.connectors.sql import _pgoutput as pgoutput

    data = input_file.read_bytes()
    payloads = [data[start:end] for start, end in split_messages(data)]
    polls = [payloads[i : i + POLL_MESSAGES] for i in range(0, len(payloads), POLL_MESSAGES)]
    source = events.SourceInfo("bench", "test", 0, None, 1, 1)
    table: Any = None
    rows = 0
    checksum = oracle.EMPTY

    def table_of(relation: Any) -> Any:
        columns = tuple((c.name, c.type_oid, c.type_modifier) for c in relation.columns)
        return events.TableEvents(relation.schema, relation.name, columns, ("id",))

    started = time.perf_counter()
    for poll in polls:
        if variant == "batch":
            for item in pgoutput.decode_all(poll):
                if isinstance(item, pgoutput.Relation):
                    table = table_of(item)
                elif isinstance(item, pgoutput.Changes):
                    changes = events.key_changes(table, item)
                    after, unchanged = events.rows_of(table, changes)
                    before, _ = events.rows_of(table, changes, old=True)
                    values = events.envelopes(table, changes.ops, before, after, source, unchanged)
                    keys = events.keys_of(table, after)
                    rows += values.num_rows
                    checksum = checksum + oracle.checksum_of_keys(keys.column(0))
            continue
        found = []
        for payload in poll:
            message = pgoutput.decode(payload)
            if isinstance(message, pgoutput.Relation):
                table = table_of(message)
            elif isinstance(message, pgoutput.Change):
                found.append(message)
        if found:
            after, unchanged = events.rows_from_texts(table, [c.new for c in found])
            before, _ = events.rows_from_texts(table, [c.old for c in found])
            values = events.envelopes(
                table, [c.op for c in found], before, after, source, unchanged
            )
            keys = events.keys_of(table, after)
            rows += values.num_rows
            checksum = checksum + oracle.checksum_of_keys(keys.column(0))
    return {
        "rows": rows,
        "seconds": time.perf_counter() - started,
        "checksum": {"count": checksum.count, "sum": checksum.sum, "xor": checksum.xor},
    }


# --- summaries and the report -------------------------------------------------------------------


def median_of(runs: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(values) if values else None


def summarise(records: dict[str, list[dict[str, Any]]], changes: int) -> list[dict[str, Any]]:
    """Medians of the measured runs per reader; a reader with a failed run has no time."""
    summary = []
    for name, runs in records.items():
        measured = [r for r in runs if r["phase"] == "measured"]
        failed = [r for r in measured if r["failure"]]
        wall = median_of(measured, "wall_seconds") if not failed else None
        inner = median_of(measured, "inner_seconds") if not failed else None
        summary.append(
            {
                "reader": name,
                "status": "FAILED" if failed else "verified",
                "failure": failed[0]["failure"] if failed else None,
                "changes": changes,
                "wall_seconds_median": wall,
                "changes_per_second": round(changes / wall) if wall else None,
                "inner_seconds_median": inner,
                "changes_per_second_inner": round(changes / inner) if inner else None,
                "cpu_seconds_median": median_of(measured, "cpu_seconds"),
                "peak_rss_bytes": max((r["peak_rss_bytes"] for r in measured), default=None),
            }
        )
    return summary


def summarise_lag(runs: list[dict[str, Any]]) -> dict[str, Any]:
    measured = [r for r in runs if r["phase"] == "measured"]
    failed = [r for r in measured if r["failure"]]
    entry: dict[str, Any] = {
        "linger": measured[0]["linger"] if measured else None,
        "default_linger": measured[0].get("default_linger", 0.2) if measured else None,
        "status": "FAILED" if failed else "verified",
        "failure": failed[0]["failure"] if failed else None,
        "offered_rate": measured[0]["offered_rate"] if measured else None,
        "commits": measured[0]["commits"] if measured else None,
        "achieved_rate_median": median_of(
            [r["writer"] for r in measured if "writer" in r], "achieved_rate"
        ),
    }
    for key in ("lag_p50_ms", "lag_p90_ms", "lag_p99_ms", "lag_p999_ms", "lag_max_ms"):
        entry[key] = median_of(measured, key) if not failed else None
    for key in ("made_p50_ms", "made_p99_ms", "published_p50_ms", "published_p99_ms"):
        entry[key] = median_of(measured, key) if not failed else None
    return entry


def _output(entry: dict[str, Any]) -> str:
    return entry["status"] if not entry["failure"] else f"FAILED: {entry['failure']}"


def markdown_section(results: dict[str, Any]) -> str:
    server = results["postgres"]
    lines = [
        f"{run_line(results)} Load average at the end: {results['load_average_at_end'][0]}.",
        "",
        f"Input: `{BENCH_SCHEMA}.{results['table']}`, the t1m table ({results['rows']:,} rows "
        f"x 10 columns), PostgreSQL {server['version']} on the same machine (wal_level "
        f"{server['wal_level']}, synchronous_commit {server['synchronous_commit']}). "
        f"{results['warmups']} warm-up + {results['runs']} measured runs, round by round, "
        "median reported. Every run verified: the topic read back (count, key-set checksum "
        "of the ids, every op `u`), `pg_recvlogical`'s file parsed by the benchmark itself; a "
        "wrong run is FAILED.",
        "",
        "Backlogs read through a fresh slot each, wall time of the whole process (interpreter "
        "start included) and, for omconnect, its own run summary (`elapsed`, the pipeline "
        "alone). Peak RSS as `process_meter.py` takes it: a process started by this script "
        "counts at least what the script held then (the kernel keeps the high-water mark "
        "across exec), about 100 MiB here, as `pg_recvlogical`'s row shows:",
        "",
    ]
    header = [
        "workload",
        "reader",
        "wall",
        "changes/s",
        "own time",
        "changes/s (own time)",
        "CPU",
        "peak RSS",
        "wall / pg_recvlogical",
        "output",
    ]
    rows = []
    for phase, title in PHASES.items():
        entries = results["summary"].get(phase, [])
        limit = next((e for e in entries if e["reader"] == "pg_recvlogical"), None)
        for entry in entries:
            wall = entry["wall_seconds_median"]
            base = limit["wall_seconds_median"] if limit else None
            rows.append(
                [
                    f"{entry['changes']:,} {title}",
                    f"`{entry['reader']}`",
                    seconds(wall),
                    rate(entry["changes_per_second"]),
                    seconds(entry["inner_seconds_median"]),
                    rate(entry["changes_per_second_inner"]),
                    seconds(entry["cpu_seconds_median"]),
                    mib(entry["peak_rss_bytes"]),
                    times(wall / base) if wall and base else "-",
                    _output(entry),
                ]
            )
    lines += [markdown_table(header, rows), ""]
    lag = results["summary"].get("lag", [])
    if lag:
        lines += [
            f"Lag, commit (`source.ts_ms`) to readable on the topic, at "
            f"{results['rate']:,} single-row commits/s offered for {results['lag_seconds']:g} s "
            f"({results['writers']} writer connections), `omconnect run` streaming "
            f"continuously; the reader polls every {READER_POLL_SECONDS * 1000:g} ms (medians "
            "of the runs' percentiles):",
            "",
        ]
        header = ["batching.linger", "offered/s", "achieved/s", "commits"]
        header += ["p50", "p90", "p99", "p99.9", "max", "output"]
        rows = [
            [
                f"{e['linger'] if e['linger'] is not None else e.get('default_linger', 0.2):g} s"
                + (" (default)" if e["linger"] is None else ""),
                rate(e["offered_rate"]),
                rate(e["achieved_rate_median"]),
                rate(e["commits"]),
                *(_ms(e[k]) for k in ("lag_p50_ms", "lag_p90_ms", "lag_p99_ms")),
                *(_ms(e[k]) for k in ("lag_p999_ms", "lag_max_ms")),
                _output(e),
            ]
            for e in lag
        ]
        lines += [markdown_table(header, rows), ""]
        lines += [
            "Where the time goes (medians of the runs' p50 / p99): from the commit to the "
            "message the runtime made of the change (the slot, the source task, the batching "
            "linger), and from there to readable on the topic (encoding, the broker's append, "
            "the reader's poll):",
            "",
        ]
        for e in lag:
            linger = "default linger" if e["linger"] is None else f"linger {e['linger']:g} s"
            made = f"{_ms(e.get('made_p50_ms'))} / {_ms(e.get('made_p99_ms'))}"
            readable = f"{_ms(e.get('published_p50_ms'))} / {_ms(e.get('published_p99_ms'))}"
            lines.append(f"- {linger}: commit -> message {made}; message -> readable {readable}")
        lines += [
            "",
            "The writer commits on a schedule; it falls behind it (achieved < offered) when "
            "the machine's 2 CPUs are taken (omconnect, PostgreSQL, the reader).",
            "",
        ]
    decode = results["summary"].get("decode", [])
    if decode:
        reference = next((e for e in decode if "@" in e["reader"]), None)
        lines += [
            f"The decode path alone (messages -> envelope batches, polls of {POLL_MESSAGES:,} "
            f"messages; no server, broker or runtime) over the {results['rows']:,}-row "
            "transaction's messages:",
            "",
        ]
        header = ["decode path", "time", "changes/s", "wall", "speed-up on before", "output"]
        rows = []
        for e in decode:
            inner = e["inner_seconds_median"]
            base = reference["inner_seconds_median"] if reference else None
            rows.append(
                [
                    f"`{e['reader']}`",
                    seconds(inner),
                    rate(e["changes_per_second_inner"]),
                    seconds(e["wall_seconds_median"]),
                    times(base / inner) if inner and base else "-",
                    _output(e),
                ]
            )
        lines += [markdown_table(header, rows), ""]
        lines += [
            "- `per-message`: `_pgoutput.decode` per message, `_cdc_events.rows_from_texts` "
            "and `envelopes` per poll: what the task called before it took a poll at once",
            "- `batch`: `decode_all` (a poll's changes of one table at once), `key_changes`, "
            "`rows_of`, `envelopes`: the same batches with no Python per change, what the "
            "task calls now",
            "",
        ]
    lines += ["Targets (the issue):", "", *target_lines(results)]
    return "\n".join(lines)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f} ms"


def target_lines(results: dict[str, Any]) -> list[str]:
    lines = []
    commits = {e["reader"]: e for e in results["summary"].get("commits", [])}
    ours = commits.get("omconnect")
    if ours is not None:
        found = ours["changes_per_second_inner"]
        verdict = "met" if found and found >= TARGET_CHANGES_PER_SECOND else "**missed**"
        lines.append(
            f"- sustained >= {TARGET_CHANGES_PER_SECOND:,} changes/s over the single-row "
            f"commits: {verdict} ({rate(found)} changes/s over omconnect's own time, "
            f"{rate(ours['changes_per_second'])} over its wall time)"
        )
    for entry in results["summary"].get("lag", []):
        found = entry["lag_p99_ms"]
        verdict = "met" if found is not None and found < TARGET_P99_MS else "**missed**"
        linger = "default linger" if entry["linger"] is None else f"linger {entry['linger']:g} s"
        lines.append(
            f"- p99 lag < {TARGET_P99_MS:g} ms at {entry['offered_rate']:,} changes/s "
            f"({linger}): {verdict} ({_ms(found)})"
        )
    return lines


# --- command line -------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=generate.DEFAULT_ROWS, help="table rows")
    parser.add_argument("--commits", type=int, default=100_000, help="single-row commits")
    parser.add_argument("--rate", type=int, default=5_000, help="lag phase: commits/s offered")
    parser.add_argument("--lag-seconds", type=float, default=20.0, help="lag phase: how long")
    parser.add_argument("--writers", type=int, default=8, help="lag phase: writer connections")
    parser.add_argument(
        "--low-linger", type=float, default=0.01, help="lag phase: the second linger (0: none)"
    )
    parser.add_argument("--runs", type=int, default=3, help="measured runs (median reported)")
    parser.add_argument("--warmups", type=int, default=1, help="unmeasured runs first")
    parser.add_argument("--url", default=DEFAULT_URL, help="the PostgreSQL database")
    parser.add_argument("--table", help="the table (default: cdc_t1m, cdc_t1m_<rows>)")
    parser.add_argument("--baseline", help="also run omconnect as of this git ref")
    parser.add_argument("--no-lag", action="store_true", help="skip the lag phase")
    parser.add_argument("--no-decode", action="store_true", help="skip the decode phase")
    parser.add_argument("--work-dir", type=Path, default=BENCHMARKS_DIR / "work")
    parser.add_argument("--readme", type=Path, default=BENCHMARKS_DIR / "README.md")
    parser.add_argument("--json", type=Path, default=BENCHMARKS_DIR / "results" / "cdc_stream.json")
    parser.add_argument("--render-only", action="store_true")
    # The measured helpers run this file again.
    parser.add_argument("--write", help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--read-lag", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--topic", help=argparse.SUPPRESS)
    parser.add_argument("--expect", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--timeout", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--load-table", help=argparse.SUPPRESS)
    parser.add_argument("--check-topic", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--check-recvlogical", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--decode", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--variant", default="per-message", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.table = args.table or default_table(args.rows)
    if args.out is not None or args.write or args.decode:  # a step of a run: checked there
        return args
    if args.rows < 1 or args.runs < 1 or args.warmups < 0 or args.writers < 1:
        parser.error("--rows, --runs and --writers must be >= 1, --warmups >= 0")
    if not 1 <= args.commits <= args.rows:
        parser.error("--commits must be between 1 and --rows (each commit updates its own id)")
    if args.rate < 1 or args.lag_seconds <= 0:
        parser.error("--rate and --lag-seconds must be > 0")
    return args


def run_benchmark(args: argparse.Namespace) -> dict[str, Any]:
    names = Names(args.table)
    results = common_results(args) | {
        "url": redacted(args.url),
        "table": args.table,
        "commits": args.commits,
        "rate": args.rate,
        "lag_seconds": args.lag_seconds,
        "writers": args.writers,
    }
    # Loaded in a subprocess too: generating the table would grow this process.
    loaded = checked("--load-table", args.url, "--table", args.table, "--rows", str(args.rows))
    if loaded.get("failure"):
        raise SystemExit(f"loading {quoted(args.table)} failed: {loaded['failure']}")
    results["input"] = loaded["input"]
    results["postgres"] = server_facts(args.url)
    print(f"B2 {quoted(args.table)}: {args.rows:,} rows ({results['input']})", flush=True)
    work = args.work_dir / "cdc-stream"
    shutil.rmtree(work, ignore_errors=True)
    omconnects = [current_omconnect()]
    baseline: Omconnect | None = None
    if args.baseline:
        found = baseline_omconnect(args.baseline, args.work_dir)
        if isinstance(found, str):
            raise SystemExit(f"--baseline {args.baseline}: {found}")
        baseline = found
        omconnects.append(baseline)
    results["baseline"] = baseline.name if baseline else None
    recvlogical = shutil.which("pg_recvlogical") is not None
    results["pg_recvlogical"] = _recvlogical_version() if recvlogical else "not installed"
    setup = Setup(args.url, names, args.rows, args.commits, omconnects, recvlogical, work)
    records: dict[str, Any] = {"commits": {}, "transaction": {}, "lag": {}, "decode": {}}
    decode_input = work / "transaction.bin"
    lingers: list[float | None] = [None] + ([args.low_linger] if args.low_linger > 0 else [])
    drop_everything(args.url, names)
    create_publication(args.url, names)
    try:
        for number in range(args.warmups + args.runs):
            phase = "warm-up" if number < args.warmups else "measured"
            vacuum(args.url, args.table)
            for workload in PHASES:
                keep = decode_input if workload == "transaction" and number == 0 else None
                drained = undisturbed(args.url, partial(drain_phase, setup, workload, keep))
                for name, record in drained.items():
                    records[workload].setdefault(name, []).append({"phase": phase, **record})
                    _print_run(phase, f"{workload} {name}", record)
            if not args.no_lag:
                for linger in lingers:
                    lag = partial(lag_phase, setup, args.rate, args.lag_seconds, args.writers)
                    record = undisturbed(args.url, partial(lag, linger))
                    key = "default" if linger is None else f"{linger:g}"
                    records["lag"].setdefault(key, []).append({"phase": phase, **record})
                    _print_lag(phase, key, record)
            if not args.no_decode and decode_input.exists():
                variants = [("per-message", "per-message", None), ("batch", "batch", None)]
                if baseline is not None:
                    sha = baseline.name.split("@")[1]
                    variants.append((f"per-message@{sha}", "per-message", baseline.python_path))
                for name, variant, tree in variants:
                    record = decode_phase(decode_input, variant, tree, args.rows, work / "decode")
                    records["decode"].setdefault(name, []).append({"phase": phase, **record})
                    _print_run(phase, f"decode {name}", record)
    finally:
        drop_everything(args.url, names)
        shutil.rmtree(work, ignore_errors=True)
    results["records"] = records
    results["summary"] = summaries(results)
    results["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    return results


def summaries(results: dict[str, Any]) -> dict[str, Any]:
    """The medians of a run's records (also made again by ``--render-only``)."""
    records = results["records"]
    return {
        "commits": summarise(records["commits"], results["commits"]),
        "transaction": summarise(records["transaction"], results["rows"]),
        "lag": [summarise_lag(runs) for runs in records["lag"].values()],
        "decode": summarise(records["decode"], results["rows"]),
    }


def _recvlogical_version() -> str:
    done = subprocess.run(["pg_recvlogical", "--version"], capture_output=True, text=True)
    return done.stdout.strip() or "unknown"


def _print_run(phase: str, name: str, record: dict[str, Any]) -> None:
    took = record.get("inner_seconds") or record["wall_seconds"]
    print(f"  {phase:8} {name:36} {took} s  {record['failure'] or 'ok'}", flush=True)


def _print_lag(phase: str, linger: str, record: dict[str, Any]) -> None:
    print(
        f"  {phase:8} lag linger={linger:8} p50={record.get('lag_p50_ms')} ms "
        f"p99={record.get('lag_p99_ms')} ms  {record['failure'] or 'ok'}",
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and write its results; exit 1 when an omconnect run FAILED."""
    args = parse_args(argv)
    # A stopped run still drops its slots (their WAL would stay on the server): SIGTERM ends
    # it as an exception does, through the ``finally`` blocks.
    signal.signal(signal.SIGTERM, lambda _signal, _frame: sys.exit(143))
    if args.write:
        result = run_writer(args.write, args.table, args.rate, args.count, args.writers)
        print(json.dumps(result))
        return 0
    if args.read_lag:
        result = run_lag_reader(args.read_lag, args.topic, args.expect, args.timeout)
        args.out.write_text(json.dumps(result))  # a file: a pipe would fill and block
        return 0
    if args.load_table:
        args.out.write_text(
            json.dumps({"input": ensure_table(args.load_table, args.table, args.rows)})
        )
        return 0
    if args.check_topic:
        args.out.write_text(json.dumps(check_topic(args.check_topic, args.topic, args.expect)))
        return 0
    if args.check_recvlogical:
        args.out.write_text(json.dumps(check_recvlogical(args.check_recvlogical, args.expect)))
        return 0
    if args.decode:
        print(json.dumps(run_decode(args.decode, args.variant)))
        return 0
    if args.render_only:
        results = json.loads(args.json.read_text())
        results["summary"] = summaries(results)
    else:
        results = run_benchmark(args)
    write_results_files(results, args.json, args.readme, SECTION, TITLE, markdown_section(results))
    failed = [
        entry
        for kind in ("commits", "transaction", "decode")
        for entry in results["summary"][kind]
        if entry["status"] == "FAILED" and entry["reader"] != "pg_recvlogical"
    ]
    failed += [entry for entry in results["summary"]["lag"] if entry["status"] == "FAILED"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

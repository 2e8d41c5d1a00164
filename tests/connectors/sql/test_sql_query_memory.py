"""A MariaDB ``query:`` without ``key`` is read in one statement whose result streams: the
memory a run holds does not grow with the result.

Each read runs in a process of its own, which reports how far its peak RSS (``ru_maxrss``)
rose while it read every row. A result of ``LARGE`` rows (about 400 MB of text) must raise it
by at most ``MARGIN_BYTES`` more than one of ``SMALL`` rows does. Measured: when ConnectorX
materialised the whole result, 44 MiB for 50k rows and 438 MiB for 2M; streamed, 44 MiB and
70 MiB (3M rows: 70 MiB too)."""

from __future__ import annotations

import json
import resource
import subprocess
import sys

from omconnect.runtime.testing import SourceDriver
from tests.connectors.sql import test_source_bad_values as bad_values
from tests.support.omconnect_process import REPO
from tests.support.sql_databases import SqlDatabase

mariadb_database = bad_values.mariadb_database

SMALL = 50_000
LARGE = 2_000_000
PAD_BYTES = 200
MARGIN_BYTES = 96 * 2**20


def query(rows: int) -> str:
    """``rows`` rows of an id and ``PAD_BYTES`` of text, from MariaDB's sequence engine."""
    return f"SELECT seq AS id, REPEAT('x', {PAD_BYTES}) AS pad FROM seq_1_to_{rows}"


def read_in_this_process() -> None:
    """The child's part: read ``query(rows)`` at ``url`` (its arguments) to the end and print
    the rows read and how far the peak RSS rose meanwhile, in bytes, as JSON."""
    url, rows = sys.argv[1], int(sys.argv[2])
    source = SourceDriver("sql", {"url": url, "query": query(rows)})
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    read = 0
    while (batches := source.poll()) is not None:
        read += sum(batch.num_rows for batch in batches)
    source.stop()
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"rows": read, "growth_bytes": (after - before) * 1024}))  # KiB on Linux


def peak_growth(database: SqlDatabase, rows: int) -> int:
    """How far the peak RSS of a new process rose while it read ``query(rows)``."""
    child = f"from {__name__} import read_in_this_process; read_in_this_process()"
    done = subprocess.run(
        [sys.executable, "-c", child, database.url, str(rows)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.splitlines()[-1])
    assert report["rows"] == rows
    return int(report["growth_bytes"])


def test_a_keyless_query_holds_the_same_memory_for_a_result_forty_times_larger(
    mariadb_database: SqlDatabase,
) -> None:
    small = peak_growth(mariadb_database, SMALL)
    large = peak_growth(mariadb_database, LARGE)
    result_bytes = LARGE * PAD_BYTES
    assert large - small < MARGIN_BYTES < result_bytes / 2, (
        f"reading {LARGE} rows raised the peak RSS by {large / 2**20:.0f} MiB, "
        f"{SMALL} rows by {small / 2**20:.0f} MiB"
    )

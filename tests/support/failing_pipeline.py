"""A pipeline whose source fails for good after a big good file, run by real ``omconnect``
processes: a CSV of ``GOOD_ROWS`` ids sorted before a file with a value that fails its declared
column type (``errors.tolerance: none``), into Parquet, on the embedded broker.

The in-flight bound: the source has at most ``MAX_IN_FLIGHT_BYTES`` of batches between poll
and ack (one batch more when a single batch is larger), each of at most ``MAX_ROWS`` rows.
A failure may publish again at most what was in flight, never what was acknowledged.
"""

from __future__ import annotations

import io
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.dataset as ds

from tests.support.omconnect_process import omconnect

GOOD_ROWS = 100_000
MAX_ROWS = 10_000
MAX_IN_FLIGHT_BYTES = 1_048_576
TOPIC = "faulty"
COLUMNS = {"id": pa.int64(), "name": pa.string(), "amount": pa.float64()}


def write_inputs(directory: Path, rows: int = GOOD_ROWS) -> None:
    """``a_good.csv`` with ids 0..rows-1, then ``b_bad.csv`` whose second row has no integer id."""
    directory.mkdir(parents=True, exist_ok=True)
    lines = ["id,name,amount"] + [f"{i},name-{i},{i * 0.5}" for i in range(rows)]
    (directory / "a_good.csv").write_text("\n".join(lines) + "\n")
    (directory / "b_bad.csv").write_text("id,name,amount\n1,x,1.0\nnot-an-id,y,2.0\n")


def pipeline_text(name: str = TOPIC) -> str:
    return (
        f"name: {name}\n"
        "source:\n"
        "  connector: csv\n"
        "  path: in/\n"
        "  columns: {id: int64, name: string, amount: float64}\n"
        "  poll_interval: 0.5\n"
        f"topic: {TOPIC}\n"
        f"batching: {{max_rows: {MAX_ROWS}}}\n"
        f"max_in_flight_bytes: {MAX_IN_FLIGHT_BYTES}\n"
        "errors: {tolerance: none}\n"
        "sink: {connector: parquet, path: out/}\n"
    )


def in_flight_bound(good_csv: Path) -> int:
    """The most rows one failure may publish twice: ``MAX_ROWS`` times the batches of the
    good file that fit in ``MAX_IN_FLIGHT_BYTES`` (plus one)."""
    with good_csv.open("rb") as file:
        head = b"".join(file.readline() for _ in range(MAX_ROWS + 1))
    options = pa_csv.ConvertOptions(column_types=COLUMNS)
    batch_bytes = pa_csv.read_csv(io.BytesIO(head), convert_options=options).nbytes
    return MAX_ROWS * (1 + MAX_IN_FLIGHT_BYTES // batch_bytes)


def topic_messages(cwd: Path, topic: str = TOPIC) -> int:
    """Messages on ``topic`` of the embedded broker under ``cwd`` (``omconnect topics list``)."""
    listed = omconnect("topics", "list", cwd=cwd, timeout=60)
    assert listed.returncode == 0, listed.stderr
    for line in listed.stdout.splitlines():
        fields = line.split()
        if fields and fields[0] == topic:
            return int(fields[-1])
    return 0


def sink_ids(directory: Path) -> pa.Array:
    """The ``id`` column of every complete Parquet file (hidden temporary files are skipped)."""
    if not directory.is_dir() or not any(directory.glob("*.parquet")):
        return pa.array([], pa.int64())
    return ds.dataset(directory, format="parquet").to_table(columns=["id"])["id"].combine_chunks()

"""The rows a run published, kept decoded for its own sink (``published_batches.py``).

The store is checked on its own (which offsets it answers for, what it lets go), and in a
pipeline whose converter cannot decode at all: the sink still writes every row, so it took
them from the source side; with the store off, the same run fails on the first decode.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from omconnect.runtime.converters.avro import AvroConverter
from omconnect.runtime.converters.base import DecodedGroup
from omconnect.runtime.worker import runner as runner_module
from omconnect.runtime.worker.published_batches import PublishedBatches
from omconnect.schemas import types as t
from omconnect.schemas.schema import Schema
from tests.worker.conftest import run_pipeline

SCHEMA = Schema("n", (t.Field("n", t.int64(), False),))


def group_of(*numbers: int) -> DecodedGroup:
    values = pa.record_batch([pa.array(numbers, pa.int64())], names=["n"])
    return DecodedGroup(pa.array(range(len(numbers)), pa.int64()), values, SCHEMA)


def offsets(*numbers: int) -> pa.Int64Array:
    return pa.array(numbers, pa.int64())


def numbers_of(groups: list[DecodedGroup] | None) -> list[tuple[list[int], list[int]]]:
    assert groups is not None, "the store held these offsets"
    return [(g.rows.to_pylist(), g.values.column(0).to_pylist()) for g in groups]


def test_a_read_spanning_published_batches_takes_a_group_from_each() -> None:
    published = PublishedBatches()
    published.put("t", 0, 10, group_of(100, 101, 102))
    published.put("t", 0, 13, group_of(103, 104))
    taken = published.take("t", 0, offsets(11, 12, 13))
    assert numbers_of(taken) == [([0, 1], [101, 102]), ([2], [103])]
    # The first batch was read to its end and let go; the second still holds offset 14.
    assert published.take("t", 0, offsets(10)) is None
    assert numbers_of(published.take("t", 0, offsets(14))) == [([0], [104])]


def test_offsets_it_does_not_hold_are_decoded() -> None:
    published = PublishedBatches()
    published.put("t", 0, 10, group_of(100, 101))
    published.put("t", 0, 20, group_of(200))
    assert published.take("t", 0, offsets(11, 12)) is None, "offset 12 was never put"
    assert published.take("t", 0, offsets(10, 20)) is None, "not consecutive"
    assert published.take("t", 1, offsets(10)) is None, "another partition"
    assert published.take("u", 0, offsets(10)) is None, "another topic"
    assert numbers_of(published.take("t", 0, offsets(10, 11))) == [([0, 1], [100, 101])]


def test_the_oldest_batches_are_let_go_past_the_bound() -> None:
    one = group_of(*range(1000)).values.nbytes
    published = PublishedBatches(max_bytes=2 * one)
    for first in (0, 1000, 2000):
        published.put("t", 0, first, group_of(*range(first, first + 1000)))
    assert published.take("t", 0, offsets(0)) is None
    assert numbers_of(published.take("t", 0, offsets(1000)))[0][1] == [1000]
    assert numbers_of(published.take("t", 0, offsets(2999)))[0][1] == [2999]


CSV_TO_PARQUET = """\
name: handoff
broker: embedded://{state}/broker
state: {state}
source:
  connector: csv
  path: {csv}
topic: numbers
sink:
  connector: parquet
  path: {out}
"""


def csv_to_parquet(tmp_path: Path, rows: int) -> str:
    csv = tmp_path / "numbers.csv"
    csv.write_text("n,label\n" + "".join(f"{i},row {i}\n" for i in range(rows)))
    return CSV_TO_PARQUET.format(state=tmp_path / "state", csv=csv, out=tmp_path / "out")


def no_decoding(*_args: object) -> None:
    raise AssertionError("the sink decoded bodies its own run published")


def test_the_sink_takes_the_rows_its_run_published_without_decoding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(AvroConverter, "decode", no_decoding)
    metrics = run_pipeline(tmp_path / "p.yaml", csv_to_parquet(tmp_path, 5000))
    assert metrics.rows_written == 5000
    table = pq.read_table(tmp_path / "out")
    assert sorted(table.column("n").to_pylist()) == list(range(5000))
    assert table.column("label").to_pylist()[:2] == ["row 0", "row 1"]


def test_without_the_store_the_sink_decodes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The test above would pass if the sink never decoded anything: this one shows it does
    when nothing was handed over."""
    monkeypatch.setattr(AvroConverter, "decode", no_decoding)
    monkeypatch.setattr(runner_module, "PublishedBatches", lambda: None)
    with pytest.raises(AssertionError, match="decoded bodies"):
        run_pipeline(tmp_path / "p.yaml", csv_to_parquet(tmp_path, 100))


def test_batches_the_consumer_has_moved_past_are_let_go() -> None:
    """A sink may read messages before the source hears the broker's acknowledgement: what is
    put after that is never taken, and goes at the next read past it, not only at the bound."""
    published = PublishedBatches()
    published.put("t", 0, 0, group_of(1, 2))
    published.put("t", 0, 2, group_of(3, 4))
    assert numbers_of(published.take("t", 0, offsets(2, 3))) == [([0, 1], [3, 4])]
    assert published.take("t", 0, offsets(0)) is None
    assert published.nbytes == 0

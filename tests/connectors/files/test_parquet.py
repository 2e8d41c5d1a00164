"""The parquet source and sink: the conformance kit, then parquet specifics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from omconnect.connectors.api import Position
from omconnect.connectors.files.parquet import dictionary_columns
from omconnect.runtime.testing import (
    MemoryOffsetReader,
    SinkDriver,
    SourceDriver,
    ids_of,
    sink_batches,
    standard_rows,
)
from omconnect.schemas.arrow import from_arrow_schema
from tests.support.file_conformance import FileSinkTests, FileSourceTests
from tests.support.file_formats import published_files


class TestParquetSource(FileSourceTests):
    connector = "parquet"


class TestParquetSink(FileSinkTests):
    connector = "parquet"


def test_resume_starts_at_the_row_group_holding_the_next_row(tmp_path: Path) -> None:
    pq.write_table(
        standard_rows(0, 1000).combine_chunks(), tmp_path / "a.parquet", row_group_size=100
    )
    offsets = MemoryOffsetReader()
    offsets.commit([Position({"file": str(tmp_path / "a.parquet")}, {"row": 555})])
    config = {"path": str(tmp_path / "a.parquet"), "batch_size": 64}
    batches = SourceDriver("parquet", config, offsets).read_to_end()
    assert ids_of(batches) == list(range(555, 1000))
    assert all(b.num_rows <= 64 for b in batches)


def test_sink_keeps_the_schema_name_and_key_in_the_file(tmp_path: Path) -> None:
    sent = sink_batches(standard_rows(0, 10), topic="t", partition=0, first_offset=0, batch_rows=10)
    sink = SinkDriver("parquet", {"path": str(tmp_path), "compression": "snappy"})
    sink.put_all(sent)
    sink.flush(sent)
    (path,) = published_files(tmp_path, "parquet")
    schema = from_arrow_schema(pq.read_schema(path), "ignored")
    assert schema.key_fields == ("id",) and schema.name == "conformance"
    assert pq.ParquetFile(path).metadata.row_group(0).column(0).compression == "SNAPPY"


def test_row_groups_have_the_configured_size(tmp_path: Path) -> None:
    sent = sink_batches(
        standard_rows(0, 1000), topic="t", partition=0, first_offset=0, batch_rows=30
    )
    sink = SinkDriver("parquet", {"path": str(tmp_path), "row_group_size": 250})
    sink.put_all(sent)
    sink.flush(sent)
    (path,) = published_files(tmp_path, "parquet")
    metadata = pq.ParquetFile(path).metadata
    assert [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)] == [250] * 4


def test_a_file_that_is_not_parquet_goes_to_the_dead_letter_topic_named(tmp_path: Path) -> None:
    name = str(tmp_path / "x.parquet")
    (tmp_path / "x.parquet").write_bytes(b"not parquet at all")
    source = SourceDriver("parquet", {"path": name})
    (done,) = source.read_to_end()
    (dead,) = source.errors.raw_reports
    assert (dead.payload, dead.where, dead.stage) == (b"", {"file": name}, "read")
    assert str(dead.error).startswith(f"{name}: cannot read the file: ")
    assert done.num_rows == 0
    assert done.marks[0].position.offset["dead_letter"] is True


ATTRS = pa.map_(pa.string(), pa.int64())


def test_dictionaries_are_kept_for_repeated_values_only(tmp_path: Path) -> None:
    """Mostly distinct flat columns are written plain; repeated ones and every leaf of a
    nested column keep a dictionary; the file reads back equal."""
    rows = 4000
    table = pa.table(
        {
            "id": pa.array(range(rows), pa.int64()),
            "status": pa.array([["new", "paid", "sent"][i % 3] for i in range(rows)]),
            "note": pa.array([f"note {i}" for i in range(rows)]),
            "tags": pa.array([[f"t{i % 4}", f"u{i}"] for i in range(rows)]),
            "point": pa.array([{"x": i % 5, "y": float(i)} for i in range(rows)]),
            "attrs": pa.array(
                [[("k", i % 7)] for i in range(rows)], pa.map_(pa.string(), pa.int64())
            ),
        }
    )
    sent = sink_batches(table, topic="t", partition=0, first_offset=0, batch_rows=500)
    sink = SinkDriver("parquet", {"path": str(tmp_path), "row_group_size": 1000})
    sink.put_all(sent)
    sink.flush(sent)
    (path,) = published_files(tmp_path, "parquet")
    metadata = pq.ParquetFile(path).metadata
    group = metadata.row_group(0)
    dictionary = {
        group.column(i).path_in_schema: any("DICTIONARY" in e for e in group.column(i).encodings)
        for i in range(group.num_columns)
    }
    assert dictionary == {
        "id": False,
        "status": True,
        "note": False,
        "tags.list.element": True,
        "point.x": True,
        "point.y": True,
        "attrs.key_value.key": True,
        "attrs.key_value.value": True,
    }
    assert pq.read_table(path).select(table.column_names).equals(table)


def test_dictionaries_of_a_large_row_group_are_judged_on_a_sample_like_the_whole() -> None:
    """A default row group (131,072 rows) is judged on its first 8,192 rows and 8,192 evenly
    spaced rows of the rest: a column with 40% of its values distinct keeps a dictionary and
    one with 75% distinct does not, as when every row is counted; so does a column whose
    values come in short runs (which evenly spaced rows alone would see as all distinct)."""
    rows = 131_072
    shuffle = np.random.default_rng(7).permutation(rows)
    table = pa.table(
        {
            "id": pa.array(range(rows), pa.int64()),
            "quantity": pa.array(shuffle % 10_000),
            "forty": pa.array(shuffle % int(rows * 0.4)),
            "seventy_five": pa.array(shuffle % int(rows * 0.75)),
            "runs": pa.array(np.arange(rows) // 4),  # 25% distinct, in runs of 4
        }
    )
    assert dictionary_columns(table) == ["quantity", "forty", "runs"]

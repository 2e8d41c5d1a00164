"""The avro source and sink: the conformance kit, then avro specifics."""

from __future__ import annotations

from pathlib import Path

import fastavro
import pyarrow as pa
import pytest

from omconnect.connectors.api import ConnectorError, Position
from omconnect.runtime.testing import (
    MemoryOffsetReader,
    SinkDriver,
    SourceDriver,
    ids_of,
    sink_batches,
    standard_rows,
)
from tests.support.file_conformance import FileSinkTests, FileSourceTests
from tests.support.file_formats import published_files, write_avro


class TestAvroSource(FileSourceTests):
    connector = "avro"


class TestAvroSink(FileSinkTests):
    connector = "avro"


def test_resume_skips_whole_blocks(tmp_path: Path) -> None:
    write_avro(tmp_path, standard_rows(0, 1000))
    (path,) = sorted(tmp_path.iterdir())
    with path.open("rb") as file:
        assert len(list(fastavro.block_reader(file))) > 3, "the test needs several blocks"
    offsets = MemoryOffsetReader()
    offsets.commit([Position({"file": str(path)}, {"row": 777})])
    batches = SourceDriver("avro", {"path": str(path)}, offsets).read_to_end()
    assert ids_of(batches) == list(range(777, 1000))


def test_sink_record_name_and_codec(tmp_path: Path) -> None:
    sent = sink_batches(standard_rows(0, 10), topic="t", partition=0, first_offset=0, batch_rows=10)
    sink = SinkDriver("avro", {"path": str(tmp_path), "compression": "null"})
    sink.put_all(sent)
    sink.flush(sent)
    (path,) = published_files(tmp_path, "avro")
    with path.open("rb") as file:
        reader = fastavro.reader(file)
        assert reader.codec == "null"
        assert reader.writer_schema["name"] == "conformance"  # type: ignore[index,call-overload]


@pytest.mark.parametrize("compression", ["deflate", "snappy", "null"])
def test_sink_files_are_read_by_fastavro_and_the_source(tmp_path: Path, compression: str) -> None:
    rows = standard_rows(0, 3000)
    sent = sink_batches(rows, topic="t", partition=0, first_offset=0, batch_rows=1500)
    sink = SinkDriver("avro", {"path": str(tmp_path), "compression": compression})
    sink.put_all(sent)
    sink.flush(sent)
    (path,) = published_files(tmp_path, "avro")
    with path.open("rb") as file:
        reader = fastavro.reader(file)
        assert reader.codec == compression
        assert list(reader) == rows.to_pylist()
    with path.open("rb") as file:
        assert len(list(fastavro.block_reader(file))) > 4, "a batch is cut into small blocks"
    (batch,) = SourceDriver("avro", {"path": str(path)}).read_to_end()
    assert batch.values.select(rows.column_names).to_pydict() == rows.to_pydict()


def test_maps_and_lists_are_written_as_avro_maps_and_arrays(tmp_path: Path) -> None:
    rows = pa.table(
        {
            "id": pa.array([1, 2, 3], pa.int64()),
            "tags": pa.array([[("a", 1), ("b", 2)], None, []], pa.map_(pa.string(), pa.int64())),
            "codes": pa.array([[(7, "x")], [], None], pa.map_(pa.int64(), pa.string())),
            "items": pa.array([[1, 2], None, []], pa.list_(pa.int32())),
        }
    )
    sent = sink_batches(rows, topic="t", partition=0, first_offset=0, batch_rows=10)
    sink = SinkDriver("avro", {"path": str(tmp_path)})
    sink.put_all(sent)
    sink.flush(sent)
    (path,) = published_files(tmp_path, "avro")
    with path.open("rb") as file:
        # A map whose keys are not strings is an array of key/value records in Avro.
        assert list(fastavro.reader(file)) == [
            {
                "id": 1,
                "tags": {"a": 1, "b": 2},
                "codes": [{"key": 7, "value": "x"}],
                "items": [1, 2],
            },
            {"id": 2, "tags": None, "codes": [], "items": None},
            {"id": 3, "tags": {}, "codes": None, "items": []},
        ]
    (batch,) = SourceDriver("avro", {"path": str(path)}).read_to_end()
    assert batch.values.select(rows.column_names).to_pydict() == rows.to_pydict()


def test_rows_the_schema_cannot_carry_fail_the_write_naming_the_row(tmp_path: Path) -> None:
    schema = pa.schema(
        [pa.field("id", pa.int64(), nullable=False), pa.field("n", pa.int32(), False)]
    )
    rows = pa.Table.from_arrays(
        [pa.array([1, 2, 3]), pa.array([7, None, 9], pa.int32())], schema=schema
    )
    sent = sink_batches(rows, topic="t", partition=0, first_offset=0, batch_rows=10)
    sink = SinkDriver("avro", {"path": str(tmp_path)})
    with pytest.raises(ConnectorError, match=r"cannot write rows: .*row 1: n: null") as raised:
        sink.put_all(sent)
    assert str(raised.value).startswith("t-0-00000000000000000000.avro: ")


def test_a_file_that_is_not_avro_goes_to_the_dead_letter_topic_named(tmp_path: Path) -> None:
    name = str(tmp_path / "x.avro")
    (tmp_path / "x.avro").write_bytes(b"not avro at all")
    source = SourceDriver("avro", {"path": name})
    (done,) = source.read_to_end()
    (dead,) = source.errors.raw_reports
    assert (dead.payload, dead.where) == (b"", {"file": name})
    assert str(dead.error).startswith(f"{name}: cannot read the file: ")
    assert done.num_rows == 0 and done.marks[0].position.offset["complete"] is True

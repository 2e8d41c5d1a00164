"""The avro source and sink: the conformance kit, then avro specifics."""

from __future__ import annotations

from pathlib import Path

import fastavro

from omconnect.connectors.api import Position
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


def test_a_file_that_is_not_avro_goes_to_the_dead_letter_topic_named(tmp_path: Path) -> None:
    name = str(tmp_path / "x.avro")
    (tmp_path / "x.avro").write_bytes(b"not avro at all")
    source = SourceDriver("avro", {"path": name})
    (done,) = source.read_to_end()
    (dead,) = source.errors.raw_reports
    assert (dead.payload, dead.where) == (b"", {"file": name})
    assert str(dead.error).startswith(f"{name}: cannot read the file: ")
    assert done.num_rows == 0 and done.marks[0].position.offset["complete"] is True

"""The csv source and sink: the conformance kit, then csv specifics."""

from __future__ import annotations

import datetime
import decimal
import re
from pathlib import Path

import pyarrow as pa
import pytest

from omconnect.connectors.api import ConfigError, ConnectorError, Position
from omconnect.runtime.testing import (
    MemoryOffsetReader,
    SinkDriver,
    SourceDriver,
    ids_of,
    sink_batches,
    standard_rows,
)
from tests.support.file_conformance import FileSinkTests, FileSourceTests
from tests.support.file_formats import write_csv


class TestCsvSource(FileSourceTests):
    connector = "csv"


class TestCsvSink(FileSinkTests):
    connector = "csv"


def test_explicit_columns_read_decimals_timestamps_and_null_strings(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text(
        'id,price,at,label\n1,12.30,2024-01-02 03:04:05.000006,hello\n2,,,\n3,0.05,,""\n'
    )
    config = {
        "path": str(tmp_path / "a.csv"),
        "schema": {"price": "decimal(12,2)", "at": "timestamp", "id": "int32"},
    }
    (batch,) = SourceDriver("csv", config).read_to_end()
    values = batch.values.to_pydict()
    assert values["id"] == [1, 2, 3]
    assert values["price"] == [decimal.Decimal("12.30"), None, decimal.Decimal("0.05")]
    assert values["at"] == [datetime.datetime(2024, 1, 2, 3, 4, 5, 6), None, None]
    assert values["label"] == ["hello", None, ""]
    assert str(batch.schema.type_of("price")) == "decimal(12,2)"


def test_round_trip_through_the_sink_keeps_types_and_nulls(tmp_path: Path) -> None:
    rows = pa.table(
        {
            "id": pa.array([1, 2, 3], pa.int64()),
            "price": pa.array(
                [decimal.Decimal("1.25"), None, decimal.Decimal("-7.00")], pa.decimal128(12, 2)
            ),
            "at": pa.array(
                [
                    datetime.datetime(2024, 5, 6, 7, 8, 9, 123456),
                    None,
                    datetime.datetime(1999, 1, 1),
                ],
                pa.timestamp("us"),
            ),
            "label": pa.array(["a,b", None, ""], pa.string()),
        }
    )
    out = tmp_path / "out"
    sent = sink_batches(rows, topic="t", partition=0, first_offset=0, batch_rows=10)
    sink = SinkDriver("csv", {"path": str(out)})
    sink.put_all(sent)
    sink.flush(sent)
    columns = {"id": "int64", "price": "decimal(12,2)", "at": "timestamp", "label": "string"}
    (batch,) = SourceDriver("csv", {"path": str(out), "columns": columns}).read_to_end()
    assert batch.values.to_pydict() == rows.to_pydict()


def test_delimiter_and_no_header(tmp_path: Path) -> None:
    (tmp_path / "a.tsv").write_text("1\tx\n2\ty\n")
    config = {
        "path": str(tmp_path / "a.tsv"),
        "delimiter": "\t",
        "header": False,
        "columns": {"n": "int64", "s": "string"},
    }
    (batch,) = SourceDriver("csv", config).read_to_end()
    assert batch.values.to_pydict() == {"n": [1, 2], "s": ["x", "y"]}


def test_recursive_glob_and_partition_names_as_configured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data" / "2024" / "01").mkdir(parents=True)
    write_csv(tmp_path / "data" / "2024" / "01", standard_rows(0, 5))
    write_csv(tmp_path / "data", standard_rows(5, 5))
    (tmp_path / "data" / ".hidden.csv").write_text("id\n99\n")
    batches = SourceDriver("csv", {"path": "data/**/*.csv"}).read_to_end()
    files = [b.marks[0].position.partition["file"] for b in batches]
    assert files == ["data/2024/01/part-00000.csv", "data/part-00001.csv"]
    assert sorted(ids_of(batches)) == list(range(10))


def test_directory_path_reads_its_files(tmp_path: Path) -> None:
    write_csv(tmp_path, standard_rows(0, 3))
    write_csv(tmp_path, standard_rows(3, 3))
    batches = SourceDriver("csv", {"path": str(tmp_path)}).read_to_end()
    assert ids_of(batches) == list(range(6))


def test_new_files_are_read_by_the_next_run_only(tmp_path: Path) -> None:
    offsets = MemoryOffsetReader()
    config = {"path": f"{tmp_path}/*.csv"}
    write_csv(tmp_path, standard_rows(0, 10))
    first = SourceDriver("csv", config, offsets)
    for batch in first.read_to_end():
        first.commit(batch.positions)
    write_csv(tmp_path, standard_rows(10, 10))
    assert ids_of(SourceDriver("csv", config, offsets).read_to_end()) == list(range(10, 20))


def test_continuous_mode_picks_up_new_files_after_a_rescan(tmp_path: Path) -> None:
    config = {"path": f"{tmp_path}/*.csv", "poll_interval": 0.05}
    source = SourceDriver("csv", config, once=False)
    assert source.poll() is None
    write_csv(tmp_path, standard_rows(0, 4))
    polled = None
    for _ in range(20):
        polled = source.poll()
        if polled:
            break
    assert polled is not None and ids_of(polled) == [0, 1, 2, 3]


def test_an_offset_of_an_earlier_version_resumes_after_its_row(tmp_path: Path) -> None:
    write_csv(tmp_path, standard_rows(0, 100))
    name = str(tmp_path / "part-00000.csv")
    offsets = MemoryOffsetReader()
    offsets.commit([Position({"file": name}, {"row": 37})])
    batches = SourceDriver("csv", {"path": name, "batch_size": 10}, offsets).read_to_end()
    assert ids_of(batches) == list(range(37, 100))
    first = batches[0].marks[0].position.offset
    assert (first["row"], first["byte"], first["skip"]) == (47, 0, 47)
    last = batches[-1].marks[-1].position.offset
    assert (last["row"], last["skip"], last["line"]) == (100, 0, 102)
    assert last["byte"] == (tmp_path / "part-00000.csv").stat().st_size


def test_parse_error_names_the_file_and_line(tmp_path: Path) -> None:
    lines = ["id,n"] + [f"{i},{i}" for i in range(50)] + ["50,not-a-number"]
    (tmp_path / "bad.csv").write_text("\n".join(lines) + "\n")
    config = {"path": str(tmp_path / "bad.csv"), "columns": {"n": "int64"}}
    source = SourceDriver("csv", config)
    assert ids_of(source.read_to_end()) == list(range(50))
    (bad,) = source.errors.raw_reports
    assert isinstance(bad.error, ConnectorError)
    assert re.search(r"bad\.csv: line 52: .*not-a-number", str(bad.error))


def test_a_path_in_a_missing_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no files match") as raised:
        SourceDriver("csv", {"path": f"{tmp_path}/nope/*.csv"})
    assert raised.value.key == "path"
    assert SourceDriver("csv", {"path": f"{tmp_path}/*.csv"}).read_to_end() == []


def test_unknown_column_type_is_refused() -> None:
    from pydantic import ValidationError

    from omconnect.connectors.files.csv import CsvSourceSpec

    with pytest.raises(ValidationError, match=r"unknown type 'int65' at position 1"):
        CsvSourceSpec.model_validate({"path": "x.csv", "columns": {"a": "int65"}})


@pytest.mark.parametrize("text", ["array<int64>", "json", "uuid", "struct<a:int64>"])
def test_types_the_csv_reader_cannot_parse_are_refused_before_running(
    tmp_path: Path, text: str
) -> None:
    with pytest.raises(ConfigError, match="cannot read a column as") as raised:
        SourceDriver("csv", {"path": f"{tmp_path}/*.csv", "columns": {"c": text}})
    assert raised.value.key == "columns.c"


def test_sql_spellings_work_in_columns(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("id,name\n007,x\n")
    config = {"path": f"{tmp_path}/a.csv", "columns": {"id": "varchar", "name": "TEXT"}}
    batches = SourceDriver("csv", config).read_to_end()
    assert batches[0].values.column("id").to_pylist() == ["007"]

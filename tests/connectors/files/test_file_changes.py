"""Files that change between reads: appended rows, half-written lines, replaced, rewritten and
truncated files, unreadable ones, and offsets of earlier versions."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import fastavro
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from omconnect.connectors.api import ConnectorError, Position, RecordBatch
from omconnect.connectors.files._read_range import ReadRange
from omconnect.connectors.files.csv import CsvSourceTask
from omconnect.runtime.testing import MemoryOffsetReader, SourceDriver, ids_of, standard_rows
from tests.support.file_formats import write_avro


def run(
    connector: str, config: Mapping[str, Any], offsets: MemoryOffsetReader
) -> tuple[list[RecordBatch], SourceDriver]:
    """One ``run --once``: read what is there, then commit every position, as after the
    broker acknowledged everything."""
    source = SourceDriver(connector, config, offsets)
    batches = source.read_to_end()
    for batch in batches:
        source.commit(batch.positions)
    source.stop()
    return batches, source


def ids(batches: list[RecordBatch]) -> list[int]:
    """The ids of the rows (batches of no rows only move a position)."""
    return ids_of([b for b in batches if b.num_rows])


def rows_of(batches: list[RecordBatch]) -> list[dict[str, Any]]:
    return [row for b in batches for row in b.values.to_pylist()]


def age(path: Path, seconds: float = 3600) -> None:
    """Make ``path`` look untouched for ``seconds``."""
    past = time.time() - seconds
    os.utime(path, (past, past))


def csv_lines(first: int, count: int) -> str:
    return "".join(f"{i},name-{i}\n" for i in range(first, first + count))


def jsonl_lines(first: int, count: int) -> str:
    return "".join(f'{{"id": {i}, "name": "name-{i}"}}\n' for i in range(first, first + count))


FORMATS = {
    "csv": ("id,name\n", csv_lines),
    "jsonl": ("", jsonl_lines),
}


@pytest.mark.parametrize("connector", sorted(FORMATS))
def test_rows_appended_are_delivered_by_the_next_run_exactly_once(
    tmp_path: Path, connector: str
) -> None:
    header, lines = FORMATS[connector]
    path = tmp_path / f"a.{connector}"
    path.write_text(header + lines(0, 10))
    offsets = MemoryOffsetReader()
    config = {"path": str(path), "batch_size": 4}
    first, _ = run(connector, config, offsets)
    assert ids(first) == list(range(10))
    with path.open("a") as file:
        file.write(lines(10, 5))
    second, _ = run(connector, config, offsets)
    assert ids(second) == list(range(10, 15))
    assert rows_of(second)[0] == {"id": 10, "name": "name-10"}
    third, _ = run(connector, config, offsets)
    assert ids(third) == []


def test_a_grown_file_is_read_on_from_where_it_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "a.csv"
    path.write_text("id,name\n" + csv_lines(0, 1000))
    read_from: list[ReadRange] = []
    read_blocks = CsvSourceTask.read_blocks

    def spy(self: CsvSourceTask, where_path: Path, where: ReadRange) -> Any:
        read_from.append(where)
        return read_blocks(self, where_path, where)

    monkeypatch.setattr(CsvSourceTask, "read_blocks", spy)
    offsets = MemoryOffsetReader()
    run("csv", {"path": str(path)}, offsets)
    size = path.stat().st_size
    with path.open("a") as file:
        file.write(csv_lines(1000, 3))
    batches, _ = run("csv", {"path": str(path)}, offsets)
    assert ids(batches) == [1000, 1001, 1002]
    resumed = read_from[-1]
    assert (resumed.start, resumed.skip_rows, resumed.first_line) == (size, 0, 1002)
    assert resumed.types["id"] == pa.int64()
    last = batches[-1].marks[-1].position.offset
    assert (last["row"], last["byte"], last["line"]) == (1003, path.stat().st_size, 1005)


def test_the_types_of_the_first_rows_hold_for_appended_rows(tmp_path: Path) -> None:
    """Appended rows that alone would read otherwise (whole numbers in a float column, a
    zip code) keep the types of the file's first rows, also in a run that did not read them."""
    path = tmp_path / "a.csv"
    path.write_text("id,amount,zip\n1,1.5,08123\n")
    offsets = MemoryOffsetReader()
    run("csv", {"path": str(path)}, offsets)
    with path.open("a") as file:
        file.write("2,2,12345\n")
    batches, _ = run("csv", {"path": str(path)}, offsets)
    assert rows_of(batches) == [{"id": 2, "amount": 2.0, "zip": "12345"}]
    assert str(batches[0].schema.type_of("amount")) == "float64"


def test_continuous_mode_delivers_rows_appended_while_running(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text("id,name\n" + csv_lines(0, 5))
    source = SourceDriver("csv", {"path": str(path), "poll_interval": 0.05}, once=False)
    seen = ids(poll_until(source, 5))
    with path.open("a") as file:
        file.write(csv_lines(5, 100))
    seen += ids(poll_until(source, 100))
    assert seen == list(range(105))
    source.stop()


def poll_until(source: SourceDriver, rows: int, seconds: float = 10) -> list[RecordBatch]:
    batches: list[RecordBatch] = []
    deadline = time.monotonic() + seconds
    while sum(b.num_rows for b in batches) < rows and time.monotonic() < deadline:
        batches.extend(source.poll() or [])
    return batches


@pytest.mark.parametrize("connector", sorted(FORMATS))
def test_a_last_line_without_its_line_break_waits_for_it(tmp_path: Path, connector: str) -> None:
    header, lines = FORMATS[connector]
    path = tmp_path / f"a.{connector}"
    whole = lines(0, 3)
    cut = len(whole) - 4
    path.write_text(header + whole[:cut])
    offsets = MemoryOffsetReader()
    first, _ = run(connector, {"path": str(path)}, offsets)
    assert ids(first) == [0, 1]
    with path.open("a") as file:
        file.write(whole[cut:])
    second, _ = run(connector, {"path": str(path)}, offsets)
    assert rows_of(second) == [{"id": 2, "name": "name-2"}]


def test_a_last_line_without_a_line_break_is_read_once_the_file_settled(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text("id,name\n1,a\n2,b")
    offsets = MemoryOffsetReader()
    config = {"path": str(path)}
    assert ids(run("csv", config, offsets)[0]) == [1]
    age(path, 61)
    assert rows_of(run("csv", config, offsets)[0]) == [{"id": 2, "name": "b"}]
    assert run("csv", config, offsets)[0] == []
    # Rows appended after a line break are read as usual.
    with path.open("a") as file:
        file.write("\n3,c\n")
    assert rows_of(run("csv", config, offsets)[0]) == [{"id": 3, "name": "c"}]


def test_a_last_line_read_without_its_line_break_that_goes_on_is_delivered_again_whole(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A writer that stopped in the middle of a line for over a minute: the cut row was
    delivered; the whole one follows rather than a row made of the line's rest."""
    path = tmp_path / "a.jsonl"
    path.write_text('{"id": 1, "name": "a"}\n{"id": 2, "name": "b')
    age(path, 61)
    offsets = MemoryOffsetReader()
    first, source = run("jsonl", {"path": str(path)}, offsets)
    assert ids(first) == [1] and len(source.errors.raw_reports) == 1  # the cut line is bad JSON
    with path.open("a") as file:
        file.write('eta"}\n{"id": 3, "name": "c"}\n')
    with caplog.at_level(logging.WARNING):
        second, source = run("jsonl", {"path": str(path)}, offsets)
    assert rows_of(second) == [{"id": 2, "name": "beta"}, {"id": 3, "name": "c"}]
    assert source.errors.raw_reports == []
    assert any("went on since" in r.getMessage() for r in caplog.records)


def test_a_quoted_value_being_written_across_lines_waits_for_its_record(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text('id,text\n1,"one\nline"\n2,"two\n')
    offsets = MemoryOffsetReader()
    assert rows_of(run("csv", {"path": str(path)}, offsets)[0]) == [{"id": 1, "text": "one\nline"}]
    with path.open("a") as file:
        file.write('lines"\n')
    assert rows_of(run("csv", {"path": str(path)}, offsets)[0]) == [{"id": 2, "text": "two\nlines"}]


def test_a_file_without_rows_is_read_when_rows_arrive(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text("")
    offsets = MemoryOffsetReader()
    batches, source = run("csv", {"path": str(path)}, offsets)
    assert batches == [] and source.errors.raw_reports == []
    path.write_text("id\n1\n")
    assert ids(run("csv", {"path": str(path)}, offsets)[0]) == [1]


@pytest.mark.parametrize(
    ("new_content", "what"),
    [
        ("id,name\n" + csv_lines(100, 3), "shorter"),
        ("id,name\n" + csv_lines(100, 30), "first bytes differ"),
    ],
    ids=["truncated", "replaced"],
)
def test_a_changed_file_is_read_again_with_a_warning_by_default(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, new_content: str, what: str
) -> None:
    path = tmp_path / "a.csv"
    path.write_text("id,name\n" + csv_lines(0, 10))
    offsets = MemoryOffsetReader()
    run("csv", {"path": str(path)}, offsets)
    path.write_text(new_content)
    with caplog.at_level(logging.WARNING):
        batches, _ = run("csv", {"path": str(path)}, offsets)
    assert ids(batches) == [int(line.split(",")[0]) for line in new_content.splitlines()[1:]]
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert str(path) in warning and what in warning and "on_file_change: reread" in warning


def test_a_rewrite_keeping_the_rows_read_counts_as_grown(tmp_path: Path) -> None:
    """A writer that rewrites the whole file (a new file renamed over it) with the same rows
    and more: only the new rows are delivered."""
    path = tmp_path / "a.csv"
    path.write_text("id,name\n" + csv_lines(0, 10))
    offsets = MemoryOffsetReader()
    run("csv", {"path": str(path)}, offsets)
    staged = tmp_path / ".a.csv.tmp"
    staged.write_text("id,name\n" + csv_lines(0, 12))
    staged.replace(path)
    assert ids(run("csv", {"path": str(path)}, offsets)[0]) == [10, 11]


def test_a_rewrite_of_the_rows_before_where_reading_stopped_is_a_change(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    head = "id,name\n" + csv_lines(0, 200)
    path.write_text(head + csv_lines(200, 10))
    offsets = MemoryOffsetReader()
    run("csv", {"path": str(path)}, offsets)
    path.write_text(head + csv_lines(300, 10) + csv_lines(310, 5))
    assert ids(run("csv", {"path": str(path)}, offsets)[0]) == [
        *range(200),
        *range(300, 315),
    ]


def test_on_file_change_fail_stops_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text("id,name\n" + csv_lines(0, 10))
    offsets = MemoryOffsetReader()
    config = {"path": str(path), "on_file_change": "fail"}
    run("csv", config, offsets)
    path.write_text("id,name\n" + csv_lines(50, 2))
    with pytest.raises(ConnectorError, match=rf"{path} changed since it was read: .*shorter"):
        run("csv", config, offsets)


def test_on_file_change_skip_leaves_the_new_content_and_reads_what_is_appended(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "a.csv"
    path.write_text("id,name\n" + csv_lines(0, 10))
    offsets = MemoryOffsetReader()
    config = {"path": str(path), "on_file_change": "skip"}
    run("csv", config, offsets)
    path.write_text("id,name\n" + csv_lines(50, 20))
    with caplog.at_level(logging.WARNING):
        skipped, _ = run("csv", config, offsets)
    assert ids(skipped) == []
    assert any("on_file_change: skip" in r.getMessage() for r in caplog.records)
    with path.open("a") as file:
        file.write(csv_lines(70, 2))
    assert ids(run("csv", config, offsets)[0]) == [70, 71]
    assert run("csv", config, offsets)[0] == []


def write_parquet(path: Path, first: int, count: int) -> None:
    pq.write_table(standard_rows(first, count).combine_chunks(), path, row_group_size=50)


def test_a_parquet_file_is_read_once_and_again_only_when_replaced(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "a.parquet"
    write_parquet(path, 0, 100)
    offsets = MemoryOffsetReader()
    assert ids(run("parquet", {"path": str(path)}, offsets)[0]) == list(range(100))
    os.utime(path)  # touched, not changed
    assert run("parquet", {"path": str(path)}, offsets)[0] == []
    write_parquet(path, 500, 10)
    with caplog.at_level(logging.WARNING):
        again, _ = run("parquet", {"path": str(path)}, offsets)
    assert ids(again) == list(range(500, 510))
    assert any(str(path) in r.getMessage() for r in caplog.records)
    config = {"path": str(path), "on_file_change": "skip"}
    write_parquet(path, 600, 10)
    assert [b.num_rows for b in run("parquet", config, offsets)[0]] == [0]
    assert run("parquet", config, offsets)[0] == []


def test_a_parquet_file_still_being_written_is_waited_for(tmp_path: Path) -> None:
    good = tmp_path / "staged.parquet"
    write_parquet(good, 0, 100)
    data = good.read_bytes()
    good.unlink()
    path = tmp_path / "a.parquet"
    path.write_bytes(data[: len(data) // 2])
    offsets = MemoryOffsetReader()
    batches, source = run("parquet", {"path": str(path)}, offsets)
    assert batches == [] and source.errors.raw_reports == []
    path.write_bytes(data)
    assert ids(run("parquet", {"path": str(path)}, offsets)[0]) == list(range(100))


def test_an_unreadable_file_is_dead_lettered_whole_and_the_others_flow(tmp_path: Path) -> None:
    write_parquet(tmp_path / "a.parquet", 0, 100)
    bad = tmp_path / "b.parquet"
    bad.write_bytes(b"PAR1 cut short")
    age(bad)
    write_parquet(tmp_path / "c.parquet", 100, 100)
    offsets = MemoryOffsetReader()
    config = {"path": f"{tmp_path}/*.parquet", "on_file_change": "fail"}
    batches, source = run("parquet", config, offsets)
    assert ids(batches) == list(range(200))
    (dead,) = source.errors.raw_reports
    assert (dead.payload, dead.where, dead.stage) == (b"", {"file": str(bad)}, "read")
    assert str(bad) in str(dead.error)
    # Committed as done: not tried again...
    again, source = run("parquet", config, offsets)
    assert again == [] and source.errors.raw_reports == []
    # ...until it changes (read again whatever on_file_change says).
    write_parquet(bad, 200, 10)
    assert ids(run("parquet", config, offsets)[0]) == list(range(200, 210))


def test_a_file_failing_half_way_is_dead_lettered_from_there(tmp_path: Path) -> None:
    write_avro(tmp_path, standard_rows(0, 1000))
    (path,) = sorted(tmp_path.iterdir())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])
    offsets = MemoryOffsetReader()
    config = {"path": str(path), "batch_size": 100}
    waited, source = run("avro", config, offsets)
    delivered = ids(waited)
    assert 0 < len(delivered) < 1000 and source.errors.raw_reports == []
    # Still being written: once complete it is read on, every row once.
    path.write_bytes(data)
    delivered += ids(run("avro", config, offsets)[0])
    assert delivered == list(range(1000))
    # Cut short for good (not modified for a while): the rest goes to the dead letter topic.
    other = tmp_path / "z.avro"
    other.write_bytes(data[: len(data) * 2 // 3])
    age(other)
    batches, source = run("avro", {**config, "path": str(other)}, offsets)
    (dead,) = source.errors.raw_reports
    assert dead.where == {"file": str(other), "row": len(ids(batches))}
    assert batches[-1].marks[-1].position.offset["dead_letter"] is True


def test_under_tolerance_none_the_read_stops_at_the_unreadable_file(tmp_path: Path) -> None:
    write_parquet(tmp_path / "a.parquet", 0, 100)
    (tmp_path / "b.parquet").write_bytes(b"not parquet")
    source = SourceDriver("parquet", {"path": f"{tmp_path}/*.parquet"})
    source.context.errors = _Refusing()
    delivered: list[RecordBatch] = []
    with pytest.raises(ConnectorError, match=r"b\.parquet: cannot read the file"):
        while (polled := source.poll()) is not None:
            delivered.extend(polled)
    assert ids(delivered) == list(range(100))


class _Refusing:
    """The runtime's reporter under ``errors.tolerance: none``: every report fails."""

    def report(self, *args: Any, **kwargs: Any) -> None:
        raise AssertionError("no rows are reported here")

    def report_raw(self, payloads: Any, error: BaseException, *args: Any, **kwargs: Any) -> None:
        raise ConnectorError(f"read failed and errors.tolerance is none: {error}")


def test_offsets_of_earlier_versions_are_honoured(tmp_path: Path) -> None:
    csv = tmp_path / "a.csv"
    csv.write_text("id,name\n" + csv_lines(0, 12))
    parquet = tmp_path / "a.parquet"
    write_parquet(parquet, 0, 100)
    offsets = MemoryOffsetReader()
    offsets.commit(
        [
            Position({"file": str(csv)}, {"row": 10, "complete": True}),
            Position({"file": str(parquet)}, {"row": 100, "complete": True}),
        ]
    )
    # The csv file was complete at row 10: the two rows appended since are delivered.
    assert ids(run("csv", {"path": str(csv)}, offsets)[0]) == [10, 11]
    upgraded, _ = run("parquet", {"path": str(parquet)}, offsets)
    assert [b.num_rows for b in upgraded] == [0]
    offset = offsets.get({"file": str(parquet)})
    assert offset is not None and offset["complete"] is True and offset["size"] > 0
    assert run("parquet", {"path": str(parquet)}, offsets)[0] == []


def test_an_unusable_offset_is_refused_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text("id\n1\n")
    offsets = MemoryOffsetReader()
    offsets.commit([Position({"file": str(path)}, {"row": -5})])
    with pytest.raises(ConnectorError, match=rf"{path}: the committed offset .* unusable: row"):
        SourceDriver("csv", {"path": str(path)}, offsets)


def test_avro_rows_appended_by_a_writer_count_as_a_replaced_file(tmp_path: Path) -> None:
    """Avro files are taken as immutable once complete: a changed one is read again."""
    path = tmp_path / "a.avro"
    schema = fastavro.parse_schema(
        {"type": "record", "name": "r", "fields": [{"name": "id", "type": "long"}]}
    )
    with path.open("wb") as file:
        fastavro.writer(file, schema, [{"id": i} for i in range(3)])
    offsets = MemoryOffsetReader()
    assert ids(run("avro", {"path": str(path)}, offsets)[0]) == [0, 1, 2]
    with path.open("a+b") as file:
        fastavro.writer(file, schema, [{"id": 3}])
    assert ids(run("avro", {"path": str(path)}, offsets)[0]) == [0, 1, 2, 3]


@pytest.mark.parametrize("header", [True, False])
def test_a_bad_line_appended_is_reported_with_its_line_in_the_file(
    tmp_path: Path, header: bool
) -> None:
    path = tmp_path / "a.csv"
    path.write_text(("id,name\n" if header else "") + "1,a\n2,b\n")
    offsets = MemoryOffsetReader()
    config = {"path": str(path), "header": header, "columns": {"id": "int64", "name": "string"}}
    run("csv", config, offsets)
    with path.open("a") as file:
        file.write("3,c\nx,d\n4,e\n")
    batches, source = run("csv", config, offsets)
    assert ids(batches) == [3, 4]
    (bad,) = source.errors.raw_reports
    line = 5 if header else 4
    assert bad.where == {"file": str(path), "line": line} and bad.payload == b"x,d"


def test_json_fields_missing_from_appended_lines_are_null(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_text('{"id": 1, "note": null, "name": "a"}\n')
    offsets = MemoryOffsetReader()
    run("jsonl", {"path": str(path)}, offsets)
    with path.open("a") as file:
        file.write('{"name": "b", "id": 2}\n{"id": 3, "note": "x", "name": "c"}\n')
    batches, source = run("jsonl", {"path": str(path)}, offsets)
    assert rows_of(batches) == [
        {"id": 2, "note": None, "name": "b"},
        {"id": 3, "note": "x", "name": "c"},
    ]
    assert source.errors.raw_reports == []

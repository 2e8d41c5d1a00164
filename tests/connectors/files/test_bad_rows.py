"""Bad source rows in csv and jsonl files: each is reported (file, line, raw text, reason) to
the error reporter, the dead letter topic of ``errors.tolerance: all``, and its neighbours flow
on; a position ``row`` counts good rows, so a resumed read neither repeats nor loses any."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from omconnect.connectors.api import ConnectorError
from omconnect.runtime.testing import MemoryOffsetReader, SourceDriver, ids_of

# Enough rows for several read blocks (a block is at least 64 KiB).
ROWS = 30_000


def write_lines(path: Path, lines: list[str]) -> None:
    path.write_bytes(("\n".join(lines) + "\n").encode())


def csv_lines(bad: dict[int, str]) -> list[str]:
    """A header and ROWS rows ``id,name,amount``; row ``i`` replaced by ``bad[i]`` (the row
    of id ``i`` is then on line ``i + 2``)."""
    rows = [bad.get(i, f"{i},name-{i},{i}.25") for i in range(ROWS)]
    return ["id,name,amount", *rows]


def reports(source: SourceDriver) -> list[tuple[int, bytes, str]]:
    return [
        (r.where["line"], r.payload, str(r.error))
        for r in source.errors.raw_reports
        if r.stage == "read"
    ]


@pytest.mark.parametrize("bad_row", ["7,too-few", "7,too,many,fields", '7,"x",1,2'])
def test_a_ragged_csv_row_is_reported_and_its_neighbours_flow_on(
    tmp_path: Path, bad_row: str
) -> None:
    path = tmp_path / "orders.csv"
    write_lines(path, csv_lines({7: bad_row, 20_001: bad_row.replace("7", "20001", 1)}))
    source = SourceDriver("csv", {"path": str(path), "batch_size": 1000})
    batches = source.read_to_end()
    assert ids_of(batches) == [i for i in range(ROWS) if i not in (7, 20_001)]
    found = reports(source)
    assert [(line, text) for line, text, _ in found] == [
        (9, bad_row.encode()),
        (20_003, bad_row.replace("7", "20001", 1).encode()),
    ]
    assert all(f"{path.as_posix()}: line {line}: " in reason for line, _, reason in found)
    assert "Expected 3 columns" in found[0][2]
    assert {r.where["file"] for r in source.errors.raw_reports} == {path.as_posix()}
    assert str(batches[0].schema.type_of("amount")) == "float64"


def test_a_value_of_the_wrong_type_under_columns_is_a_bad_row(tmp_path: Path) -> None:
    path = tmp_path / "orders.csv"
    write_lines(path, csv_lines({3: "3,x,abc", 29_998: "29998,y,1.2.3"}))
    config = {"path": str(path), "batch_size": 1000, "columns": {"amount": "decimal(12,2)"}}
    source = SourceDriver("csv", config)
    batches = source.read_to_end()
    assert ids_of(batches) == [i for i in range(ROWS) if i not in (3, 29_998)]
    assert [(line, text) for line, text, _ in reports(source)] == [
        (5, b"3,x,abc"),
        (30_000, b"29998,y,1.2.3"),
    ]
    assert "'abc'" in reports(source)[0][2]


def test_a_later_value_that_does_not_fit_the_inferred_type_is_a_bad_row(tmp_path: Path) -> None:
    path = tmp_path / "orders.csv"
    write_lines(path, csv_lines({25_000: "25000,z,not-a-number"}))
    source = SourceDriver("csv", {"path": str(path), "batch_size": 1000})
    batches = source.read_to_end()
    assert ids_of(batches) == [i for i in range(ROWS) if i != 25_000]
    assert [line for line, _, _ in reports(source)] == [25_002]
    assert {str(b.schema.type_of("amount")) for b in batches} == {"float64"}


def test_every_other_row_bad_in_a_small_file(tmp_path: Path) -> None:
    lines = ["id,n"] + [f"{i},{i}" if i % 2 == 0 else f"{i},x{i}" for i in range(200)]
    write_lines(tmp_path / "half.csv", lines)
    config = {"path": str(tmp_path / "half.csv"), "columns": {"n": "int64"}}
    source = SourceDriver("csv", config)
    assert ids_of(source.read_to_end()) == list(range(0, 200, 2))
    assert [line for line, _, _ in reports(source)] == [i + 2 for i in range(1, 200, 2)]


def test_resume_after_a_bad_row_reports_it_once_and_loses_no_row(tmp_path: Path) -> None:
    path = tmp_path / "orders.csv"
    write_lines(path, csv_lines({100: "100,ragged", 15_000: "15000,ragged"}))
    config = {"path": str(path), "batch_size": 1000}
    offsets = MemoryOffsetReader()
    first = SourceDriver("csv", config, offsets)
    delivered: list[int] = []
    # The first run delivers 10 batches and stops; the second reads on from its position.
    for _ in range(10):
        polled = first.poll()
        assert polled
        delivered += ids_of(polled)
        first.commit([m.position for b in polled for m in b.marks])
    assert [line for line, _, _ in reports(first)] == [102]
    second = SourceDriver("csv", config, offsets)
    delivered += ids_of(second.read_to_end())
    assert delivered == [i for i in range(ROWS) if i not in (100, 15_000)]
    assert [line for line, _, _ in reports(second)] == [15_002]


def test_invalid_jsonl_lines_are_reported_and_their_neighbours_flow_on(tmp_path: Path) -> None:
    lines = [json.dumps({"id": i, "name": f"n{i}"}) for i in range(ROWS)]
    lines[5] = '{"id": 5, "name": '
    lines[12_345] = "not json at all"
    lines[20_000] = '{"id": "twenty thousand", "name": "x"}'
    lines[29_999] = "[1, 2]"
    path = tmp_path / "events.jsonl"
    write_lines(path, lines)
    source = SourceDriver("jsonl", {"path": str(path), "batch_size": 1000})
    batches = source.read_to_end()
    assert ids_of(batches) == [i for i in range(ROWS) if i not in (5, 12_345, 20_000, 29_999)]
    found = reports(source)
    assert [(line, text) for line, text, _ in found] == [
        (6, b'{"id": 5, "name": '),
        (12_346, b"not json at all"),
        (20_001, b'{"id": "twenty thousand", "name": "x"}'),
        (30_000, b"[1, 2]"),
    ]
    assert all(isinstance(r.error, ConnectorError) for r in source.errors.raw_reports)


def test_a_jsonl_type_change_in_the_first_block_keeps_the_first_type(tmp_path: Path) -> None:
    lines = [json.dumps({"id": 1, "v": 1}), json.dumps({"id": 2, "v": "two"})]
    lines += [json.dumps({"id": i, "v": i}) for i in range(3, 10)]
    write_lines(tmp_path / "a.jsonl", lines)
    source = SourceDriver("jsonl", {"path": str(tmp_path / "a.jsonl")})
    batches = source.read_to_end()
    assert ids_of(batches) == [1, *range(3, 10)]
    assert [(line, text) for line, text, _ in reports(source)] == [(2, lines[1].encode())]


def test_an_empty_file_has_no_rows_and_no_error(tmp_path: Path) -> None:
    (tmp_path / "empty.csv").write_bytes(b"")
    (tmp_path / "header-only.csv").write_bytes(b"id,name\n")
    source = SourceDriver("csv", {"path": f"{tmp_path}/*.csv"})
    # The header-only file's position moves past its header: a batch of no rows.
    assert [b.num_rows for b in source.read_to_end()] == [0]
    assert source.errors.raw_reports == []

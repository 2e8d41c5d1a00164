"""Valid CSV reads with the default options: line breaks inside quoted values, fields longer
than a read block, other encodings; invalid UTF-8 is a bad row (or replaced), never a binary
column; type inference never changes a value."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pyarrow as pa

from omconnect.runtime.testing import SourceDriver

ROWS = 20_000


def written(rows: list[list[str]], header: list[str]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode()


def read_all(config: dict) -> tuple[pa.Table, SourceDriver]:
    source = SourceDriver("csv", config)
    batches = source.read_to_end()
    return pa.Table.from_batches([b.values for b in batches]), source


def test_quoted_line_breaks_read_with_the_defaults_across_blocks(tmp_path: Path) -> None:
    rows = [
        [str(i), f'line one of {i}\nline "two"\r\nthree' if i % 3 == 0 else f"plain {i}", "x"]
        for i in range(ROWS)
    ]
    path = tmp_path / "notes.csv"
    path.write_bytes(written(rows, ["id", "note", "tag"]))
    table, source = read_all({"path": str(path), "batch_size": 500})
    assert table["id"].to_pylist() == list(range(ROWS))
    assert table["note"].to_pylist() == [row[1] for row in rows]
    assert source.errors.raw_reports == []


def test_a_bad_row_after_quoted_line_breaks_has_its_own_line_number(tmp_path: Path) -> None:
    path = tmp_path / "notes.csv"
    path.write_bytes(b'id,note\n1,"a\nb\nc"\n2,ok\n3,"x\ny",extra\n4,"last\none"\n')
    table, source = read_all({"path": str(path)})
    assert table["id"].to_pylist() == [1, 2, 4]
    (bad,) = source.errors.raw_reports
    assert bad.where["line"] == 6
    assert bad.payload == b'3,"x\ny",extra'


def test_a_field_longer_than_a_block_grows_the_block(tmp_path: Path) -> None:
    big = "x" * (3 << 20)
    rows = [["1", "small"], ["2", big], ["3", f'"{big}"\n{big}'], ["4", "small"]]
    path = tmp_path / "big.csv"
    path.write_bytes(written(rows, ["id", "text"]))
    table, source = read_all({"path": str(path), "batch_size": 10})
    assert table["id"].to_pylist() == [1, 2, 3, 4]
    assert table["text"].to_pylist() == [row[1] for row in rows]
    assert source.errors.raw_reports == []


def test_invalid_utf8_is_a_bad_row_not_a_binary_column(tmp_path: Path) -> None:
    path = tmp_path / "names.csv"
    lines = [b"id,name"] + [f"{i},name {i}".encode() for i in range(ROWS)]
    lines[3] = b"2,caf\xe9"
    lines[15_000] = b"14999,bad \xff\xfe"
    path.write_bytes(b"\n".join(lines) + b"\n")
    table, source = read_all({"path": str(path), "batch_size": 1000})
    assert table.schema.field("name").type == pa.string()
    assert table["id"].to_pylist() == [i for i in range(ROWS) if i not in (2, 14_999)]
    assert [(r.where["line"], r.payload) for r in source.errors.raw_reports] == [
        (4, b"2,caf\xe9"),
        (15_001, b"14999,bad \xff\xfe"),
    ]
    assert "UTF8" in str(source.errors.raw_reports[0].error)


def test_invalid_utf8_is_replaced_when_asked(tmp_path: Path) -> None:
    path = tmp_path / "names.csv"
    lines = [b"id,name"] + [f"{i},name {i}".encode() for i in range(ROWS)]
    lines[3] = b"2,caf\xe9"
    lines[15_000] = b"14999,bad \xff"
    path.write_bytes(b"\n".join(lines) + b"\n")
    config = {"path": str(path), "batch_size": 1000, "encoding_errors": "replace"}
    table, source = read_all(config)
    names = table["name"].to_pylist()
    assert table["id"].to_pylist() == list(range(ROWS))
    assert names[2] == "caf\ufffd" and names[14_999] == "bad \ufffd"
    assert source.errors.raw_reports == []


def test_other_encodings_are_transcoded(tmp_path: Path) -> None:
    path = tmp_path / "latin.csv"
    path.write_bytes("id,name\n1,café\n2,naïve\n".encode("latin-1"))
    table, _ = read_all({"path": str(path), "encoding": "latin-1"})
    assert table["name"].to_pylist() == ["café", "naïve"]


def test_inference_never_changes_a_value(tmp_path: Path) -> None:
    path = tmp_path / "places.csv"
    path.write_text(
        "id,zip,count,ratio,exact,huge,signed\n"
        "1,08123,10,0.5,474.9347282381915,123456789012345678901234,+5\n"
        "2,10115,20,1.25,167.99971344371642,1,7\n"
    )
    table, _ = read_all({"path": str(path)})
    assert table["zip"].to_pylist() == ["08123", "10115"]
    assert table["huge"].to_pylist() == ["123456789012345678901234", "1"]
    assert table["signed"].to_pylist() == ["+5", "7"]
    assert table["count"].to_pylist() == [10, 20]
    assert table["ratio"].to_pylist() == [0.5, 1.25]
    assert table["exact"].to_pylist() == [474.9347282381915, 167.99971344371642]


def test_a_configured_column_is_not_second_guessed(tmp_path: Path) -> None:
    path = tmp_path / "places.csv"
    path.write_text("id,zip\n1,08123\n2,10115\n")
    table, _ = read_all({"path": str(path), "columns": {"zip": "int64"}})
    assert table["zip"].to_pylist() == [8123, 10115]


def test_timestamps_read_in_microseconds_unless_the_text_is_finer(tmp_path: Path) -> None:
    # Arrow reads CSV timestamps in nanoseconds; omconnect keeps microseconds (its usual unit,
    # and what a Parquet sink writes) unless a value has more than six fractional digits.
    (tmp_path / "a.csv").write_text(
        "id,micros,nanos\n"
        "1,2024-01-01T00:00:00.123456Z,2024-01-01T00:00:00.123456789Z\n"
        "2,2024-01-02T00:00:00Z,2024-01-02T00:00:00Z\n"
    )
    (batch,) = SourceDriver("csv", {"path": str(tmp_path / "a.csv")}).poll() or []
    assert batch.values.schema.field("micros").type == pa.timestamp("us", "UTC")
    assert batch.values.schema.field("nanos").type == pa.timestamp("ns", "UTC")
    nanos = batch.values.column("nanos").cast(pa.int64()).to_pylist()
    assert nanos[0] % 1000 == 789, "the nanoseconds are kept"

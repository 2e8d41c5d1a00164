"""What the four file sinks share: names, rolling, atomic publication, leftover cleanup,
assignment (open/close), deletes, and value round trips through the matching source."""

from __future__ import annotations

import datetime
import decimal
import logging
import os
import re
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as arrow_csv
import pytest

from omconnect.connectors.api import (
    ConnectorError,
    Position,
    PositionMark,
    RecordBatch,
    TopicPartition,
)
from omconnect.runtime.testing import (
    SinkDriver,
    SourceDriver,
    ids_of,
    sink_batches,
    sink_test_class,
    standard_rows,
    standard_rows_of,
)
from omconnect.schemas.arrow import from_arrow_schema
from tests.support.file_formats import published_files, read_back, read_file

FORMATS = ["csv", "jsonl", "parquet", "avro"]


def _batches(
    first_id: int, count: int, first_offset: int, batch_rows: int = 100, partition: int = 0
) -> list[RecordBatch]:
    return sink_batches(
        standard_rows(first_id, count),
        topic="orders",
        partition=partition,
        first_offset=first_offset,
        batch_rows=batch_rows,
    )


def _names(directory: Path) -> list[str]:
    """The file names in ``directory``, temporary ones without their writer part."""
    return sorted(re.sub(r"\.\d+-[0-9a-f]+\.tmp$", ".tmp", p.name) for p in directory.iterdir())


@pytest.mark.parametrize("fmt", FORMATS)
def test_files_are_named_by_topic_partition_and_first_offset(tmp_path: Path, fmt: str) -> None:
    sink = SinkDriver(fmt, {"path": str(tmp_path)})
    sent = _batches(0, 300, 5_000) + _batches(300, 100, 0, partition=3)
    sink.put_all(sent)
    sink.flush(sent)
    names = [p.name for p in published_files(tmp_path, fmt)]
    assert names == [
        f"orders-0-{5_000:020d}.{fmt}",
        f"orders-3-{0:020d}.{fmt}",
    ]


def test_the_longest_legal_topic_still_makes_file_names_under_255_bytes(tmp_path: Path) -> None:
    topic = "t" * 249  # the longest topic name a pipeline accepts (Kafka's limit)
    sent = sink_batches(
        standard_rows(0, 300), topic=topic, partition=7, first_offset=0, batch_rows=100
    )
    sink = SinkDriver("parquet", {"path": str(tmp_path), "max_rows": 200})
    sink.put_all(sent)
    sink.flush(sent)
    names = [p.name for p in published_files(tmp_path, "parquet")]
    assert len(names) == 2 and all(len(name.encode()) < 200 for name in names), names
    assert read_back(tmp_path, "parquet").num_rows == 300
    # A replay recognises its own files by the shortened name and overwrites them.
    replay = SinkDriver("parquet", {"path": str(tmp_path), "max_rows": 200})
    replay.put_all(sent)
    replay.flush(sent)
    assert [p.name for p in published_files(tmp_path, "parquet")] == names


@pytest.mark.parametrize("fmt", FORMATS)
def test_files_roll_after_max_rows(tmp_path: Path, fmt: str) -> None:
    sink = SinkDriver(fmt, {"path": str(tmp_path), "max_rows": 250})
    sent = _batches(0, 1000, 0, batch_rows=70)
    sink.put_all(sent)
    sink.flush(sent)
    files = published_files(tmp_path, fmt)
    assert [p.name for p in files] == [f"orders-0-{n:020d}.{fmt}" for n in (0, 250, 500, 750)]
    assert [ids_of(read_file(p)) for p in files] == [
        list(range(n, n + 250)) for n in (0, 250, 500, 750)
    ]


@pytest.mark.parametrize("fmt", FORMATS)
def test_files_roll_after_max_bytes_and_max_age(tmp_path: Path, fmt: str) -> None:
    by_bytes = SinkDriver(fmt, {"path": str(tmp_path / "bytes"), "max_bytes": 1})
    sent = _batches(0, 300, 0)
    by_bytes.put_all(sent)
    assert len(published_files(tmp_path / "bytes", fmt)) >= 2
    by_age = SinkDriver(fmt, {"path": str(tmp_path / "age"), "max_age": 0.01})
    by_age.put_all(sent[:1])
    time.sleep(0.02)
    by_age.put_all(sent[1:2])
    assert [p.name for p in published_files(tmp_path / "age", fmt)] == [f"orders-0-{0:020d}.{fmt}"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_open_files_are_hidden_temporaries_until_flush(tmp_path: Path, fmt: str) -> None:
    sink = SinkDriver(fmt, {"path": str(tmp_path)})
    sent = _batches(0, 200, 0)
    sink.put_all(sent)
    final = f"orders-0-{0:020d}.{fmt}"
    (temp,) = tmp_path.iterdir()
    assert re.fullmatch(rf"\.{re.escape(final)}\.{os.getpid()}-[0-9a-f]+\.tmp", temp.name)
    sink.flush(sent)
    assert sorted(p.name for p in tmp_path.iterdir()) == [final]
    assert ids_of(read_file(tmp_path / final)) == list(range(200))


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_failed_rename_never_shows_the_final_name(
    tmp_path: Path, fmt: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A crash between fsync and rename cannot be produced for real in a test: fail the rename.
    sink = SinkDriver(fmt, {"path": str(tmp_path)})
    sent = _batches(0, 200, 0)
    sink.put_all(sent)

    def no_rename(source: object, target: object) -> None:
        raise OSError("disk gone")

    monkeypatch.setattr(os, "replace", no_rename)
    with pytest.raises(OSError, match="disk gone"):
        sink.flush(sent)
    monkeypatch.undo()
    assert published_files(tmp_path, fmt) == []
    replay = SinkDriver(fmt, {"path": str(tmp_path)})
    replay.put_all(sent)
    replay.flush(sent)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"orders-0-{0:020d}.{fmt}"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_replay_removes_uncommitted_leftovers_only(tmp_path: Path, fmt: str) -> None:
    first = SinkDriver(fmt, {"path": str(tmp_path), "max_rows": 100})
    committed, uncommitted = _batches(0, 200, 0), _batches(200, 250, 200)
    first.put_all(committed)
    first.flush(committed)
    first.put_all(uncommitted)  # rolls: files from offsets 200, 300 published, 400 open
    assert [p.name for p in published_files(tmp_path, fmt)][-1] == f"orders-0-{300:020d}.{fmt}"
    other = SinkDriver(fmt, {"path": str(tmp_path)})
    other_partition = _batches(900, 10, 0, partition=1)
    other.put_all(other_partition)
    other.flush(other_partition)
    # Replay from offset 200 with other batch sizes and without max_rows.
    replay = SinkDriver(fmt, {"path": str(tmp_path)})
    again = _batches(200, 250, 200, batch_rows=150)
    replay.put_all(again)
    replay.flush(again)
    assert [p.name for p in published_files(tmp_path, fmt)] == [
        f"orders-0-{0:020d}.{fmt}",
        f"orders-0-{100:020d}.{fmt}",
        f"orders-0-{200:020d}.{fmt}",
        f"orders-1-{0:020d}.{fmt}",
    ]
    assert sorted(ids_of(read_back(tmp_path, fmt))) == [*range(450), *range(900, 910)]
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize("fmt", FORMATS)
def test_schema_change_starts_a_new_file(tmp_path: Path, fmt: str) -> None:
    sink = SinkDriver(fmt, {"path": str(tmp_path)})
    wider = sink_batches(
        standard_rows(100, 50, extra_column=True),
        topic="orders",
        partition=0,
        first_offset=100,
        batch_rows=50,
    )
    sent = _batches(0, 100, 0) + wider
    sink.put_all(sent)
    sink.flush(sent)
    files = published_files(tmp_path, fmt)
    assert [p.name for p in files] == [f"orders-0-{0:020d}.{fmt}", f"orders-0-{100:020d}.{fmt}"]
    assert "note" in read_file(files[1]).column_names


@pytest.mark.parametrize("fmt", FORMATS)
def test_first_offset_follows_the_previous_mark_when_rows_were_dropped(
    tmp_path: Path, fmt: str
) -> None:
    sink = SinkDriver(fmt, {"path": str(tmp_path)})
    first = _batches(0, 10, 0)
    sink.put_all(first)
    sink.flush(first)
    # Offsets 10..19 held 10 messages but 2 went to the dead letter topic: 8 rows arrive.
    rows = standard_rows(10, 8)
    schema = from_arrow_schema(rows.schema, "conformance")
    mark = PositionMark(8, Position({"topic": "orders", "partition": 0}, {"offset": 20}))
    gap = [RecordBatch(values=rows.to_batches()[0], schema=schema, marks=(mark,))]
    sink.put_all(gap)
    sink.flush(gap)
    names = [p.name for p in published_files(tmp_path, fmt)]
    assert names[-1] == f"orders-0-{10:020d}.{fmt}"


@pytest.mark.parametrize("fmt", FORMATS)
def test_rows_after_the_last_mark_are_refused(tmp_path: Path, fmt: str) -> None:
    (batch,) = _batches(0, 10, 0)
    unmarked = RecordBatch(values=batch.values, schema=batch.schema, marks=())
    with pytest.raises(ConnectorError, match="position mark"):
        SinkDriver(fmt, {"path": str(tmp_path)}).put_all([unmarked])


@pytest.mark.parametrize("fmt", ["jsonl", "parquet", "avro"])
def test_values_round_trip_through_sink_and_source(tmp_path: Path, fmt: str) -> None:
    rows = pa.table(
        {
            "id": pa.array([1, 2, 3], pa.int64()),
            "small": pa.array([7, None, -1], pa.int32()),
            "price": pa.array(
                [decimal.Decimal("1.25"), None, decimal.Decimal("-7.00")], pa.decimal128(12, 2)
            ),
            "at": pa.array(
                [
                    datetime.datetime(2024, 5, 6, 7, 8, 9, 123456),
                    None,
                    datetime.datetime(1999, 1, 1),
                ],
                pa.timestamp("us", "UTC"),
            ),
            "label": pa.array(['a "quoted"\nline', None, ""], pa.string()),
        }
    )
    sent = sink_batches(rows, topic="t", partition=0, first_offset=0, batch_rows=10)
    sink = SinkDriver(fmt, {"path": str(tmp_path / "out")})
    sink.put_all(sent)
    sink.flush(sent)
    config: dict[str, object] = {"path": str(tmp_path / "out")}
    if fmt == "jsonl":
        config["columns"] = {"small": "int32", "price": "decimal(12,2)", "at": "timestamptz"}
    (batch,) = SourceDriver(fmt, config).read_to_end()
    assert batch.values.select(rows.column_names).to_pydict() == rows.to_pydict()
    assert batch.values.schema.field("price").type == pa.decimal128(12, 2)


# Assignment ---------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_close_drops_only_the_revoked_partitions_open_file(tmp_path: Path, fmt: str) -> None:
    sink = SinkDriver(fmt, {"path": str(tmp_path), "max_rows": 150})
    p0, p1, p2 = (_batches(100 * p, 100, 0, partition=p) for p in range(3))
    rolled = _batches(1000, 150, 100, partition=1)  # offsets 100..249: file 0 published
    sink.put_all(p0 + p1 + p2 + rolled)
    assert f".orders-1-{150:020d}.{fmt}.tmp" in _names(tmp_path)
    sink.close([TopicPartition("orders", 1)])
    assert _names(tmp_path) == [
        f".orders-0-{0:020d}.{fmt}.tmp",
        f".orders-2-{0:020d}.{fmt}.tmp",
        f"orders-1-{0:020d}.{fmt}",
    ]
    positions = [b.positions[-1] for b in (p0[-1], rolled[-1], p2[-1])]
    durable = sink.task.flush(positions)
    assert durable == [positions[0], positions[2]], "flush claimed the closed partition"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        f"orders-0-{0:020d}.{fmt}",
        f"orders-1-{0:020d}.{fmt}",
        f"orders-2-{0:020d}.{fmt}",
    ]


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_reopened_partition_replays_from_its_last_commit(tmp_path: Path, fmt: str) -> None:
    sink = SinkDriver(fmt, {"path": str(tmp_path)})
    committed, dropped = _batches(0, 200, 0), _batches(200, 100, 200)
    sink.put_all(committed)
    sink.flush(committed)
    sink.put_all(dropped)
    sink.close([TopicPartition("orders", 0)])
    again = _batches(200, 100, 200, batch_rows=30)
    sink.put_all(again)  # opens the partition again
    assert sink.flush(again) == [again[-1].positions[-1]]
    assert sorted(ids_of(read_back(tmp_path, fmt))) == list(range(300))


@pytest.mark.parametrize("fmt", FORMATS)
def test_rolling_a_file_requests_a_commit(tmp_path: Path, fmt: str) -> None:
    quiet = SinkDriver(fmt, {"path": str(tmp_path / "quiet")})
    sent = _batches(0, 500, 0)
    quiet.put_all(sent)
    quiet.flush(sent)
    assert quiet.commit_requests == 0, "a flush is itself a commit: no request needed"
    rolling = SinkDriver(fmt, {"path": str(tmp_path / "rolling"), "max_rows": 200})
    rolling.put_all(sent[:1])
    assert rolling.commit_requests == 0
    rolling.put_all(sent[1:])
    assert rolling.commit_requests == 2  # files from 0 and 200 published while putting


# Deletes ------------------------------------------------------------------------------


def _mark_config(root: Path) -> dict[str, object]:
    return {"path": str(root), "deletes": "mark"}


@pytest.mark.parametrize("fmt", FORMATS)
def test_deletes_mark_passes_the_kit(tmp_path: Path, fmt: str) -> None:
    suite = sink_test_class(
        fmt,
        make_config=_mark_config,
        read_back=lambda config: read_back(Path(config["path"]), fmt),
        deletes="mark",
    )()
    suite.test_deletes_do_not_fail_the_sink(tmp_path / "accepted")
    suite.test_deletes_follow_the_declared_behaviour(tmp_path / "marked")


def _with_deletes(rows: pa.Table, deleted: list[bool], batch_rows: int = 10) -> list[RecordBatch]:
    return sink_batches(
        rows, topic="orders", partition=0, first_offset=0, batch_rows=batch_rows, deletes=deleted
    )


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_marked_delete_holds_its_key_and_nulls(tmp_path: Path, fmt: str) -> None:
    # Columns that cannot be null in the schema become nullable: a delete has no value.
    strict = pa.schema(
        [pa.field(f.name, f.type, nullable=False) for f in standard_rows(0, 0).schema]
    )
    rows = standard_rows(0, 4).cast(strict)
    sent = _with_deletes(rows, [False, True, False, True])
    sink = SinkDriver(fmt, _mark_config(tmp_path))
    sink.put_all(sent)
    sink.flush(sent)
    (path,) = published_files(tmp_path, fmt)
    if fmt == "csv":
        options = arrow_csv.ConvertOptions(strings_can_be_null=True)
        table = arrow_csv.read_csv(path, convert_options=options)
    else:
        table = read_file(path)
    assert table.to_pydict() == {
        "id": [0, 1, 2, 3],
        "name": ["name-0", None, "name-2", None],
        "amount": [0.0, None, 1.0, None],
        "__deleted": [False, True, False, True],
    }
    if fmt != "csv":
        (batch,) = SourceDriver(fmt, {"path": str(tmp_path)}).read_to_end()
        assert batch.schema.field("__deleted").nullable is (fmt == "jsonl")
        assert batch.values.column("__deleted").to_pylist() == [False, True, False, True]


@pytest.mark.parametrize("fmt", ["parquet", "avro"])
def test_mark_keeps_the_schema_in_the_files(tmp_path: Path, fmt: str) -> None:
    sent = _with_deletes(standard_rows(0, 4), [False, True, False, False])
    sink = SinkDriver(fmt, _mark_config(tmp_path))
    sink.put_all(sent)
    sink.flush(sent)
    (batch,) = SourceDriver(fmt, {"path": str(tmp_path)}).read_to_end()
    assert batch.schema.names == ["id", "name", "amount", "__deleted"]
    assert not batch.schema.field("__deleted").nullable
    if fmt == "parquet":  # the omconnect schema travels in the file's metadata
        assert batch.schema.key_fields == ("id",)


def test_a_delete_without_a_key_cannot_be_marked(tmp_path: Path) -> None:
    (batch,) = _with_deletes(standard_rows(0, 3), [False, True, False])
    keyless = RecordBatch(
        values=batch.values,
        schema=from_arrow_schema(batch.values.schema, "conformance"),
        marks=batch.marks,
        tombstones=batch.tombstones,
    )
    sink = SinkDriver("jsonl", _mark_config(tmp_path))
    sink.put_all([keyless])
    sink.flush([keyless])
    (report,) = sink.errors.reports
    assert report.rows == [1] and "without a key" in str(report.error)
    assert read_back(tmp_path, "jsonl").column("id").to_pylist() == [0, 2]


@pytest.mark.parametrize("fmt", FORMATS)
def test_skipped_deletes_are_counted_in_a_log_line(
    tmp_path: Path, fmt: str, caplog: pytest.LogCaptureFixture
) -> None:
    sent = _with_deletes(standard_rows(0, 30), [i % 3 == 0 for i in range(30)])
    sink = SinkDriver(fmt, {"path": str(tmp_path)})
    sink.put_all(sent)
    with caplog.at_level(logging.INFO, logger="omconnect.testing"):
        sink.flush(sent)
        sink.flush(sent)
    assert [r.getMessage() for r in caplog.records] == [
        f"{tmp_path}: skipped 10 delete(s) (tombstones) since the last flush (deletes: skip)"
    ]
    assert ids_of(read_back(tmp_path, fmt)) == [i for i in range(30) if i % 3]
    assert "__deleted" not in read_back(tmp_path, fmt).column_names


@pytest.mark.parametrize("deletes", ["skip", "mark"])
def test_a_replay_starting_with_deletes_leaves_no_duplicates(tmp_path: Path, deletes: str) -> None:
    # The first rows after the commit are deletes: with skip, the partition's first file
    # starts later than the first message, and the replay must still remove it.
    ids = list(range(100))
    deleted = [i < 25 for i in ids]
    config = {"path": str(tmp_path), "deletes": deletes, "max_rows": 30}
    crashed = SinkDriver("parquet", config)
    crashed.put_all(
        sink_batches(
            standard_rows_of(ids),
            topic="orders",
            partition=0,
            first_offset=500,
            batch_rows=40,
            deletes=deleted,
        )
    )
    replay = sink_batches(
        standard_rows_of(ids),
        topic="orders",
        partition=0,
        first_offset=500,
        batch_rows=10,
        deletes=deleted,
    )
    restarted = SinkDriver("parquet", config)
    restarted.put_all(replay)
    restarted.flush(replay)
    table = read_back(tmp_path, "parquet")
    expected = list(range(25, 100)) if deletes == "skip" else ids
    assert sorted(ids_of(table)) == expected

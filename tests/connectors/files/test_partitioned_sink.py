"""``partition_by``: Hive-style directories by field values and time buckets, for every file
sink, locally and on S3; read back with ``pyarrow.dataset``'s Hive partitioning."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds
import pytest

from omconnect.connectors.api import ConfigError, ConnectorError, RecordBatch
from omconnect.runtime.testing import (
    SinkDriver,
    ids_of,
    sink_batches,
    sink_test_class,
    standard_rows,
)
from tests.support.s3_server import S3Server

DATASET_FORMATS = {"parquet": "parquet", "csv": "csv", "jsonl": "json"}
UTC = datetime.UTC


def read_hive(path: str | Path, fmt: str, filesystem: Any = None) -> pa.Table:
    """Every published file under ``path`` with the columns of its Hive directories, the
    files' schemas unified (hidden files, such as temporary ones, are skipped)."""
    found = ds.dataset(
        str(path), format=DATASET_FORMATS[fmt], partitioning="hive", filesystem=filesystem
    )
    schemas = [fragment.physical_schema for fragment in found.get_fragments()]
    if not schemas:
        return pa.table({"id": pa.array([], pa.int64())})
    partitions = found.partitioning.schema if found.partitioning else pa.schema([])
    schema = pa.unify_schemas([*schemas, partitions], promote_options="permissive")
    return ds.dataset(
        str(path),
        format=DATASET_FORMATS[fmt],
        partitioning=ds.HivePartitioning.discover(),
        filesystem=filesystem,
        schema=schema,
    ).to_table()


def _files(root: Path) -> list[str]:
    """The published files under ``root``, relative, sorted."""
    return sorted(
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.is_file() and not p.name.startswith(".")
    )


def _orders(ids: list[int], regions: list[str | None], at: list[Any] | None = None) -> pa.Table:
    columns: dict[str, Any] = {
        "id": pa.array(ids, pa.int64()),
        "region": pa.array(regions, pa.string()),
    }
    if at is not None:
        columns["at"] = at
    return pa.table(columns)


def _batches(rows: pa.Table, first_offset: int = 0, batch_rows: int = 100) -> list[RecordBatch]:
    return sink_batches(
        rows, topic="orders", partition=0, first_offset=first_offset, batch_rows=batch_rows
    )


def _write(config: dict[str, Any], fmt: str, batches: list[RecordBatch]) -> SinkDriver:
    sink = SinkDriver(fmt, config)
    sink.put_all(batches)
    sink.flush(batches)
    return sink


def _by_id(table: pa.Table, column: str) -> dict[int, Any]:
    return dict(zip(ids_of(table), table.column(column).to_pylist(), strict=True))


# Field values -------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["parquet", "csv", "jsonl"])
def test_rows_go_to_a_directory_per_field_value(tmp_path: Path, fmt: str) -> None:
    regions = ["eu", "us", None, "a/b", "eu", "us", "x=1 y", "eu"] * 25
    rows = _orders(list(range(200)), regions)
    _write({"path": str(tmp_path), "partition_by": ["region"]}, fmt, _batches(rows, 1_000, 30))
    name = f"orders-0-{{:020d}}.{fmt}"
    assert _files(tmp_path) == [
        f"region=__HIVE_DEFAULT_PARTITION__/{name.format(1_002)}",
        f"region=a%2Fb/{name.format(1_003)}",
        f"region=eu/{name.format(1_000)}",
        f"region=us/{name.format(1_001)}",
        f"region=x%3D1%20y/{name.format(1_006)}",
    ]
    back = read_hive(tmp_path, fmt)
    assert sorted(ids_of(back)) == list(range(200))
    assert _by_id(back, "region") == dict(enumerate(regions))
    one = ds.dataset(tmp_path / "region=eu", format=DATASET_FORMATS[fmt]).to_table()
    assert "region" not in one.column_names, "the directory holds the value, not the files"


def test_value_partitions_combine_with_other_keys_and_types(tmp_path: Path) -> None:
    rows = pa.table(
        {
            "id": pa.array(range(6), pa.int64()),
            "store": pa.array([3, 3, 7, 7, 3, None], pa.int32()),
            "open": pa.array([True, False, True, True, True, False]),
        }
    )
    _write({"path": str(tmp_path), "partition_by": ["store", "open"]}, "parquet", _batches(rows))
    assert [f.rpartition("/")[0] for f in _files(tmp_path)] == [
        "store=3/open=false",
        "store=3/open=true",
        "store=7/open=true",
        "store=__HIVE_DEFAULT_PARTITION__/open=false",
    ]
    back = read_hive(tmp_path, "parquet")
    assert _by_id(back, "store") == {0: 3, 1: 3, 2: 7, 3: 7, 4: 3, 5: None}


def test_a_long_value_keeps_a_short_distinct_directory_name(tmp_path: Path) -> None:
    long_a, long_b = "é" * 300 + "a", "é" * 300 + "b"
    rows = _orders([0, 1, 2], [long_a, long_b, long_a])
    _write({"path": str(tmp_path), "partition_by": ["region"]}, "parquet", _batches(rows))
    directories = sorted({f.rpartition("/")[0] for f in _files(tmp_path)})
    assert len(directories) == 2
    assert all(len(d.encode()) < 200 for d in directories), directories
    assert sorted(ids_of(read_hive(tmp_path, "parquet"))) == [0, 1, 2]


# Time buckets -------------------------------------------------------------------------------

INSTANTS = [
    datetime.datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC),
    datetime.datetime(2027, 1, 1, 0, 0, 0, tzinfo=UTC),
    datetime.datetime(2027, 1, 1, 13, 30, tzinfo=UTC),
    datetime.datetime(2027, 2, 1, 1, 0, tzinfo=UTC),
    None,
]
FORMATS = {"hour": "%Y-%m-%dT%H", "day": "%Y-%m-%d", "month": "%Y-%m", "year": "%Y"}


@pytest.mark.parametrize("granularity", ["hour", "day", "month", "year"])
def test_timestamps_go_to_a_directory_per_time_bucket(tmp_path: Path, granularity: str) -> None:
    # A zoned timestamp is bucketed in UTC whatever zone its type names.
    at = pa.array(INSTANTS, pa.timestamp("us", "UTC")).cast(pa.timestamp("us", "Europe/Paris"))
    rows = _orders(list(range(5)), ["eu"] * 5, at)
    config = {"path": str(tmp_path), "partition_by": [{"field": "at", "granularity": granularity}]}
    _write(config, "parquet", _batches(rows, batch_rows=2))
    expected = {
        i: (t.strftime(FORMATS[granularity]) if t else None) for i, t in enumerate(INSTANTS)
    }
    column = f"at_{granularity}"
    assert {f.partition("/")[0] for f in _files(tmp_path)} == {
        f"{column}={v}" if v else f"{column}=__HIVE_DEFAULT_PARTITION__" for v in expected.values()
    }
    back = read_hive(tmp_path, "parquet")
    assert {i: None if v is None else str(v) for i, v in _by_id(back, column).items()} == expected
    assert "at" in back.column_names, "the bucketed field stays in the files"


def test_dates_and_timestamps_without_zone_are_bucketed_as_written(tmp_path: Path) -> None:
    rows = pa.table(
        {
            "id": pa.array([0, 1, 2], pa.int64()),
            "day": pa.array([datetime.date(2026, 12, 1), datetime.date(2027, 3, 9), None]),
            "local": pa.array(
                [datetime.datetime(2026, 12, 1, 23), datetime.datetime(2026, 12, 2, 1), None],
                pa.timestamp("ms"),
            ),
        }
    )
    config = {
        "path": str(tmp_path),
        "partition_by": [
            {"field": "day", "granularity": "month"},
            {"field": "local", "granularity": "day"},
        ],
    }
    _write(config, "csv", _batches(rows))
    assert [f.rpartition("/")[0] for f in _files(tmp_path)] == [
        "day_month=2026-12/local_day=2026-12-01",
        "day_month=2027-03/local_day=2026-12-02",
        "day_month=__HIVE_DEFAULT_PARTITION__/local_day=__HIVE_DEFAULT_PARTITION__",
    ]


# Rolling, replays, open files ---------------------------------------------------------------


def test_each_directory_rolls_its_own_files_named_by_their_first_offset(tmp_path: Path) -> None:
    regions = ["eu" if i % 3 else "us" for i in range(300)]
    config = {"path": str(tmp_path), "partition_by": ["region"], "max_rows": 60}
    _write(config, "jsonl", _batches(_orders(list(range(300)), regions), batch_rows=70))
    us_offsets = [i for i in range(300) if i % 3 == 0]  # 100 rows: files at rows 0 and 60
    eu_offsets = [i for i in range(300) if i % 3]  # 200 rows: files at rows 0, 60, 120, 180
    assert _files(tmp_path) == sorted(
        [f"region=eu/orders-0-{eu_offsets[r]:020d}.jsonl" for r in (0, 60, 120, 180)]
        + [f"region=us/orders-0-{us_offsets[r]:020d}.jsonl" for r in (0, 60)]
    )
    back = read_hive(tmp_path, "jsonl")
    assert sorted(ids_of(back)) == list(range(300))


@pytest.mark.parametrize("fmt", ["parquet", "avro"])
def test_a_replay_overwrites_every_directory_without_duplicates(tmp_path: Path, fmt: str) -> None:
    regions = ["eu", "us", "asia"] * 100
    config = {"path": str(tmp_path), "partition_by": ["region"], "max_rows": 40}
    rows = _orders(list(range(300)), regions)
    first = SinkDriver(fmt, config)
    committed, uncommitted = _batches(rows.slice(0, 90)), _batches(rows.slice(90), 90)
    first.put_all(committed)
    first.flush(committed)
    first.put_all(uncommitted)  # rolls files in every directory, then "crashes"
    replay = _batches(rows.slice(90), 90, batch_rows=45)
    _write(config, fmt, replay)
    if fmt == "avro":
        from tests.support.file_formats import read_file

        seen = [i for f in _files(tmp_path) for i in ids_of(read_file(tmp_path / f))]
    else:
        seen = ids_of(read_hive(tmp_path, fmt))
    assert sorted(seen) == list(range(300))
    assert not [p for p in tmp_path.rglob(".*.tmp")], "temporary files are left"


def test_past_max_open_files_the_least_recent_file_is_completed(tmp_path: Path) -> None:
    regions = [f"r{i % 5}" for i in range(50)]
    config = {"path": str(tmp_path), "partition_by": ["region"], "max_open_files": 2}
    sink = SinkDriver("parquet", config)
    sent = _batches(_orders(list(range(50)), regions), batch_rows=10)
    sink.put_all(sent)
    assert len(_files(tmp_path)) >= 3 and sink.commit_requests > 0
    assert len(list(tmp_path.rglob(".*.tmp"))) == 2
    sink.flush(sent)
    assert sorted(ids_of(read_hive(tmp_path, "parquet"))) == list(range(50))


# Errors -------------------------------------------------------------------------------------


def test_a_missing_or_unsuitable_field_is_a_clear_error(tmp_path: Path) -> None:
    rows = _orders([0], ["eu"])
    missing = SinkDriver("parquet", {"path": str(tmp_path / "a"), "partition_by": ["country"]})
    with pytest.raises(ConnectorError, match=r"partition_by: the rows have no field 'country'"):
        missing.put_all(_batches(rows))
    bucket = SinkDriver(
        "parquet",
        {"path": str(tmp_path / "b"), "partition_by": [{"field": "id", "granularity": "day"}]},
    )
    with pytest.raises(ConnectorError, match=r"'id' is int64; a granularity needs a timestamp"):
        bucket.put_all(_batches(rows))


def test_a_directory_level_named_twice_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="partition_by names the directory level 'at_day'"):
        SinkDriver(
            "csv",
            {
                "path": str(tmp_path),
                "partition_by": [
                    {"field": "at", "granularity": "day"},
                    {"field": "at", "granularity": "day"},
                ],
            },
        )


# On S3 --------------------------------------------------------------------------------------


def test_time_and_value_partitions_on_s3(s3_server: S3Server, s3_bucket: str) -> None:
    at = pa.array(INSTANTS * 4, pa.timestamp("us", "UTC"))
    regions = ["eu", "us"] * 10
    config = {
        "path": f"s3://{s3_bucket}/lake/orders",
        "s3": s3_server.options(),
        "partition_by": ["region", {"field": "at", "granularity": "day"}],
    }
    _write(config, "parquet", _batches(_orders(list(range(20)), regions, at), batch_rows=7))
    keys = s3_server.keys(s3_bucket, "lake/orders/")
    assert "lake/orders/region=eu/at_day=2027-01-01/orders-0-00000000000000000002.parquet" in keys
    back = read_hive(f"{s3_bucket}/lake/orders", "parquet", s3_server.filesystem())
    assert sorted(ids_of(back)) == list(range(20))
    assert _by_id(back, "region") == dict(enumerate(regions))
    assert {i: str(v) if v else None for i, v in _by_id(back, "at_day").items()} == {
        i: t.strftime("%Y-%m-%d") if t else None for i, t in enumerate(INSTANTS * 4)
    }


# The conformance kit ------------------------------------------------------------------------


def _partitioned(root: Path) -> dict[str, Any]:
    # Every standard row has a name of its own: one directory per row, the hardest case.
    return {"path": str(root), "partition_by": ["name"], "max_open_files": 16}


TestPartitionedLocalParquet = sink_test_class(
    "parquet",
    make_config=_partitioned,
    read_back=lambda config: read_hive(config["path"], "parquet"),
    deletes="skip",
    rows=200,
    batch_rows=50,
)


def test_the_kit_rows_are_restored_from_the_directories(tmp_path: Path) -> None:
    rows = standard_rows(0, 10)
    _write(_partitioned(tmp_path), "parquet", _batches(rows))
    back = read_hive(tmp_path, "parquet").sort_by("id")
    assert back.select(["id", "name", "amount"]).to_pydict() == rows.to_pydict()
    assert f"name=name-3/orders-0-{3:020d}.parquet" in _files(tmp_path)

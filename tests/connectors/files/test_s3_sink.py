"""The file sinks on ``s3://bucket/prefix``, against a real S3 endpoint (moto's server): each
format, rolling, replays that overwrite the same objects, multipart uploads (aborted when
never completed, even by a killed ``omconnect run``), the lock object, clear errors, and the
example pipeline ``pipelines/topic-to-s3-parquet.yaml``."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import socket
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import fastavro
import numpy as np
import pyarrow as pa
import pyarrow.csv as arrow_csv
import pyarrow.dataset as ds
import pyarrow.json as arrow_json
import pyarrow.parquet as pq
import pytest

from omconnect.connectors.api import (
    ConfigError,
    ConnectorError,
    RecordBatch,
    RetriableError,
    TopicPartition,
)
from omconnect.runtime.testing import (
    SinkConnectorTests,
    SinkDriver,
    ids_of,
    sink_batches,
    standard_rows,
)
from tests.support.omconnect_process import REPO, omconnect, spawn_omconnect
from tests.support.s3_server import ACCESS_KEY_ID, SECRET_ACCESS_KEY, S3Server

FORMATS = ["csv", "jsonl", "parquet", "avro"]
MIB = 1024 * 1024


def _config(server: S3Server, bucket: str, prefix: str = "out", **options: Any) -> dict[str, Any]:
    return {"path": f"s3://{bucket}/{prefix}", "s3": server.options(), **options}


def _batches(
    first_id: int, count: int, first_offset: int, batch_rows: int = 100
) -> list[RecordBatch]:
    return sink_batches(
        standard_rows(first_id, count),
        topic="orders",
        partition=0,
        first_offset=first_offset,
        batch_rows=batch_rows,
    )


def _deliver(sink: SinkDriver, batches: list[RecordBatch]) -> None:
    sink.put_all(batches)
    sink.flush(batches)


def read_object(server: S3Server, bucket: str, key: str) -> pa.Table:
    """One object read as the file format its name ends with."""
    body = server.client().get_object(Bucket=bucket, Key=key)["Body"].read()
    if key.endswith(".csv"):
        return arrow_csv.read_csv(io.BytesIO(body))
    if key.endswith(".jsonl"):
        return arrow_json.read_json(io.BytesIO(body))
    if key.endswith(".parquet"):
        return pq.read_table(io.BytesIO(body))
    return pa.Table.from_pylist(list(fastavro.reader(io.BytesIO(body))))


def read_prefix(server: S3Server, bucket: str, prefix: str) -> pa.Table:
    """Every published file under ``prefix`` (hidden objects skipped), as one table."""
    keys = [k for k in server.keys(bucket, f"{prefix}/") if k.rpartition("/")[2][0] not in "._"]
    tables = [read_object(server, bucket, k) for k in keys]
    if not tables:
        return pa.table({"id": pa.array([], pa.int64())})
    return pa.concat_tables(tables, promote_options="permissive")


def _names(server: S3Server, bucket: str, prefix: str = "out") -> list[str]:
    return [k.removeprefix(f"{prefix}/") for k in server.keys(bucket, f"{prefix}/")]


# Formats, rolling, replays ------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_each_format_is_written_to_its_final_key(
    s3_server: S3Server, s3_bucket: str, fmt: str
) -> None:
    sink = SinkDriver(fmt, _config(s3_server, s3_bucket, "lake/orders/", max_rows=250))
    sent = _batches(0, 400, 5_000, batch_rows=70)
    sink.put_all(sent)
    assert _names(s3_server, s3_bucket, "lake/orders") == [
        ".omconnect.lock",
        f"orders-0-{5_000:020d}.{fmt}",
    ], "only the lock and the rolled file are visible before the flush"
    sink.flush(sent)
    sink.stop()
    assert _names(s3_server, s3_bucket, "lake/orders") == [
        f"orders-0-{5_000:020d}.{fmt}",
        f"orders-0-{5_250:020d}.{fmt}",
    ], "the lock object is deleted on stop"
    files = [
        read_object(s3_server, s3_bucket, f"lake/orders/{n}")
        for n in _names(s3_server, s3_bucket, "lake/orders")
    ]
    assert [ids_of(t) for t in files] == [list(range(250)), list(range(250, 400))]
    if fmt == "parquet":  # the omconnect schema travels in the file's metadata
        assert b"omconnect" in b"".join(files[0].schema.metadata or {})


def test_a_replay_overwrites_the_same_objects(s3_server: S3Server, s3_bucket: str) -> None:
    config = _config(s3_server, s3_bucket, max_rows=100, upload_part_size=5 * MIB)
    first = SinkDriver("parquet", config)
    committed, uncommitted = _batches(0, 200, 0), _batches(200, 250, 200)
    _deliver(first, committed)
    first.put_all(uncommitted)  # rolls: files from 200 and 300 published, 400 open; crash
    before = _names(s3_server, s3_bucket)
    assert before[-1] == f"orders-0-{300:020d}.parquet"
    replay = SinkDriver("parquet", {**config, "max_rows": 1_000})
    _deliver(replay, _batches(200, 250, 200, batch_rows=33))
    replay.stop()
    assert _names(s3_server, s3_bucket) == [
        f"orders-0-{0:020d}.parquet",
        f"orders-0-{100:020d}.parquet",
        f"orders-0-{200:020d}.parquet",
    ]
    assert sorted(ids_of(read_prefix(s3_server, s3_bucket, "out"))) == list(range(450))


def test_an_empty_prefix_writes_at_the_top_of_the_bucket(
    s3_server: S3Server, s3_bucket: str
) -> None:
    sink = SinkDriver("jsonl", {"path": f"s3://{s3_bucket}", "s3": s3_server.options()})
    _deliver(sink, _batches(0, 10, 0))
    sink.stop()
    assert s3_server.keys(s3_bucket) == [f"orders-0-{0:020d}.jsonl"]


# Multipart uploads --------------------------------------------------------------------------


def _bulky_batches(count: int, first_offset: int = 0) -> list[RecordBatch]:
    """Rows of about 1 KiB of random text each: they neither compress nor encode small."""
    rng = np.random.default_rng(7)
    text = [rng.bytes(512).hex() for _ in range(count)]
    rows = pa.table({"id": pa.array(range(count), pa.int64()), "payload": pa.array(text)})
    return sink_batches(
        rows, topic="orders", partition=0, first_offset=first_offset, batch_rows=500
    )


def _large(server: S3Server, bucket: str) -> dict[str, Any]:
    return _config(
        server, bucket, upload_part_size=5 * MIB, compression="none", row_group_size=1_000
    )


def test_a_large_file_is_uploaded_in_parts_and_appears_when_complete(
    s3_server: S3Server, s3_bucket: str
) -> None:
    sink = SinkDriver("parquet", _large(s3_server, s3_bucket))
    sent = _bulky_batches(12_000)  # about 12 MiB: two full parts and the rest
    sink.put_all(sent)
    (upload,) = s3_server.incomplete_uploads(s3_bucket)
    key = f"out/orders-0-{0:020d}.parquet"
    assert upload["Key"] == key
    parts = s3_server.client().list_parts(Bucket=s3_bucket, Key=key, UploadId=upload["UploadId"])
    assert len(parts["Parts"]) == 2 and all(p["Size"] >= 5 * MIB for p in parts["Parts"])
    assert key not in s3_server.keys(s3_bucket), "visible before complete"
    sink.flush(sent)
    head = s3_server.client().head_object(Bucket=s3_bucket, Key=key)
    assert head["ETag"].strip('"').endswith("-3"), "not a multipart object of 3 parts"
    assert s3_server.incomplete_uploads(s3_bucket) == []
    assert ids_of(read_object(s3_server, s3_bucket, key)) == list(range(12_000))


def test_a_closed_partition_aborts_its_upload(s3_server: S3Server, s3_bucket: str) -> None:
    sink = SinkDriver("parquet", _large(s3_server, s3_bucket))
    sink.put_all(_bulky_batches(7_000))
    assert len(s3_server.incomplete_uploads(s3_bucket)) == 1
    sink.close([TopicPartition("orders", 0)])
    assert s3_server.incomplete_uploads(s3_bucket) == []
    assert _names(s3_server, s3_bucket) == [".omconnect.lock"]


def test_a_crashed_upload_is_aborted_and_rewritten_by_the_replay(
    s3_server: S3Server, s3_bucket: str
) -> None:
    config = _large(s3_server, s3_bucket)
    crashed = SinkDriver("parquet", config)
    crashed.put_all(_bulky_batches(7_000))  # no flush, no stop: the process died
    assert len(s3_server.incomplete_uploads(s3_bucket)) == 1
    restarted = SinkDriver("parquet", config)
    sent = _bulky_batches(7_000)
    restarted.put_all(sent[:1])
    assert s3_server.incomplete_uploads(s3_bucket) == [], "the crashed upload is not aborted"
    restarted.put_all(sent[1:])
    restarted.flush(sent)
    assert sorted(ids_of(read_prefix(s3_server, s3_bucket, "out"))) == list(range(7_000))
    assert s3_server.incomplete_uploads(s3_bucket) == []


def test_a_failed_upload_stops_the_run_rather_than_being_retried(
    s3_server: S3Server, s3_bucket: str
) -> None:
    sink = SinkDriver("parquet", _large(s3_server, s3_bucket))
    sent = _bulky_batches(12_000)
    sink.put_all(sent[:12])  # one part uploaded
    (upload,) = s3_server.incomplete_uploads(s3_bucket)
    s3_server.client().abort_multipart_upload(
        Bucket=s3_bucket, Key=upload["Key"], UploadId=upload["UploadId"]
    )
    with pytest.raises(ConnectorError) as failed:
        sink.put_all(sent[12:])
        sink.flush(sent)
    assert not isinstance(failed.value, RetriableError), "a retry would lose the written rows"
    assert str(failed.value).startswith(f"s3://{s3_bucket}/out: S3 failed while uploading")


# The lock object ----------------------------------------------------------------------------


def _lock(server: S3Server, bucket: str, pipeline: str) -> None:
    holder = {"pipeline": pipeline, "host": "elsewhere", "pid": 4242, "since": "earlier"}
    server.client().put_object(
        Bucket=bucket, Key="out/.omconnect.lock", Body=json.dumps(holder).encode()
    )


def test_another_pipelines_prefix_is_refused(s3_server: S3Server, s3_bucket: str) -> None:
    _lock(s3_server, s3_bucket, "nightly-export")
    with pytest.raises(ConnectorError) as refused:
        SinkDriver("parquet", _config(s3_server, s3_bucket))
    message = str(refused.value)
    assert message.startswith(f"s3://{s3_bucket}/out: pipeline 'nightly-export' already writes")
    assert f"delete s3://{s3_bucket}/out/.omconnect.lock if it no longer runs" in message


def test_a_killed_run_of_the_same_pipeline_is_taken_over(
    s3_server: S3Server, s3_bucket: str
) -> None:
    _lock(s3_server, s3_bucket, "conformance")  # the pipeline name SinkDriver runs under
    sink = SinkDriver("parquet", _config(s3_server, s3_bucket))
    _deliver(sink, _batches(0, 10, 0))
    sink.stop()
    assert _names(s3_server, s3_bucket) == [f"orders-0-{0:020d}.parquet"]


# Errors -------------------------------------------------------------------------------------


def _refusal(config: dict[str, Any]) -> str:
    with pytest.raises(ConnectorError) as refused:
        sink = SinkDriver("parquet", config)
        sink.put_all(_batches(0, 10, 0))
    message = str(refused.value)
    assert "\n" not in message and SECRET_ACCESS_KEY not in message, message
    return message


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_an_unreachable_endpoint_says_what_to_check(s3_bucket: str, s3_server: S3Server) -> None:
    options = {**s3_server.options(), "endpoint_url": f"http://127.0.0.1:{_closed_port()}"}
    message = _refusal({"path": f"s3://{s3_bucket}/out", "s3": options})
    assert message.startswith(f"s3://{s3_bucket}/out: cannot reach the S3 endpoint")
    assert "check s3.endpoint_url" in message


def test_refused_credentials_say_what_to_check(s3_server: S3Server, s3_bucket: str) -> None:
    options = {**s3_server.options(), "access_key_id": "AKIANOTKNOWN"}
    with s3_server.enforcing_auth():
        message = _refusal({"path": f"s3://{s3_bucket}/out", "s3": options})
    assert message.startswith(f"s3://{s3_bucket}/out: ")
    assert "check s3.access_key_id" in message


def test_a_missing_bucket_says_what_to_check(s3_server: S3Server) -> None:
    bucket = f"omct-missing-{uuid.uuid4().hex[:8]}"
    message = _refusal(_config(s3_server, bucket))
    assert message.startswith(f"s3://{bucket}/out: the bucket '{bucket}' does not exist")


def test_s3_options_belong_to_s3_paths(tmp_path: Path, s3_server: S3Server) -> None:
    with pytest.raises(ConfigError, match="s3 is for s3:// paths"):
        SinkDriver("csv", {"path": str(tmp_path), "s3": s3_server.options()})
    with pytest.raises(ValueError, match="upload_part_size"):
        SinkDriver("csv", {"path": "s3://b/p", "upload_part_size": MIB})


# The conformance kit ------------------------------------------------------------------------


class TestParquetOnS3(SinkConnectorTests):
    connector = "parquet"
    deletes = "skip"

    @pytest.fixture(autouse=True)
    def _bucket(self, s3_server: S3Server, s3_bucket: str) -> None:
        self.server, self.bucket = s3_server, s3_bucket

    def make_config(self, root: Path) -> dict[str, Any]:
        return _config(self.server, self.bucket, f"kit/{root.parent.name}-{uuid.uuid4().hex[:6]}")

    def read_back(self, config: dict[str, Any]) -> pa.Table:
        prefix = config["path"].removeprefix(f"s3://{self.bucket}/")
        return read_prefix(self.server, self.bucket, prefix)


# The example pipeline and a killed run ------------------------------------------------------


def _s3_env(server: S3Server, bucket: str) -> dict[str, str]:
    return {
        "S3_ENDPOINT_URL": server.endpoint_url,
        "S3_BUCKET": bucket,
        "S3_ACCESS_KEY_ID": ACCESS_KEY_ID,
        "S3_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
    }


def test_the_example_pipeline_lands_the_orders_topic_partitioned(
    s3_server: S3Server, s3_bucket: str, tmp_path: Path
) -> None:
    shutil.copytree(REPO / "pipelines", tmp_path / "pipelines")
    env = _s3_env(s3_server, s3_bucket)
    for command in (
        ["run", "pipelines/quickstart.yaml", "--once"],
        ["validate", "pipelines/topic-to-s3-parquet.yaml"],
        ["run", "pipelines/topic-to-s3-parquet.yaml", "--once"],
    ):
        done = omconnect(*command, cwd=tmp_path, env=env)
        assert done.returncode == 0, (command, done.stderr)
    source = arrow_csv.read_csv(tmp_path / "pipelines/data/orders.csv")
    positive = source.filter(pa.compute.greater(source["amount"], 0))
    lake = ds.dataset(
        f"{s3_bucket}/orders",
        format="parquet",
        partitioning="hive",
        filesystem=s3_server.filesystem(),
    ).to_table()
    assert Counter(lake["order_id"].to_pylist()) == Counter(positive["order_id"].to_pylist())
    assert dict(
        zip(lake["order_id"].to_pylist(), lake["country"].to_pylist(), strict=True)
    ) == dict(zip(positive["order_id"].to_pylist(), positive["country"].to_pylist(), strict=True))
    assert set(lake["created_at_month"].to_pylist()) == {"2026-01"}
    keys = s3_server.keys(s3_bucket, "orders/")
    assert all(k.startswith("orders/country=") and "/created_at_month=" in k for k in keys)
    again = omconnect("run", "pipelines/topic-to-s3-parquet.yaml", "--once", cwd=tmp_path, env=env)
    assert again.returncode == 0 and "written=0" in again.stderr, again.stderr
    assert s3_server.keys(s3_bucket, "orders/") == keys


ROWS_TO_KILL = 30_000  # about 30 MiB of Parquet


def test_a_run_killed_during_a_multipart_upload_resumes_to_every_row_once(
    s3_server: S3Server, s3_bucket: str, tmp_path: Path
) -> None:
    rng = np.random.default_rng(11)
    rows = pa.table(
        {
            "id": pa.array(range(ROWS_TO_KILL), pa.int64()),
            "payload": pa.array([rng.bytes(512).hex() for _ in range(ROWS_TO_KILL)]),
        }
    )
    arrow_csv.write_csv(rows, tmp_path / "events.csv")
    (tmp_path / "load.yaml").write_text(
        "name: load\ntopic: events\nsource: {connector: csv, path: events.csv, key: [id]}\n"
    )
    sink = {
        "connector": "parquet",
        "path": f"s3://{s3_bucket}/events",
        "s3": s3_server.options(),
        "upload_part_size": 5 * MIB,
        "compression": "none",
        "row_group_size": 2_000,
    }
    pipeline = {"name": "land", "topic": "events", "commit_interval": 60, "sink": sink}
    (tmp_path / "land.yaml").write_text(json.dumps(pipeline))
    loaded = omconnect("run", "load.yaml", "--once", cwd=tmp_path)
    assert loaded.returncode == 0, loaded.stderr

    landing = spawn_omconnect("run", "land.yaml", "--once", cwd=tmp_path)
    try:
        deadline = time.monotonic() + 60
        while not _an_upload_has_parts(s3_server, s3_bucket):
            assert landing.poll() is None, "the run ended before any part was uploaded"
            assert time.monotonic() < deadline, "no multipart upload started"
            time.sleep(0.05)
        os.kill(landing.pid, signal.SIGKILL)
    finally:
        landing.kill()
        landing.communicate(timeout=30)
    assert s3_server.incomplete_uploads(s3_bucket), "the kill left no upload to clean"

    resumed = omconnect("run", "land.yaml", "--once", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    written = Counter(ids_of(read_prefix(s3_server, s3_bucket, "events")))
    assert set(written) == set(range(ROWS_TO_KILL)), "rows are missing"
    assert max(written.values()) == 1, "rows are duplicated"
    assert s3_server.incomplete_uploads(s3_bucket) == []


def _an_upload_has_parts(server: S3Server, bucket: str) -> bool:
    client = server.client()
    for upload in server.incomplete_uploads(bucket):
        parts = client.list_parts(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
        if parts.get("Parts"):
            return True
    return False

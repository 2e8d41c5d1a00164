"""The file sources reading ``s3://`` paths from a real S3 endpoint (moto's server).

The conformance kit runs the csv source over S3; then each format, globs and prefixes, new and
replaced objects, a large object read in bounded ranges, a real ``omconnect run --once``, and
the errors a person must be able to act on.
"""

from __future__ import annotations

import io
import json
import logging
import uuid
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as arrow_csv
import pyarrow.parquet as pq
import pytest

from omconnect.connectors.api import ConfigError, ConnectorError, RetriableError
from omconnect.connectors.files._file_store import OpenFile
from omconnect.connectors.files._s3_objects import S3_READ_AHEAD_BYTES
from omconnect.runtime.testing import (
    MemoryOffsetReader,
    SourceDriver,
    source_test_class,
    standard_rows,
)
from tests.connectors.files.test_file_changes import ids, poll_until, run
from tests.support.file_conformance import WRITERS
from tests.support.omconnect_process import omconnect
from tests.support.s3_server import S3Server

_SERVER: dict[str, Any] = {}


@pytest.fixture(autouse=True)
def _conformance_server(s3_server: S3Server) -> None:
    """The conformance class's callables take only a directory: they find the server here."""
    if _SERVER.get("server") is not s3_server:
        _SERVER.update(server=s3_server, bucket=s3_server.bucket())


def _prefix_of(root: Path) -> str:
    """The key prefix standing for a conformance test's fresh directory ``root``."""
    return f"{root.parent.name}-{uuid.uuid5(uuid.NAMESPACE_URL, str(root)).hex[:8]}"


def _conformance_config(root: Path) -> dict[str, Any]:
    server: S3Server = _SERVER["server"]
    path = f"s3://{_SERVER['bucket']}/{_prefix_of(root)}/*.csv"
    return {"path": path, "s3": server.options()}


def _conformance_write(root: Path, rows: pa.Table) -> None:
    """Write the rows as the next CSV file of ``root`` and upload it under its prefix."""
    before = set(root.iterdir())
    WRITERS["csv"](root, rows)
    (written,) = set(root.iterdir()) - before
    key = f"{_prefix_of(root)}/{written.name}"
    _SERVER["server"].client().upload_file(str(written), _SERVER["bucket"], key)


TestCsvSourceOverS3 = source_test_class(
    "csv",
    make_config=_conformance_config,
    write_rows=_conformance_write,
    offset_order=lambda offset: offset["row"],
)


def put(server: S3Server, bucket: str, key: str, body: bytes) -> None:
    server.client().put_object(Bucket=bucket, Key=key, Body=body)


def encoded(fmt: str, rows: pa.Table, tmp_path: Path) -> bytes:
    """``rows`` as one file of format ``fmt`` (written by the test writers)."""
    directory = tmp_path / f"encode-{uuid.uuid4().hex[:8]}"
    directory.mkdir()
    WRITERS[fmt](directory, rows)
    (written,) = directory.iterdir()
    return written.read_bytes()


def config(server: S3Server, path: str, **options: Any) -> dict[str, Any]:
    return {"path": path, "s3": server.options(), **options}


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet", "avro"])
def test_each_format_is_read_from_s3_with_s3_partition_names(
    s3_server: S3Server, s3_bucket: str, tmp_path: Path, fmt: str
) -> None:
    put(s3_server, s3_bucket, f"in/a.{fmt}", encoded(fmt, standard_rows(0, 300), tmp_path))
    put(s3_server, s3_bucket, f"in/b.{fmt}", encoded(fmt, standard_rows(300, 200), tmp_path))
    batches = SourceDriver(
        fmt, config(s3_server, f"s3://{s3_bucket}/in/", batch_size=128)
    ).read_to_end()
    assert sorted(ids(batches)) == list(range(500))
    partitions = {m.position.partition["file"] for b in batches for m in b.marks}
    assert partitions == {f"s3://{s3_bucket}/in/a.{fmt}", f"s3://{s3_bucket}/in/b.{fmt}"}
    last = batches[-1].marks[-1].position.offset
    assert last["etag"] and last["row"] == 200
    if fmt != "avro":  # an Avro file names its records itself
        assert batches[0].schema.name == "in"


def test_globs_prefixes_and_single_objects_name_what_local_paths_name(
    s3_server: S3Server, s3_bucket: str
) -> None:
    keys = [
        "data/a.csv",
        "data/b.txt",
        "data/.hidden.csv",
        "data/sub/c.csv",
        "data/sub/deeper/d.csv",
        "data/sub/.tmp/e.csv",
        "database/x.csv",
    ]
    for number, key in enumerate(keys):
        put(s3_server, s3_bucket, key, f"id\n{number}\n".encode())

    def names(path: str) -> list[str]:
        batches = SourceDriver("csv", config(s3_server, f"s3://{s3_bucket}/{path}")).read_to_end()
        prefix = f"s3://{s3_bucket}/"
        return sorted(
            {m.position.partition["file"][len(prefix) :] for b in batches for m in b.marks}
        )

    assert names("data/") == ["data/a.csv", "data/b.txt"]
    assert names("data") == ["data/a.csv", "data/b.txt"]
    assert names("data/*.csv") == ["data/a.csv"]
    assert names("data/**/*.csv") == [
        "data/a.csv",
        "data/sub/c.csv",
        "data/sub/deeper/d.csv",
    ]
    assert names("data/*/*.csv") == ["data/sub/c.csv"]
    assert names("data/sub/deeper/d.csv") == ["data/sub/deeper/d.csv"]
    assert names("dat?base/[wx].csv") == ["database/x.csv"]
    assert names("nothing/") == []


def test_new_objects_are_read_by_the_next_run_and_nothing_twice(
    s3_server: S3Server, s3_bucket: str
) -> None:
    options = config(s3_server, f"s3://{s3_bucket}/in/*.csv", batch_size=7)
    offsets = MemoryOffsetReader()
    put(s3_server, s3_bucket, "in/1.csv", _csv(0, 20))
    assert ids(run("csv", options, offsets)[0]) == list(range(20))
    put(s3_server, s3_bucket, "in/2.csv", _csv(20, 5))
    assert ids(run("csv", options, offsets)[0]) == list(range(20, 25))
    assert run("csv", options, offsets)[0] == []


def test_continuous_mode_picks_up_new_objects_each_poll_interval(
    s3_server: S3Server, s3_bucket: str
) -> None:
    options = config(s3_server, f"s3://{s3_bucket}/in/", poll_interval=0.05)
    put(s3_server, s3_bucket, "in/1.csv", _csv(0, 5))
    source = SourceDriver("csv", options, once=False)
    seen = ids(poll_until(source, 5))
    put(s3_server, s3_bucket, "in/2.csv", _csv(5, 3))
    seen += ids(poll_until(source, 3))
    source.stop()
    assert seen == list(range(8))


def test_a_stopped_read_resumes_inside_the_object_by_key_etag_and_row(
    s3_server: S3Server, s3_bucket: str
) -> None:
    put(s3_server, s3_bucket, "in/a.jsonl", _jsonl(0, 100))
    options = config(s3_server, f"s3://{s3_bucket}/in/", batch_size=10)
    offsets = MemoryOffsetReader()
    first = SourceDriver("jsonl", options, offsets)
    delivered = []
    for _ in range(3):
        for batch in first.poll() or []:
            delivered.append(batch)
            first.commit(batch.positions)
    first.stop()
    committed = delivered[-1].marks[-1].position.offset
    assert committed["row"] == 30 and committed["etag"]
    rest = run("jsonl", options, offsets)[0]
    assert ids(delivered) + ids(rest) == list(range(100))


@pytest.mark.parametrize(
    ("policy", "expected"),
    [("reread", list(range(100, 110))), ("skip", []), ("fail", None)],
)
@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_a_replaced_object_follows_on_file_change(
    s3_server: S3Server,
    s3_bucket: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    fmt: str,
    policy: str,
    expected: list[int] | None,
) -> None:
    """The same key with new content (a new ETag) is a replaced file, even when the new
    content starts with the bytes read before (a CSV object uploaded again, grown)."""
    key = f"in/a.{fmt}"
    put(s3_server, s3_bucket, key, encoded(fmt, standard_rows(0, 10), tmp_path))
    options = config(s3_server, f"s3://{s3_bucket}/in/", on_file_change=policy)
    offsets = MemoryOffsetReader()
    assert ids(run(fmt, options, offsets)[0]) == list(range(10))
    put(s3_server, s3_bucket, key, encoded(fmt, standard_rows(100, 10), tmp_path))
    if expected is None:
        with pytest.raises(ConnectorError, match=r"in/a\..*ETag changed.*on_file_change is fail"):
            run(fmt, options, offsets)
        return
    with caplog.at_level(logging.WARNING):
        assert ids(run(fmt, options, offsets)[0]) == expected
    assert any("ETag changed" in r.getMessage() for r in caplog.records)
    assert run(fmt, options, offsets)[0] == []


def test_an_object_uploaded_again_with_rows_appended_is_replaced_not_grown(
    s3_server: S3Server, s3_bucket: str
) -> None:
    put(s3_server, s3_bucket, "in/a.csv", _csv(0, 10))
    options = config(s3_server, f"s3://{s3_bucket}/in/")
    offsets = MemoryOffsetReader()
    run("csv", options, offsets)
    put(s3_server, s3_bucket, "in/a.csv", _csv(0, 12))
    assert ids(run("csv", options, offsets)[0]) == list(range(12))


def test_a_last_line_without_a_line_break_is_read_at_once(
    s3_server: S3Server, s3_bucket: str
) -> None:
    """Objects appear whole: nobody is still writing the last line."""
    put(s3_server, s3_bucket, "in/a.csv", b"id\n1\n2")
    options = config(s3_server, f"s3://{s3_bucket}/in/")
    offsets = MemoryOffsetReader()
    assert ids(run("csv", options, offsets)[0]) == [1, 2]
    assert run("csv", options, offsets)[0] == []


def test_an_unparsable_object_goes_to_the_dead_letter_topic_and_the_rest_flows(
    s3_server: S3Server, s3_bucket: str, tmp_path: Path
) -> None:
    put(s3_server, s3_bucket, "in/a.parquet", b"PAR1 this is no parquet file")
    put(s3_server, s3_bucket, "in/b.parquet", encoded("parquet", standard_rows(0, 5), tmp_path))
    source = SourceDriver("parquet", config(s3_server, f"s3://{s3_bucket}/in/"))
    assert ids(source.read_to_end()) == list(range(5))
    (report,) = source.errors.raw_reports
    assert f"s3://{s3_bucket}/in/a.parquet" in str(report)


def test_a_large_object_is_read_in_bounded_ranges(
    s3_server: S3Server, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 40 MB object is read in reads of at most a block (4 MiB), served from ranged GETs of
    16 MiB each, and every row arrives: the object is never held whole."""
    rows = 1_000_000
    table = pa.table(
        {
            "id": pa.array(range(rows), pa.int64()),
            "name": pa.array([f"name-{i:08d}-padding-text" for i in range(rows)]),
        }
    )
    sink = io.BytesIO()
    arrow_csv.write_csv(table, sink)
    body = sink.getvalue()
    assert len(body) > 35_000_000
    put(s3_server, s3_bucket, "big/a.csv", body)
    reads: list[int] = []
    read_at = OpenFile.read_at

    def counted(self: OpenFile, start: int, size: int) -> bytes:
        data = read_at(self, start, size)
        reads.append(len(data))
        return data

    monkeypatch.setattr(OpenFile, "read_at", counted)
    gets: list[int] = []
    opened = OpenFile.__init__

    def counting_gets(self: OpenFile, stored: Any, native: Any, read_ahead: int = 0) -> None:
        opened(self, stored, _CountedReads(native, gets), read_ahead)

    monkeypatch.setattr(OpenFile, "__init__", counting_gets)
    source = SourceDriver("csv", config(s3_server, f"s3://{s3_bucket}/big/", batch_size=65_536))
    count = 0
    last_id = -1
    while (polled := source.poll()) is not None:
        for batch in polled:
            column = batch.values.column("id")
            count += batch.num_rows
            if batch.num_rows:
                assert column[0].as_py() == last_id + 1
                last_id = column[-1].as_py()
    source.stop()
    assert count == rows
    assert max(reads) <= 4 << 20
    assert sum(reads) < 2 * len(body)
    assert len(reads) >= len(body) // (4 << 20)
    assert max(gets) == S3_READ_AHEAD_BYTES == 16 << 20
    assert len(gets) <= len(body) // S3_READ_AHEAD_BYTES + 4 < len(reads)


class _CountedReads:
    """A pyarrow file whose positional reads (each a ranged GET on S3) are counted."""

    def __init__(self, native: Any, sizes: list[int]) -> None:
        self._native = native
        self._sizes = sizes

    def read_at(self, size: int, start: int) -> bytes:
        self._sizes.append(size)
        return self._native.read_at(size, start)  # type: ignore[no-any-return]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._native, name)


def test_omconnect_run_once_moves_an_s3_prefix_to_local_parquet(
    s3_server: S3Server, s3_bucket: str, tmp_path: Path
) -> None:
    for part in range(3):
        put(s3_server, s3_bucket, f"orders/part-{part}.csv", _csv(part * 1000, 1000))
    put(s3_server, s3_bucket, "orders/nested/ignored.csv", _csv(9000, 5))
    pipeline = {
        "name": f"s3-orders-{uuid.uuid4().hex[:6]}",
        "source": {
            "connector": "csv",
            "path": f"s3://{s3_bucket}/orders/",
            "s3": s3_server.options(),
            "batch_size": 400,
        },
        "topic": "orders",
        "sink": {"connector": "parquet", "path": "out/"},
    }
    (tmp_path / "p.yaml").write_text(json.dumps(pipeline))
    result = omconnect("run", "p.yaml", "--once", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    table = pa.concat_tables(
        pq.read_table(p) for p in sorted((tmp_path / "out").rglob("*.parquet"))
    )
    assert sorted(table.column("id").to_pylist()) == list(range(3000))
    again = omconnect("run", "p.yaml", "--once", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    files = sorted((tmp_path / "out").rglob("*.parquet"))
    assert sum(pq.read_metadata(p).num_rows for p in files) == 3000


def test_a_bucket_that_does_not_exist_is_a_config_error(s3_server: S3Server) -> None:
    path = f"s3://omct-missing-{uuid.uuid4().hex[:8]}/in/"
    with pytest.raises(ConfigError, match="does not exist") as raised:
        SourceDriver("csv", config(s3_server, path))
    assert raised.value.key == "path"
    _one_clear_line(raised.value, path)


def test_s3_options_with_a_local_path_are_a_config_error(
    s3_server: S3Server, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match="is local") as raised:
        SourceDriver("csv", config(s3_server, str(tmp_path)))
    assert raised.value.key == "s3"


def test_an_unreachable_endpoint_is_retried_with_one_clear_line(
    s3_server: S3Server, s3_bucket: str
) -> None:
    options = {**s3_server.options(), "endpoint_url": "http://127.0.0.1:9"}
    path = f"s3://{s3_bucket}/in/"
    with pytest.raises(RetriableError, match="cannot reach the S3 endpoint") as raised:
        SourceDriver("csv", {"path": path, "s3": options})
    _one_clear_line(raised.value, path)
    assert "s3.endpoint_url" in str(raised.value)


@pytest.mark.parametrize("what", ["unknown key", "wrong secret", "no permission"])
def test_refused_credentials_and_denied_access_are_config_errors(
    s3_server: S3Server, s3_bucket: str, what: str
) -> None:
    put(s3_server, s3_bucket, "in/a.csv", _csv(0, 3))
    if what == "no permission":
        key_id, secret = s3_server.iam_user()
        expected = ("access denied", "s3")
    elif what == "wrong secret":
        key_id, _ = s3_server.iam_user(_ALLOW_ALL)
        secret = "not-the-secret-0123456789"
        expected = ("signature does not match", "s3.secret_access_key")
    else:
        key_id, secret = "AKIAOMCONNECTUNKNOWN", "not-the-secret-0123456789"
        expected = ("access key id is not known", "s3.access_key_id")
    options = {**s3_server.options(), "access_key_id": key_id, "secret_access_key": secret}
    path = f"s3://{s3_bucket}/in/"
    with s3_server.enforcing_auth(), pytest.raises(ConfigError) as raised:
        SourceDriver("csv", {"path": path, "s3": options})
    assert expected[0] in str(raised.value)
    assert raised.value.key == expected[1]
    _one_clear_line(raised.value, path)
    assert secret not in str(raised.value)


def test_a_user_allowed_to_read_reads_under_enforced_auth(
    s3_server: S3Server, s3_bucket: str
) -> None:
    put(s3_server, s3_bucket, "in/a.csv", _csv(0, 3))
    key_id, secret = s3_server.iam_user(_ALLOW_ALL)
    options = {**s3_server.options(), "access_key_id": key_id, "secret_access_key": secret}
    with s3_server.enforcing_auth():
        batches = SourceDriver(
            "csv", {"path": f"s3://{s3_bucket}/in/", "s3": options}
        ).read_to_end()
    assert ids(batches) == [0, 1, 2]


def test_the_cli_reports_a_missing_bucket_in_one_line_without_secrets(
    s3_server: S3Server, tmp_path: Path
) -> None:
    bucket = f"omct-missing-{uuid.uuid4().hex[:8]}"
    pipeline = {
        "name": "s3-missing",
        "source": {"connector": "csv", "path": f"s3://{bucket}/in/", "s3": s3_server.options()},
        "sink": {"connector": "parquet", "path": "out/"},
    }
    (tmp_path / "p.yaml").write_text(json.dumps(pipeline))
    result = omconnect("run", "p.yaml", "--once", cwd=tmp_path)
    assert result.returncode != 0
    assert f"s3://{bucket}/in/" in result.stderr and "does not exist" in result.stderr
    assert "Traceback" not in result.stderr
    assert s3_server.options()["secret_access_key"] not in result.stderr + result.stdout


_ALLOW_ALL = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
}


def _one_clear_line(error: BaseException, path: str) -> None:
    text = str(error)
    assert "\n" not in text and path in text and "check" in text, text


def _csv(first: int, count: int) -> bytes:
    return ("id,name\n" + "".join(f"{i},n{i}\n" for i in range(first, first + count))).encode()


def _jsonl(first: int, count: int) -> bytes:
    lines = (json.dumps({"id": i, "name": f"n{i}"}) for i in range(first, first + count))
    return "".join(f"{line}\n" for line in lines).encode()

"""The ``opcua`` source against a real asyncua server in a process of its own
(tests/support/opcua_server.py): data changes by node id and by browse path with their
timestamps and status codes, the type mapping, clear errors for missing nodes, refused
identities and unreachable servers, a server restart in the middle of a run, and the example
pipeline run by ``omconnect run``."""

from __future__ import annotations

import datetime as dt
import logging
import shutil
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from omconnect.connectors.api import ConfigError, RecordBatch, RetriableError
from omconnect.runtime.testing import SourceConnectorTests, SourceDriver
from tests.support.local_servers import free_port
from tests.support.omconnect_process import REPO, omconnect, spawn_omconnect, tail_topic
from tests.support.opcua_server import OpcuaServerProcess, client_certificate, node_id

PIPELINE = REPO / "pipelines" / "opcua-to-topic.yaml"
LINE1_NODES = [node_id(name) for name in ("Temp", "Count", "Running", "Name")]
ARRIVAL = 20.0
"""The seconds a test waits for data changes before it fails."""
SAMPLED = dt.datetime(2025, 1, 2, 3, 4, 5, 678901, tzinfo=dt.UTC)
"""The source timestamp the tests' writes carry, as a device's would."""

Rows = list[dict[str, Any]]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpcuaServerProcess]:
    """The module's server."""
    process = OpcuaServerProcess(tmp_path_factory.mktemp("opcua"))
    process.start()
    yield process
    process.stop()


class Collected:
    """What a continuously running source task polled, kept across waits."""

    def __init__(self, source: SourceDriver) -> None:
        self.source = source
        self.batches: list[RecordBatch] = []
        self.rows: Rows = []

    def until(self, done: Callable[[Rows], bool]) -> Rows:
        """Poll until ``done(every row so far)``; fails after ``ARRIVAL`` seconds."""
        deadline = time.monotonic() + ARRIVAL
        while not done(self.rows):
            assert time.monotonic() < deadline, f"not there after {ARRIVAL:g}s: {self.rows}"
            for batch in self.source.poll() or []:
                self.batches.append(batch)
                self.rows.extend(batch.values.to_pylist())
        return self.rows


def _has(**wanted: Any) -> Callable[[Rows], bool]:
    return lambda rows: any(all(row[k] == v for k, v in wanted.items()) for row in rows)


def _current_values(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Node id -> the row of its current value, as ``run --once`` reads them."""
    source = SourceDriver("opcua", config, once=True)
    try:
        return {
            row["node_id"]: row
            for batch in source.read_to_end()
            for row in batch.values.to_pylist()
        }
    finally:
        source.stop()


def test_changes_arrive_by_node_id_and_by_browse_path_with_timestamps_and_status(
    server: OpcuaServerProcess,
) -> None:
    config = {
        "url": server.url,
        "nodes": [
            {"node": node_id("Temp"), "name": "temperature"},
            "0:Objects/2:Plant/2:Line1/2:Count",
        ],
        "publishing_interval": 100,
    }
    source = SourceDriver("opcua", config, once=False)
    collected = Collected(source)
    try:
        # A new subscription delivers every node's current value first.
        collected.until(lambda rows: len({r["node_id"] for r in rows}) == 2)
        server.write_values({node_id("Temp"): 31.5, node_id("Count"): 7}, SAMPLED)
        collected.until(lambda rows: _has(value_double=31.5)(rows) and _has(value_int=7)(rows))
    finally:
        source.stop()
    changed = {r["node_id"]: r for r in collected.rows if r["source_timestamp"] == SAMPLED}
    temp, count = changed["ns=2;s=Line1.Temp"], changed["ns=2;i=3"]
    assert (temp["name"], temp["data_type"], temp["value_double"]) == (
        "temperature",
        "Double",
        31.5,
    )
    assert (count["name"], count["data_type"], count["value_int"]) == ("Count", "Int32", 7)
    for row in (temp, count):
        assert row["server_timestamp"] is not None and row["server_timestamp"] > SAMPLED
        assert (row["status_code"], row["status"]) == (0, "Good")
    received = []
    for batch in collected.batches:
        assert batch.schema.key_fields == ("node_id",)
        # One mark per batch: when its last change arrived, nothing to resume from.
        [mark] = batch.marks
        assert (mark.end_row, dict(mark.position.partition)) == (
            batch.num_rows,
            {"server": server.url},
        )
        received.append(mark.position.offset["received_us"])
        assert batch.timestamps is not None
        for row, stamp in zip(batch.values.to_pylist(), batch.timestamps.to_pylist(), strict=True):
            if row["source_timestamp"] == SAMPLED:  # the record's time: the source timestamp
                assert stamp == int(SAMPLED.timestamp() * 1000)
    assert received == sorted(set(received))


def test_status_codes_and_missing_source_timestamps_are_kept(server: OpcuaServerProcess) -> None:
    config = {"url": server.url, "nodes": [node_id("Running")], "publishing_interval": 100}
    source = SourceDriver("opcua", config, once=False)
    collected = Collected(source)
    try:
        collected.until(lambda rows: len(rows) >= 1)
        server.write_values({node_id("Running"): True}, status="UncertainLastUsableValue")
        rows = collected.until(_has(value_boolean=True))
    finally:
        source.stop()
    [row] = [r for r in rows if r["value_boolean"] is True]
    assert row["status"] == "UncertainLastUsableValue"
    assert row["status_code"] == 0x40900000
    assert row["source_timestamp"] is None and row["server_timestamp"] is not None
    stamps = [s for b in collected.batches for s in b.timestamps.to_pylist()]  # type: ignore[union-attr]
    assert stamps[-1] == int(row["server_timestamp"].timestamp() * 1000)


@pytest.mark.parametrize(
    ("name", "data_type", "column", "value"),
    [
        ("Boolean", "Boolean", "value_boolean", True),
        ("SByte", "SByte", "value_int", -8),
        ("Byte", "Byte", "value_int", 200),
        ("Int16", "Int16", "value_int", -1600),
        ("UInt16", "UInt16", "value_int", 65_000),
        ("Int32", "Int32", "value_int", -2_000_000_000),
        ("UInt32", "UInt32", "value_int", 4_000_000_000),
        ("Int64", "Int64", "value_int", -(2**62)),
        ("UInt64", "UInt64", "value_int", 2**63 - 1),
        ("Float", "Float", "value_double", 1.5),
        ("Double", "Double", "value_double", 2.25),
        ("String", "String", "value_string", "héllo"),
        ("DateTime", "DateTime", "value_timestamp", dt.datetime(2024, 5, 6, 7, 8, 9, 123456)),
        ("ByteString", "ByteString", "value_bytes", b"\x00\xff"),
        # What no column holds is text in value_string (with a warning).
        ("LocalizedText", "LocalizedText", "value_string", "warm"),
        ("Guid", "Guid", "value_string", "12345678-1234-5678-1234-567812345678"),
        ("DoubleArray", "Double[]", "value_string", "[1.0, 2.5]"),
    ],
)
def test_each_built_in_type_has_its_column(
    server: OpcuaServerProcess, name: str, data_type: str, column: str, value: Any
) -> None:
    text = f"ns=2;s=Types.{name}"
    row = _current_values({"url": server.url, "nodes": [text]})[text]
    if isinstance(value, dt.datetime):
        value = value.replace(tzinfo=dt.UTC)
    assert (row["data_type"], row[column]) == (data_type, value)
    others = [c for c in row if c.startswith("value_") and c != column]
    assert all(row[c] is None for c in others), row


def test_types_without_a_column_are_text_with_one_warning_per_node(
    server: OpcuaServerProcess, caplog: pytest.LogCaptureFixture
) -> None:
    nodes = ["ns=2;s=Types.LocalizedText", "ns=2;s=Types.DoubleArray"]
    config = {"url": server.url, "nodes": nodes, "publishing_interval": 100}
    source = SourceDriver("opcua", config, once=False)
    collected = Collected(source)
    with caplog.at_level(logging.WARNING, logger="omconnect.opcua"):
        try:
            collected.until(lambda rows: len(rows) >= 2)
            server.write_values({nodes[0]: _localized("cold")}, SAMPLED)
            collected.until(_has(value_string="cold"))
        finally:
            source.stop()
    warnings = [r.getMessage() for r in caplog.records if "value_string" in r.getMessage()]
    assert len(warnings) == 2, warnings
    assert any("LocalizedText" in w for w in warnings)
    assert any("Double array" in w for w in warnings)


def test_a_uint64_beyond_int64_is_text(server: OpcuaServerProcess) -> None:
    text = "ns=2;s=Types.UInt64"
    server.write_values({text: 2**64 - 1}, SAMPLED)
    try:
        row = _current_values({"url": server.url, "nodes": [text]})[text]
    finally:
        server.write_values({text: 2**63 - 1}, SAMPLED)
    assert (row["value_int"], row["value_string"]) == (None, str(2**64 - 1))


@pytest.mark.parametrize(
    ("node", "message"),
    [
        ("ns=2;s=Line1.Nope", 'node "ns=2;s=Line1.Nope" does not exist on the OPC-UA server'),
        ("ns=2;i=999", 'node "ns=2;i=999" does not exist'),
        (
            "0:Objects/2:Plant/2:Line2/2:Temp",
            'no "2:Line2" under "0:Objects/2:Plant"',
        ),
        ("0:Objects/2:Plant", "is object, not a variable"),
        ("nsu=urn:nowhere;s=Temp", "the server has no namespace 'urn:nowhere'"),
    ],
)
def test_a_node_that_is_not_there_is_a_clear_config_error(
    server: OpcuaServerProcess, node: str, message: str
) -> None:
    config = {"url": server.url, "nodes": [node_id("Temp"), node]}
    with pytest.raises(ConfigError, match=message) as refused:
        SourceDriver("opcua", config)
    assert refused.value.key == "nodes[1].node"


def test_an_unreachable_server_says_what_was_tried_and_what_to_check(
    caplog: pytest.LogCaptureFixture,
) -> None:
    port = free_port()
    url = f"opc.tcp://127.0.0.1:{port}/omconnect/"
    config = {"url": url, "nodes": LINE1_NODES, "timeout": 2}
    # validate() lets a server that is down now pass (it may come up); start() retries.
    with pytest.raises(RetriableError) as unreachable:
        SourceDriver("opcua", config)
    message = str(unreachable.value)
    assert f"could not connect to the OPC-UA server at {url} (connection refused)" in message
    assert f"check that the server runs and listens on 127.0.0.1:{port}" in message


def test_the_source_resubscribes_after_the_server_restarts(tmp_path: Path) -> None:
    private = OpcuaServerProcess(tmp_path / "server")
    private.start()
    config = {
        "url": private.url,
        "nodes": LINE1_NODES,
        "publishing_interval": 100,
        "reconnect_max_delay": 1,
    }
    source = SourceDriver("opcua", config, once=False)
    collected = Collected(source)
    try:
        collected.until(lambda rows: len(rows) >= 4)
        private.kill()
        for _ in range(3):  # polls go on, returning nothing, while the server is away
            assert source.poll() is None
        assert source.longest_poll < 5
        private.start()
        private.write_values({node_id("Count"): 42}, SAMPLED)
        collected.until(_has(value_int=42, source_timestamp=SAMPLED))
        private.write_values({node_id("Name"): "after the restart"}, SAMPLED)
        collected.until(_has(value_string="after the restart"))
    finally:
        source.stop()
        private.stop()


def test_a_secure_server_with_users(tmp_path: Path) -> None:
    """Basic256Sha256 SignAndEncrypt with a client certificate, and a user name identity;
    a wrong password and a policy the server does not offer are config errors."""
    secure = OpcuaServerProcess(tmp_path / "server", secure=True, users={"operator": "s3cret"})
    secure.start()
    certificate, key = client_certificate(tmp_path)
    config = {
        "url": secure.url,
        "nodes": [node_id("Temp")],
        "security_policy": "Basic256Sha256",
        "security_mode": "SignAndEncrypt",
        "certificate": str(certificate),
        "private_key": str(key),
        "username": "operator",
        "password": "s3cret",
    }
    try:
        rows = _current_values(config)
        assert rows[node_id("Temp")]["data_type"] == "Double"
        with pytest.raises(ConfigError, match="refused the user 'operator'") as refused:
            SourceDriver("opcua", {**config, "password": "wrong"})
        assert refused.value.key == "username" and "wrong" not in str(refused.value)
        plain = {"url": secure.url, "nodes": [node_id("Temp")], "username": "operator"}
        with pytest.raises(ConfigError) as insecure:
            SourceDriver("opcua", {**plain, "password": "s3cret"})
        assert insecure.value.key == "security_policy"
    finally:
        secure.stop()


def test_missing_certificate_files_and_credentials_in_the_url_are_refused(
    server: OpcuaServerProcess, tmp_path: Path
) -> None:
    config = {
        "url": server.url,
        "nodes": LINE1_NODES,
        "security_policy": "Basic256Sha256",
        "certificate": str(tmp_path / "nope.der"),
        "private_key": str(tmp_path / "nope.pem"),
    }
    with pytest.raises(ConfigError, match="is not a file") as missing:
        SourceDriver("opcua", config)
    assert missing.value.key == "certificate"
    with pytest.raises(ValueError, match="needs `certificate` and `private_key`"):
        SourceDriver("opcua", {**config, "certificate": None})
    with pytest.raises(ValueError, match="not in the URL"):
        SourceDriver("opcua", {"url": "opc.tcp://me:pw@localhost:4840/", "nodes": ["i=2258"]})


def _localized(text: str) -> Any:
    from asyncua import ua

    return ua.LocalizedText(text, "en")


# -- the example pipeline, run by the real omconnect command ----------------------------------


@pytest.fixture
def pipeline_copy(tmp_path: Path) -> Path:
    (tmp_path / "pipelines").mkdir()
    shutil.copy(PIPELINE, tmp_path / "pipelines" / PIPELINE.name)
    return tmp_path


def test_the_example_pipeline_delivers_current_values_and_changes(
    server: OpcuaServerProcess, pipeline_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPCUA_URL", server.url)
    relative = f"pipelines/{PIPELINE.name}"
    checked = omconnect("validate", relative, cwd=pipeline_copy)
    assert checked.returncode == 0, checked.stderr
    once = omconnect("run", relative, "--once", cwd=pipeline_copy)
    assert once.returncode == 0, once.stderr
    current = tail_topic("plant-telemetry", pipeline_copy)
    names = sorted(message["value"]["name"] for message in current)
    assert names == ["Name", "count", "running", "temperature"]
    assert all(message["key"]["node_id"] == message["value"]["node_id"] for message in current)

    running = spawn_omconnect("run", relative, cwd=pipeline_copy)
    try:
        deadline = time.monotonic() + ARRIVAL
        while len(tail_topic("plant-telemetry", pipeline_copy)) < 2 * len(current):
            assert running.poll() is None, running.communicate()[1]
            assert time.monotonic() < deadline, "the running pipeline delivered no values"
            time.sleep(0.2)
        server.write_values({node_id("Temp"): 77.25}, SAMPLED)
        while not any(
            m["value"]["value_double"] == 77.25
            for m in tail_topic("plant-telemetry", pipeline_copy)
        ):
            assert time.monotonic() < deadline, "the change never reached the topic"
            time.sleep(0.2)
    finally:
        running.send_signal(signal.SIGINT)
        _, stderr = running.communicate(timeout=60)
    assert running.returncode == 0, stderr


def test_an_unreachable_server_fails_the_run_with_one_clear_line(pipeline_copy: Path) -> None:
    url = f"opc.tcp://127.0.0.1:{free_port()}/omconnect/"
    pipeline = pipeline_copy / "pipelines" / PIPELINE.name
    pipeline.write_text(pipeline.read_text() + "errors:\n  retry_timeout: 1\n")
    ran = omconnect(
        "run", f"pipelines/{PIPELINE.name}", "--once", cwd=pipeline_copy, env={"OPCUA_URL": url}
    )
    assert ran.returncode == 1
    failed = [line for line in ran.stderr.splitlines() if "failed:" in line]
    assert len(failed) == 1, ran.stderr
    assert f"could not connect to the OPC-UA server at {url}" in failed[0]


# -- the conformance kit ----------------------------------------------------------------------


# The kit's spec tests and, the source having no resumable positions (``resumable = False``),
# its live tests against the module's server.
class TestOpcuaSource(SourceConnectorTests):
    connector = "opcua"

    @pytest.fixture(autouse=True)
    def _server(self, server: OpcuaServerProcess) -> None:
        self.url = server.url

    def make_config(self, root: Path) -> dict[str, Any]:
        return {"url": self.url, "nodes": LINE1_NODES, "publishing_interval": 100}

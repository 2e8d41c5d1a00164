"""The ``modbus`` source against a real Modbus TCP server (tests/support/modbus_server.py):
values the test writes are read back exactly in every type, byte and word order; adjacent
fields share requests; refusals, lost and unreachable servers give clear errors and polling
resumes; the example pipeline runs under ``omconnect run``."""

from __future__ import annotations

import math
import shutil
import signal
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pymodbus.constants import ExcCodes

from omconnect.connectors.api import (
    ConfigError,
    ConnectorError,
    RecordBatch,
    RetriableError,
    lookup,
)
from omconnect.runtime.testing import SourceConnectorTests, SourceDriver
from tests.support.local_servers import free_port
from tests.support.modbus_server import ModbusTestServer, Request
from tests.support.omconnect_process import REPO, omconnect, spawn_omconnect, tail_topic

EXAMPLE = "pipelines/modbus-to-topic.yaml"

# type -> (struct format, a value at the edge of its range, exact in the type)
VALUES: dict[str, tuple[str, Any]] = {
    "int16": ("h", -32_768),
    "uint16": ("H", 65_535),
    "int32": ("i", -2_147_483_000),
    "uint32": ("I", 4_000_000_001),
    "int64": ("q", -9_000_000_000_000_000_123),
    "uint64": ("Q", 18_000_000_000_000_000_123),
    "float32": ("f", -1234.5625),
    "float64": ("d", math.pi),
}
ORDERS = [("big", "big"), ("big", "little"), ("little", "big"), ("little", "little")]


@pytest.fixture
def server() -> Iterator[ModbusTestServer]:
    with ModbusTestServer() as started:
        yield started


def device_words(fmt: str, value: Any, byte_order: str, word_order: str) -> list[int]:
    """The registers a device in those orders holds ``value`` in (written independently of
    the connector: struct, then the orders applied to the big-endian words)."""
    raw = struct.pack(f">{fmt}", value)
    words = [raw[i : i + 2] for i in range(0, len(raw), 2)]
    if word_order == "little":
        words.reverse()
    if byte_order == "little":
        words = [word[::-1] for word in words]
    return [int.from_bytes(word, "big") for word in words]


def read_once(config: dict[str, Any]) -> dict[str, Any]:
    """The one record of a ``--once`` run, as a dict."""
    source = SourceDriver("modbus", config)
    try:
        batches = source.read_to_end()
    finally:
        source.stop()
    [row] = [row for batch in batches for row in batch.values.to_pylist()]
    return row


def test_every_type_is_read_exactly_in_every_byte_and_word_order(
    server: ModbusTestServer,
) -> None:
    registers = []
    expected = {}
    address = 0
    for type_name, (fmt, value) in VALUES.items():
        for byte_order, word_order in ORDERS:
            name = f"{type_name}_{byte_order}_{word_order}"
            words = device_words(fmt, value, byte_order, word_order)
            server.set_words("holding", address, words)
            registers.append(
                {
                    "name": name,
                    "address": address,
                    "type": type_name,
                    "byte_order": byte_order,
                    "word_order": word_order,
                }
            )
            expected[name] = value
            address += len(words)
    row = read_once({"url": server.url, "registers": registers})
    assert {name: row[name] for name in expected} == expected
    # 80 registers, adjacent: one request.
    assert server.reads() == [Request("holding", 0, address, 1)]


def test_types_become_the_record_schema(server: ModbusTestServer) -> None:
    registers: list[dict[str, Any]] = [
        {"name": name, "address": 4 * i, "type": name} for i, name in enumerate(VALUES)
    ]
    registers += [
        {"name": "scaled", "address": 40, "type": "int16", "scale": 2},
        {"name": "text", "address": 41, "type": "string(3)"},
        {"name": "flag", "area": "coil", "address": 0},
    ]
    source = SourceDriver("modbus", {"url": server.url, "registers": registers})
    [batch] = source.read_to_end()
    source.stop()
    types = {field.name: str(field.type) for field in batch.schema.fields}
    assert types == {
        **{name: name for name in VALUES},
        "scaled": "float64",
        "text": "string",
        "flag": "boolean",
        "time": "timestamp(UTC)",
    }
    assert not any(field.nullable for field in batch.schema.fields)


def test_scale_and_offset_make_a_float64(server: ModbusTestServer) -> None:
    server.set_value("holding", 7, -123, ">i2")
    server.set_value("input", 2, 4_000_000_000, ">u4")
    row = read_once(
        {
            "url": server.url,
            "registers": [
                {"name": "t", "address": 7, "type": "int16", "scale": 0.1, "offset": 5},
                {"name": "e", "area": "input", "address": 2, "type": "uint32", "scale": 0.001},
                {"name": "o", "address": 7, "type": "int16", "offset": 1000},
            ],
        }
    )
    assert row["t"] == -123 * 0.1 + 5
    assert row["e"] == 4_000_000_000 * 0.001
    assert row["o"] == 877.0


@pytest.mark.parametrize(
    ("byte_order", "stored"), [("big", b"Pump-7\0\0"), ("little", b"uPpm7-\0\0")]
)
def test_strings_in_either_byte_order_lose_their_trailing_nuls(
    server: ModbusTestServer, byte_order: str, stored: bytes
) -> None:
    words = [int.from_bytes(stored[i : i + 2], "big") for i in range(0, len(stored), 2)]
    server.set_words("input", 20, words)
    row = read_once(
        {
            "url": server.url,
            "registers": [
                {"name": "s", "area": "input", "address": 20, "type": "string(8)"},
                {"name": "cut", "area": "input", "address": 20, "type": "string(3)"},
            ]
            if byte_order == "big"
            else [
                {
                    "name": "s",
                    "area": "input",
                    "address": 20,
                    "type": "string(8)",
                    "byte_order": "little",
                }
            ],
        }
    )
    assert row["s"] == "Pump-7"
    if byte_order == "big":
        assert row["cut"] == "Pum"


def test_coils_and_discrete_inputs(server: ModbusTestServer) -> None:
    server.set_bits("coil", 0, [True, False, True, True])
    server.set_bits("coil", 4095, [True])
    server.set_bits("discrete", 17, [False, True])
    row = read_once(
        {
            "url": server.url,
            "registers": [
                {"name": f"c{i}", "area": "coil", "address": i, "type": "bool"} for i in range(4)
            ]
            + [
                {"name": "last", "area": "coil", "address": 4095},
                {"name": "d17", "area": "discrete", "address": 17},
                {"name": "d18", "area": "discrete", "address": 18},
            ],
        }
    )
    assert [row[f"c{i}"] for i in range(4)] == [True, False, True, True]
    assert (row["last"], row["d17"], row["d18"]) == (True, False, True)
    assert server.reads() == [
        Request("coil", 0, 4, 1),
        Request("coil", 4095, 1, 1),
        Request("discrete", 17, 2, 1),
    ]


def test_adjacent_fields_share_requests_up_to_the_protocol_limits(
    server: ModbusTestServer,
) -> None:
    """Touching or overlapping fields of one area share a request (at most 125 registers or
    2000 bits); a gap or another area starts a new one."""
    server.set_value("holding", 1, 2.5, ">f4")
    server.set_value("holding", 200, 77, ">u2")
    holding = [
        {"name": "a", "address": 0, "type": "int16"},
        {"name": "b", "address": 1, "type": "float32"},
        {"name": "b_high", "address": 1, "type": "uint16"},  # overlaps b
        {"name": "c", "address": 3, "type": "uint64"},
        {"name": "after_gap", "address": 10},
    ]
    long_run = [{"name": f"r{i}", "address": 100 + i} for i in range(130)]
    coils = [{"name": f"c{i}", "area": "coil", "address": i} for i in range(2_001)]
    row = read_once(
        {
            "url": server.url,
            "registers": [
                *holding,
                *long_run,
                {"name": "in", "area": "input", "address": 0, "type": "int32"},
                *coils,
            ],
        }
    )
    assert row["b"] == 2.5 and row["b_high"] == 0x4020 and row["r100"] == 77
    assert server.reads() == [
        Request("holding", 0, 7, 1),
        Request("holding", 10, 1, 1),
        Request("holding", 100, 125, 1),
        Request("holding", 225, 5, 1),
        Request("input", 0, 2, 1),
        Request("coil", 0, 2_000, 1),
        Request("coil", 2_000, 1, 1),
    ]


def test_a_record_per_poll_carries_its_time_and_position(server: ModbusTestServer) -> None:
    config = {
        "url": server.url,
        "unit": 3,
        "poll_interval": 0.05,
        "registers": [{"name": "v", "address": 0}],
    }
    source = SourceDriver("modbus", config, once=False)
    try:
        batches = source.poll_for(3, 20)
    finally:
        source.stop()
    assert [b.num_rows for b in batches] == [1, 1, 1]
    times = [b.values.column("time")[0].as_py() for b in batches]
    assert times == sorted(times)
    assert [b.timestamps.to_pylist() for b in batches if b.timestamps is not None] == [
        [int(t.timestamp() * 1000)] for t in times
    ]
    positions = [b.marks[0].position for b in batches]
    assert {tuple(p.partition.items()) for p in positions} == {
        (("device", f"modbus+tcp://127.0.0.1:{server.port}"), ("unit", 3))
    }
    assert len({p.offset["time"] for p in positions}) == 3
    assert {r.unit for r in server.reads()} == {3}


def test_poll_returns_none_while_the_next_poll_is_not_due(server: ModbusTestServer) -> None:
    source = SourceDriver(
        "modbus",
        {"url": server.url, "poll_interval": 60, "registers": [{"name": "v", "address": 0}]},
        once=False,
    )
    try:
        assert source.poll() is not None
        assert source.poll() is None
    finally:
        source.stop()
    assert len(server.reads()) == 1


def test_an_address_the_device_lacks_fails_naming_the_fields(server: ModbusTestServer) -> None:
    config = {
        "url": server.url,
        "registers": [
            {"name": "ok", "address": 4092, "type": "int32"},
            {"name": "too_far", "address": 4094, "type": "int32"},
            {"name": "next", "address": 4096},
        ],
    }
    with pytest.raises(ConnectorError) as caught:
        read_once(config)
    assert not isinstance(caught.value, RetriableError)
    message = str(caught.value)
    assert f"modbus 127.0.0.1:{server.port} unit 1" in message
    assert 'holding registers 4092..4096 (fields "ok", "too_far", "next")' in message
    assert "exception 2, ILLEGAL DATA ADDRESS" in message


@pytest.mark.parametrize(
    ("code", "retried"),
    [
        (ExcCodes.DEVICE_BUSY, True),
        (ExcCodes.GATEWAY_NO_RESPONSE, True),
        (ExcCodes.DEVICE_FAILURE, False),
        (ExcCodes.ILLEGAL_FUNCTION, False),
    ],
)
def test_exception_responses_are_retried_only_when_transient(
    server: ModbusTestServer, code: ExcCodes, retried: bool
) -> None:
    server.answer_exception(code)
    with pytest.raises(ConnectorError, match=f"failed with exception {int(code)}") as caught:
        read_once({"url": server.url, "registers": [{"name": "v", "address": 0}]})
    assert isinstance(caught.value, RetriableError) == retried


def test_polling_goes_on_after_the_server_restarts(server: ModbusTestServer) -> None:
    config = {"url": server.url, "poll_interval": 0.05, "registers": [{"name": "v", "address": 0}]}
    server.set_words("holding", 0, [1])
    source = SourceDriver("modbus", config, once=False)
    try:
        assert _values(source.poll_for(1, 20)) == [1]
        server.stop()
        with pytest.raises(RetriableError, match=f"modbus 127.0.0.1:{server.port} unit 1: "):
            source.poll_for(1, 20)
        server.set_words("holding", 0, [2])
        server.start()
        assert _values(_poll_retrying(source)) == [2]
    finally:
        source.stop()


def test_an_unreachable_server_is_a_retriable_error_naming_it() -> None:
    port = free_port()
    config = {"url": f"modbus+tcp://127.0.0.1:{port}", "registers": [{"name": "v", "address": 0}]}
    source = SourceDriver("modbus", config)
    try:
        with pytest.raises(
            RetriableError, match=rf"modbus 127.0.0.1:{port} unit 1: cannot connect"
        ):
            source.poll()
    finally:
        source.stop()


@pytest.mark.parametrize(
    ("register", "key", "message"),
    [
        ({"type": "string"}, "registers[1].type", r"give its length in bytes: string\(N\)"),
        ({"type": "string(251)"}, "registers[1].type", "1 to 250 bytes"),
        ({"type": "float"}, "registers[1].type", "unknown type 'float'"),
        ({"address": 65_535, "type": "int32"}, "registers[1].address", "65535..65536"),
        ({"address": 65_532, "type": "string(10)"}, "registers[1].address", "past the last"),
        ({"type": "bool"}, "registers[1].type", "bool reads a coil or discrete input"),
        ({"area": "coil", "type": "int16"}, "registers[1].type", "its type is bool"),
        ({"type": "string(4)", "scale": 2}, "registers[1].scale", "apply to numbers"),
        ({"name": "a"}, "registers[1].name", "'a'"),
        ({"name": "time"}, "registers[1].name", "'time'"),
    ],
)
def test_registers_that_can_never_be_read_are_config_errors(
    register: dict[str, Any], key: str, message: str
) -> None:
    config = {
        "url": "modbus+tcp://127.0.0.1",
        "registers": [{"name": "a", "address": 0}, {"name": "b", "address": 0, **register}],
    }
    registration = lookup("source", "modbus")
    connector = registration.cls(registration.spec.model_validate(config))
    with pytest.raises(ConfigError, match=message) as caught:
        connector.validate()
    assert caught.value.key == key


@pytest.mark.parametrize(
    "url", ["tcp://127.0.0.1:502", "modbus+tcp://", "modbus+tcp://h:port", "modbus+tcp://h/x"]
)
def test_urls_other_than_modbus_tcp_are_refused(url: str) -> None:
    spec = lookup("source", "modbus").spec
    with pytest.raises(ValueError, match="url"):
        spec.model_validate({"url": url, "registers": [{"name": "v", "address": 0}]})


def test_the_port_defaults_to_502() -> None:
    spec = lookup("source", "modbus").spec.model_validate(
        {"url": "modbus+tcp://plc.local", "registers": [{"name": "v", "address": 0}]}
    )
    assert (spec.host, spec.port) == ("plc.local", 502)


class TestModbusSource(SourceConnectorTests):
    connector = "modbus"

    @pytest.fixture(autouse=True)
    def _device(self, server: ModbusTestServer) -> None:
        server.set_value("holding", 0, 21.5, ">f4")
        self.server = server

    def make_config(self, root: Path) -> dict[str, Any]:
        return {
            "url": self.server.url,
            "poll_interval": 0.05,
            "registers": [
                {"name": "temperature", "address": 0, "type": "float32"},
                {"name": "running", "area": "coil", "address": 3},
            ],
        }


def _example_device(server: ModbusTestServer, temperature: int) -> dict[str, Any]:
    """Sets the example pipeline's registers; returns the record they make (without time)."""
    server.set_value("holding", 0, temperature, ">i2")
    server.set_value("holding", 1, 1.25, ">f4")
    server.set_words("holding", 3, [0xCD15, 0x075B])  # 123456789, low word first
    server.set_words("holding", 5, [int.from_bytes(b"SN", "big"), int.from_bytes(b"-4", "big")])
    server.set_words("holding", 7, [int.from_bytes(b"2\0", "big"), 0])
    server.set_bits("coil", 0, [True])
    return {
        "temperature": temperature * 0.1,
        "pressure": 1.25,
        "energy": 123_456_789,
        "serial": "SN-42",
        "running": True,
        "door_open": False,
    }


@pytest.fixture
def repo_copy(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "pipelines", tmp_path / "pipelines")
    return tmp_path


def test_the_example_pipeline_publishes_one_poll_under_once(
    server: ModbusTestServer, repo_copy: Path
) -> None:
    expected = _example_device(server, 215)
    env = {"MODBUS_URL": server.url}
    checked = omconnect("validate", EXAMPLE, cwd=repo_copy, env=env)
    assert checked.returncode == 0, checked.stderr
    ran = omconnect("run", EXAMPLE, "--once", cwd=repo_copy, env=env)
    assert ran.returncode == 0, ran.stderr
    [message] = tail_topic("modbus-readings", cwd=repo_copy)
    value = dict(message["value"])
    assert value.pop("time")
    assert value == expected
    assert server.reads() == [
        Request("holding", 0, 9, 1),
        Request("coil", 0, 1, 1),
        Request("discrete", 0, 1, 1),
    ]


def test_a_running_pipeline_polls_on_after_the_device_restarts(
    server: ModbusTestServer, repo_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    example = repo_copy / EXAMPLE
    example.write_text(example.read_text().replace("poll_interval: 1.0", "poll_interval: 0.1"))
    before = _example_device(server, 215)
    monkeypatch.setenv("MODBUS_URL", server.url)
    run = spawn_omconnect("run", EXAMPLE, cwd=repo_copy)
    try:
        _wait_for_polls(server, 3)
        server.stop()
        time.sleep(1)
        after = _example_device(server, -40)
        server.requests.clear()
        server.start()
        _wait_for_polls(server, 3)
        time.sleep(1)  # past the batching linger: the polls are published
    finally:
        run.send_signal(signal.SIGTERM)
        _, stderr = run.communicate(timeout=30)
    assert run.returncode == 0, stderr
    assert f"modbus 127.0.0.1:{server.port} unit 1" in stderr, "the outage was not logged"
    values = [message["value"] for message in tail_topic("modbus-readings", cwd=repo_copy)]
    for value in values:
        value.pop("time")
    firsts = [v for v in values if v == before]
    assert len(firsts) >= 3 and values[: len(firsts)] == firsts, values
    assert values[len(firsts) :] and all(v == after for v in values[len(firsts) :]), values


def _wait_for_polls(server: ModbusTestServer, polls: int, seconds: float = 60) -> None:
    """Until the server answered ``polls`` polls of the example (three reads each)."""
    deadline = time.monotonic() + seconds
    while len(server.reads()) < 3 * polls:
        assert time.monotonic() < deadline, f"{len(server.reads())} reads in {seconds}s"
        time.sleep(0.05)


def _values(batches: list[RecordBatch]) -> list[Any]:
    return [value for batch in batches for value in batch.values.column("v").to_pylist()]


def _poll_retrying(source: SourceDriver, seconds: float = 20) -> list[RecordBatch]:
    """Polls as the runtime does: a ``RetriableError`` is retried after a pause."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return source.poll_for(1, seconds)
        except RetriableError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)

"""benchmarks/mqtt_devices.py on a tiny workload against the machine's Mosquitto (or
``OMCONNECT_BENCH_MQTT``): 500 readings as fast as they go into ``omconnect run`` and into a
plain paho subscriber, then half a second at a fixed rate with both lingers; every run
verified, the results rendered, and no session left on the server."""

from __future__ import annotations

import json
import sys
import threading
from dataclasses import asdict
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
import yaml

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
# benchmarks/ is a folder of scripts that import each other by plain name, as when run.
sys.path.insert(0, str(BENCHMARKS))

import mqtt_device_clients  # noqa: E402
import mqtt_devices  # noqa: E402

MESSAGES = 500


def test_defaults_are_the_standard_workload() -> None:
    args = mqtt_devices.parse_args([])
    assert (args.messages, args.rate, args.latency_seconds) == (200_000, 2_000, 20.0)
    assert (args.warmups, args.runs, args.low_linger) == (1, 3, 0.01)
    with pytest.raises(SystemExit):
        mqtt_devices.parse_args(["--runs", "0"])


def test_the_pipeline_is_the_example_pipelines_shape() -> None:
    config = yaml.safe_load(mqtt_devices.pipeline_yaml("127.0.0.1:1883", "r1", "r1-c", 0.01))
    source = config["source"]
    assert source["connector"] == "mqtt" and source["topics"] == ["r1/+/+/telemetry"]
    assert source["topic_fields"] == "r1/{site}/{device}/telemetry"
    assert source["client_id"] == "r1-c" and config["batching"] == {"linger": 0.01}
    assert "batching" not in yaml.safe_load(mqtt_devices.pipeline_yaml("h:1", "r", "c", None))


def test_missing_readings_are_refused_duplicates_are_not() -> None:
    def read(readings: list[int]) -> dict[str, Any]:
        import numpy as np
        import oracle

        unique = sorted(set(readings))
        found = oracle.checksum_of_keys(np.array(unique, np.int64))
        return {"unique": len(unique), "checksum": asdict(found)}

    assert mqtt_devices._verify(read([1, 2, 3, 3]), 3) is None
    assert "1 of 3 readings missing" in (mqtt_devices._verify(read([1, 3]), 3) or "")


def _session_present(client_id: str) -> bool:
    """Whether the server still holds a session for ``client_id`` (connecting with clean start
    off and no expiry ends it again)."""
    present = threading.Event()
    answered = threading.Event()

    def on_connect(_c: Any, _u: Any, flags: Any, *_: Any) -> None:
        if flags.session_present:
            present.set()
        answered.set()

    host, _, port = mqtt_devices.DEFAULT_ADDRESS.rpartition(":")
    client = paho.Client(
        paho.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5
    )
    client.on_connect = on_connect
    client.connect(host, int(port), clean_start=False)
    client.loop_start()
    try:
        assert answered.wait(10), "the MQTT server did not answer"
    finally:
        client.disconnect()
        client.loop_stop()
    return present.is_set()


def test_tiny_run_streams_verifies_and_ends_its_sessions(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("# Benchmarks\n\nkept text\n")
    results_json = tmp_path / "results.json"
    exit_code = mqtt_devices.main(
        [
            *("--messages", str(MESSAGES), "--rate", "400", "--latency-seconds", "0.5"),
            *("--runs", "1", "--warmups", "0", "--work-dir", str(tmp_path / "work")),
            *("--readme", str(readme), "--json", str(results_json)),
        ]
    )
    results = json.loads(results_json.read_text())
    summary = results["summary"]
    assert exit_code == 0, {name: entry["failure"] for name, entry in summary.items()}
    for name in ("omconnect", "paho"):
        [run] = results["records"][name]
        assert run["unique"] == MESSAGES and run["messages_per_second"] > 0
        assert run["publisher"]["acknowledged"] == MESSAGES
    assert summary["omconnect"]["peak_rss_bytes"] > 10 << 20  # a Python process, measured
    assert [summary[n]["linger"] for n in ("latency-default", "latency-low")] == [None, 0.01]
    for name in ("latency-default", "latency-low"):
        entry = summary[name]
        assert entry["status"] == "verified" and entry["count"] == 200
        assert 0 < entry["lag_p50_ms"] <= entry["lag_p99_ms"] <= entry["lag_max_ms"]
    for runs in results["records"].values():
        for run in runs:
            assert not _session_present(f"{run['root']}-omconnect")
    text = readme.read_text()
    assert text.startswith("# Benchmarks\n\nkept text\n")
    assert "<!-- results:mqtt-devices:start -->" in text and "plain paho subscriber" in text
    assert results_json.with_suffix(".md").read_text().startswith("# MQTT devices")
    assert mqtt_device_clients.topic_filter("r") == "r/+/+/telemetry"

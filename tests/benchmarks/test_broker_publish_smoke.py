"""benchmarks/broker_publish.py on a tiny configuration: 2,000 records through the embedded
broker and the shared Redis, one measured round, a 1-second latency phase. Every run is
verified, the results are rendered, and nothing is left on the server.

It runs against the Redis on ``127.0.0.1:6379`` (or ``OMCONNECT_TEST_REDIS``); when nothing
answers there the test fails and says how to start one.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
# benchmarks/ is a folder of scripts that import each other by plain name, as when run.
sys.path.insert(0, str(BENCHMARKS))

import broker_publish  # noqa: E402

RECORDS = 2_000
REDIS = os.environ.get("OMCONNECT_TEST_REDIS", "127.0.0.1:6379")


def test_defaults_are_the_standard_workload() -> None:
    args = broker_publish.parse_args([])
    assert (args.records, args.warmups, args.runs) == (1_000_000, 1, 3)
    assert (args.rate, args.latency_seconds) == (5_000, 10.0)
    assert args.brokers == list(broker_publish.BROKERS)


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(SystemExit):
        broker_publish.parse_args(["--latency-only"])  # without --rerun
    with pytest.raises(SystemExit):
        broker_publish.parse_args(["--brokers", "redis,pulsar"])
    with pytest.raises(SystemExit):
        broker_publish.parse_args(["--runs", "0"])
    with pytest.raises(SystemExit):
        broker_publish.parse_args(["--latency-seconds", "-1"])
    assert broker_publish.parse_args(["--brokers", " nats , redis"]).brokers == ["nats", "redis"]


def test_the_target_is_met_or_missed_per_broker() -> None:
    summary = [
        {"broker": "nats", "contestant": "omconnect", "messages_per_second": 70_000},
        {"broker": "nats", "contestant": "raw", "messages_per_second": 100_000},
        {"broker": "redis", "contestant": "omconnect", "messages_per_second": 60_000},
        {"broker": "redis", "contestant": "raw", "messages_per_second": 100_000},
        {"broker": "mqtt", "contestant": "omconnect", "messages_per_second": None},
        {"broker": "mqtt", "contestant": "raw", "messages_per_second": 100_000},
    ]
    results = {"brokers": ["embedded", "nats", "redis", "mqtt"], "summary": {"publish": summary}}
    lines = broker_publish.target_lines(results)
    assert len(lines) == 3  # the embedded broker has no raw client
    assert lines[0].startswith("- nats:") and "met (0.70x)" in lines[0]
    assert lines[1].startswith("- redis:") and "**missed** (0.60x)" in lines[1]
    assert lines[2].startswith("- mqtt:") and "not measured" in lines[2]


def test_tiny_run_publishes_verifies_and_cleans_up(tmp_path: Path) -> None:
    if not broker_publish.listening(REDIS):
        pytest.fail(
            f"no Redis server answers on {REDIS}: start one, e.g. `redis-server --port "
            f"{REDIS.rpartition(':')[2]} --save ''` (or set OMCONNECT_TEST_REDIS=host:port)",
            pytrace=False,
        )
    readme = tmp_path / "README.md"
    readme.write_text("# Benchmarks\n\nkept text\n")
    work = tmp_path / "work"
    exit_code = broker_publish.main(
        [
            *("--brokers", "embedded,redis", "--redis", REDIS, "--records", str(RECORDS)),
            *("--runs", "1", "--warmups", "0", "--rate", "2000", "--latency-seconds", "1"),
            *("--work-dir", str(work), "--readme", str(readme)),
            *("--json", str(tmp_path / "results.json")),
        ]
    )
    assert exit_code == 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["input"]["records"] == RECORDS
    assert 80 < results["input"]["value_bytes"] / RECORDS < 120  # about 100-byte bodies
    publish = results["summary"]["publish"]
    assert [(e["broker"], e["contestant"]) for e in publish] == [
        ("embedded", "omconnect"),
        ("redis", "omconnect"),
        ("redis", "raw"),
    ]
    for entry in publish:
        assert entry["status"] == "verified", entry["failure"]
        assert entry["messages_per_second"] > 0 and entry["cpu_seconds_median"] >= 0
        assert entry["peak_rss_bytes"] > 10 << 20  # a Python process, measured
    for broker, contestants in results["runs_by_broker"].items():
        for runs in contestants.values():
            [run] = runs
            assert run["phase"] == "measured"
            assert run["acked"] == run["counted"] == RECORDS, broker
    latency = results["summary"]["latency"]
    assert [e["broker"] for e in latency] == ["embedded", "redis"]
    for entry in latency:
        assert entry["status"] == "verified", entry["failure"]
        assert entry["messages"] == 2_000
        assert 0 < entry["p50_ms"] <= entry["p99_ms"] <= entry["max_ms"]
    text = readme.read_text()
    assert text.startswith("# Benchmarks\n\nkept text\n")
    assert "<!-- results:broker-publish:start -->" in text and "| redis | `raw` |" in text
    assert "- redis: omconnect >= 70% of the raw client's msgs/s:" in text
    assert (tmp_path / "results.md").read_text().startswith("# Broker publish")
    assert list(work.iterdir()) == []  # its scratch directory is gone
    import redis

    host, _, port = REDIS.rpartition(":")
    client = redis.Redis(host=host, port=int(port), socket_timeout=10)
    try:
        assert list(client.scan_iter(match=f"{results['token']}:*")) == []
    finally:
        client.close()
    # A broker measured again alone replaces only its rows, and the report says so.
    redis_runs = results["runs_by_broker"]["redis"]
    exit_code = broker_publish.main(
        [
            *("--brokers", "embedded", "--records", str(RECORDS), "--rerun"),
            *("--runs", "1", "--warmups", "0", "--rate", "2000", "--latency-seconds", "1"),
            *("--work-dir", str(work), "--readme", str(readme)),
            *("--json", str(tmp_path / "results.json")),
        ]
    )
    assert exit_code == 0
    again = json.loads((tmp_path / "results.json").read_text())
    assert again["runs_by_broker"]["redis"] == redis_runs
    assert again["runs_by_broker"]["embedded"] != results["runs_by_broker"]["embedded"]
    assert [r["brokers"] for r in again["reruns"]] == [["embedded"]]
    assert "embedded measured again in a run of its own" in readme.read_text()
    # Only the latency rounds of a broker measured again: its throughput runs stay.
    exit_code = broker_publish.main(
        [
            *("--brokers", "redis", "--redis", REDIS, "--records", str(RECORDS), "--rerun"),
            *("--latency-only", "--runs", "1", "--warmups", "0", "--rate", "2000"),
            *("--latency-seconds", "1", "--work-dir", str(work), "--readme", str(readme)),
            *("--json", str(tmp_path / "results.json")),
        ]
    )
    assert exit_code == 0
    latest = json.loads((tmp_path / "results.json").read_text())
    assert latest["runs_by_broker"]["redis"] == redis_runs
    assert latest["latency_runs"]["redis"] != again["latency_runs"]["redis"]
    assert "redis measured again (latency only) in a run of its own" in readme.read_text()
    with pytest.raises(SystemExit, match="--rerun needs --records 2000"):
        broker_publish.main(
            [
                *("--brokers", "embedded", "--records", "1000", "--rerun", "--runs", "1"),
                *("--warmups", "0", "--latency-seconds", "0", "--work-dir", str(work)),
                *("--readme", str(readme), "--json", str(tmp_path / "results.json")),
            ]
        )

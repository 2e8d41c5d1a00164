"""MQTT devices -> a topic: device messages/s and publish-to-readable latency of the ``mqtt``
source on the machine's Mosquitto.

    python benchmarks/mqtt_devices.py                    # 1 warm-up + 3 rounds
    python benchmarks/mqtt_devices.py --messages 2000 --latency-seconds 1 --runs 1 --warmups 0

Each round runs, each in a fresh directory with a topic root and MQTT client ids of its own
(``omcb-<pid>-<n>``), with the device clients of ``mqtt_device_clients.py`` as processes of
their own:

- **throughput, omconnect**: ``omconnect run`` (continuous) of a pipeline like
  ``pipelines/mqtt-to-topic.yaml`` (``mqtt`` source, QoS 1, persistent session, ``columns``
  typed, ``topic_fields``, key ``[site, device]`` -> the embedded topic, JSON;
  ``receive_maximum`` 65,535: see ``mqtt_device_clients.RECEIVE_MAXIMUM``) while the
  publisher sends ``--messages`` (200,000) readings as fast as it can (QoS 1, 1,000 in
  flight). A reader process tails the topic with the embedded broker's consumer
  (``topic_tail.py``, shared with ``cdc_stream.py``). messages/s = distinct readings stored /
  (last one readable - first publish);
- **throughput, paho**: the same publisher into a plain paho subscriber (QoS 1, a clean
  session, the same receive maximum): the limit of the server and the clients on this
  machine, and the publisher's own rate (first publish to last acknowledgement) in both;
- **latency**: the publisher at ``--rate`` (2,000/s) for ``--latency-seconds`` (20) into
  ``omconnect run``; a reading's latency is when the reader's poll returned it minus its
  ``sent_ms`` (taken just before the publish call; one machine, one clock; the reader polls
  every 5 ms, so a latency is overstated by up to about 5 ms). Once with the pipeline's
  default ``batching.linger`` and once with ``--low-linger`` (0.01 s).

The clock starts only once the pipeline reads: probes (reading 0) are published until the
reader sees one. Every run is verified: every reading 1..N on the topic (key-set checksum),
duplicates counted (QoS 1 is at least once); a run missing readings is FAILED and has no
rate. omconnect's CPU and peak RSS (``VmHWM``) are read from ``/proc`` before it is stopped.
After each run the sessions are ended (a clean start with each client id). Results go to
``benchmarks/README.md`` (section ``mqtt-devices``), ``results/mqtt_devices.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import IO, Any

import mqtt_device_clients as clients
import numpy as np
import oracle
from contestants import BENCHMARKS_DIR
from mqtt_devices_report import markdown_section, summarise
from results_report import common_results, write_results
from topic_tail import default_linger, lag_percentiles, start_pipeline, stop_processes, tail_topic

SECTION = "mqtt-devices"
TITLE = "MQTT devices -> a topic"
TOPIC = "devices"
DEFAULT_ADDRESS = os.environ.get("OMCONNECT_BENCH_MQTT", "127.0.0.1:1883")
SESSION_EXPIRY_SECONDS = 60
START_TIMEOUT_SECONDS = 60.0
PROBE_INTERVAL_SECONDS = 0.1
IDLE_SECONDS = 10.0  # a reader stops when nothing new came for this long


def pipeline_yaml(address: str, root: str, client_id: str, linger: float | None) -> str:
    """The pipeline of the omconnect runs: ``pipelines/mqtt-to-topic.yaml``'s shape."""
    text = (
        "name: bench-mqtt-devices\n"
        "broker: embedded://.omconnect\n"
        "state: .omconnect\n"
        "source:\n"
        "  connector: mqtt\n"
        f"  url: mqtt://{address}\n"
        f"  client_id: {client_id}\n"
        f"  session_expiry: {SESSION_EXPIRY_SECONDS}\n"
        f"  receive_maximum: {clients.RECEIVE_MAXIMUM}\n"
        f"  topics: ['{clients.topic_filter(root)}']\n"
        f"  topic_fields: '{root}/{{site}}/{{device}}/telemetry'\n"
        "  columns: {reading: int64, sent_ms: float64, temperature: float64, pressure: float64}\n"
        "  key: [site, device]\n"
        f"topic: {TOPIC}\n"
        "format: json\n"
    )
    if linger is not None:
        text += f"batching:\n  linger: {linger}\n"
    return text


class Names:
    """Topic roots and client ids of one benchmark process: new ones for every run."""

    def __init__(self) -> None:
        self.base = f"omcb-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.number = 0

    def next_root(self) -> str:
        self.number += 1
        return f"{self.base}-{self.number}"


def _hidden(*argv: str) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), *argv]


def _started(process: subprocess.Popen[str], line: str, what: str) -> None:
    """Wait for ``process`` to print ``line`` (its stdout is a pipe)."""
    assert process.stdout is not None
    got = process.stdout.readline().strip()
    if got != line:
        error = process.stderr.read() if process.stderr and process.poll() is not None else ""
        raise RuntimeError(f"{what} did not start (printed {got!r}): {_last_line(error)}")


def _last_line(text: str) -> str:
    return (text.strip().splitlines() or ["(no output)"])[-1][-300:]


def _finish(process: subprocess.Popen[str], what: str, timeout: float) -> dict[str, Any]:
    """The JSON ``process`` printed last, once it ended."""
    out, err = process.communicate(timeout=timeout)
    if process.returncode != 0:
        raise RuntimeError(f"{what} failed: {_last_line(err)}")
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def process_usage(pid: int) -> dict[str, Any]:
    """CPU seconds (user + system, all threads) and peak RSS (``VmHWM``) of a live process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    peak = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            peak = int(line.split()[1]) * 1024
    return {"cpu_seconds": round(cpu, 3), "peak_rss_bytes": peak}


def omconnect_run(
    args: argparse.Namespace, names: Names, run_dir: Path, rate: float, linger: float | None
) -> dict[str, Any]:
    """``omconnect run`` streaming while the publisher sends ``args.messages`` readings (as
    fast as it goes: ``rate`` 0) or ``rate`` readings a second for ``args.latency_seconds``;
    the reader's view of the topic, verified."""
    root = names.next_root()
    client_id = f"{root}-omconnect"
    count = args.messages if not rate else max(1, int(rate * args.latency_seconds))
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    (run_dir / "pipeline.yaml").write_text(pipeline_yaml(args.mqtt, root, client_id, linger))
    record: dict[str, Any] = {
        "root": root,
        "linger": linger,
        "default_linger": default_linger(),
        "count": count,
        "failure": None,
    }
    pipeline = reader = None
    try:
        pipeline = start_pipeline(run_dir)
        timeout = START_TIMEOUT_SECONDS + count / 1000 + args.latency_seconds
        reader = subprocess.Popen(
            _hidden(
                *("--read-topic", str(run_dir), "--expect", str(count)),
                *("--timeout", str(timeout), "--out", str(run_dir / "read.json")),
            ),
            cwd=run_dir,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        _started(reader, "ready", "the reader")
        _probe_until_seen(args.mqtt, root, reader, pipeline)
        record["publisher"] = _finish(
            subprocess.Popen(
                _hidden("--publish", args.mqtt, "--root", root, *_size(count, rate)),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            ),
            "the publisher",
            timeout,
        )
        while reader.poll() is None:
            if pipeline.poll() is not None:
                raise RuntimeError(f"omconnect run exited with {pipeline.returncode}")
            time.sleep(0.2)
        record |= process_usage(pipeline.pid)
        if reader.returncode != 0:
            error = reader.stderr.read() if reader.stderr else ""
            raise RuntimeError(f"the reader failed: {_last_line(error)}")
        read = json.loads((run_dir / "read.json").read_text())
        lags = np.array(read.pop("lags_ms"), np.float64)
        record |= read
        if len(lags):
            record |= lag_percentiles(lags)
        record["failure"] = _verify(read, count)
        last_seen = read["last_seen_ms"]
        first = record["publisher"]["first_publish_ms"]
        if record["failure"] is None and last_seen:
            record["seconds"] = round((last_seen - first) / 1000, 3)
            record["messages_per_second"] = round(read["unique"] / record["seconds"])
    except (RuntimeError, subprocess.TimeoutExpired, ValueError, OSError) as error:
        record["failure"] = f"{type(error).__name__}: {error}"
    finally:
        stop_processes(reader, pipeline)
        clients.end_session(args.mqtt, client_id)
        shutil.rmtree(run_dir, ignore_errors=True)
    return record


def _size(count: int, rate: float) -> list[str]:
    return ["--count", str(count), "--publish-rate", str(rate)]


def _probe_until_seen(
    address: str, root: str, reader: subprocess.Popen[str], pipeline: subprocess.Popen[bytes]
) -> None:
    """Publish probes until the reader prints ``seen`` (the pipeline reads the topic root)."""
    seen = threading.Event()

    def watch(stdout: IO[str]) -> None:
        for line in stdout:
            if line.strip() == "seen":
                seen.set()

    assert reader.stdout is not None
    threading.Thread(target=watch, args=(reader.stdout,), daemon=True).start()
    client = clients.connect(address)
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    try:
        while not seen.wait(PROBE_INTERVAL_SECONDS):
            if pipeline.poll() is not None or reader.poll() is not None:
                raise RuntimeError("omconnect run or the reader ended before reading")
            if time.monotonic() > deadline:
                raise RuntimeError(f"no probe came through within {START_TIMEOUT_SECONDS:.0f} s")
            client.publish(clients.device_topic(root, 0), clients.payload(0, 0.0), qos=1)
    finally:
        client.disconnect()
        client.loop_stop()


def paho_run(args: argparse.Namespace, names: Names) -> dict[str, Any]:
    """The publisher into a plain paho subscriber (the limit), verified the same way."""
    root = names.next_root()
    client_id = f"{root}-paho"
    record: dict[str, Any] = {"root": root, "count": args.messages, "failure": None}
    timeout = START_TIMEOUT_SECONDS + args.messages / 1000
    subscriber = subprocess.Popen(
        _hidden(
            *("--subscribe", args.mqtt, "--root", root, "--client-id", client_id),
            *("--expect", str(args.messages), "--timeout", str(timeout)),
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _started(subscriber, "ready", "the subscriber")
        record["publisher"] = _finish(
            subprocess.Popen(
                _hidden("--publish", args.mqtt, "--root", root, *_size(args.messages, 0)),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            ),
            "the publisher",
            timeout,
        )
        read = _finish(subscriber, "the subscriber", timeout)
        record |= read
        record["failure"] = _verify(read, args.messages)
        if record["failure"] is None:
            seconds = (read["last_seen_ms"] - record["publisher"]["first_publish_ms"]) / 1000
            record["seconds"] = round(seconds, 3)
            record["messages_per_second"] = round(read["unique"] / seconds)
    except (RuntimeError, subprocess.TimeoutExpired, ValueError) as error:
        record["failure"] = f"{type(error).__name__}: {error}"
    finally:
        stop_processes(subscriber)
        clients.end_session(args.mqtt, client_id)
    return record


def _verify(read: dict[str, Any], count: int) -> str | None:
    """None when readings 1..``count`` all came (duplicates allowed: QoS 1), else why not."""
    expected = oracle.expected_checksum(count)
    if read["checksum"] != {"count": expected.count, "sum": expected.sum, "xor": expected.xor}:
        return f"wrong output: {count - read['unique']:,} of {count:,} readings missing"
    return None


# --- hidden modes: the reader of omconnect's topic ---------------------------------------------


def read_topic(folder: Path, expect: int, timeout: float) -> dict[str, Any]:
    """Tail the topic until readings 1..``expect`` all came (and half a second more, for
    duplicates) or nothing came for ``IDLE_SECONDS``; prints ``ready`` once the consumer has
    joined and ``seen`` at the first record (a probe)."""
    seen = np.zeros(expect + 1, bool)
    state = {"unique": 0, "reached": 0.0, "last": 0.0, "told": False}

    def readings(group: Any) -> dict[str, np.ndarray]:
        values = group.values
        reading = values.column("reading").to_numpy(False).astype(np.int64)
        if not state["told"]:
            print("seen", flush=True)
            state["told"] = True
        fresh = reading[(reading > 0) & (reading <= expect)]
        if len(fresh):
            state["last"] = time.monotonic()
            new = np.unique(fresh[~seen[fresh]])
            seen[new] = True
            state["unique"] += len(new)
        return {"reading": reading, "sent_ms": values.column("sent_ms").to_numpy(False)}

    def stop(_count: int, _idle: bool) -> bool:
        now = time.monotonic()
        if state["unique"] >= expect and not state["reached"]:
            state["reached"] = now
        if state["reached"]:
            return now - state["reached"] > 0.5
        return bool(state["last"]) and now - state["last"] > IDLE_SECONDS

    def ready() -> None:
        print("ready", flush=True)

    deadline = time.monotonic() + timeout
    found = asyncio.run(tail_topic(folder, TOPIC, "json", readings, stop, deadline, ready))
    reading = found.get("reading", np.zeros(0, np.int64)).astype(np.int64)
    bench = reading > 0
    seen_ms, sent_ms, born_ms = (found[k][bench] for k in ("seen_ms", "sent_ms", "born_ms"))
    checksum = oracle.checksum_of_keys(np.flatnonzero(seen))
    return {
        "messages": int(bench.sum()),
        "unique": int(seen.sum()),
        "duplicates": int(bench.sum() - seen.sum()),
        "probes": int((~bench).sum()),
        "checksum": {"count": checksum.count, "sum": checksum.sum, "xor": checksum.xor},
        "last_seen_ms": float(seen_ms.max()) if len(seen_ms) else None,
        # sent -> received by omconnect (the record's time), received -> readable on the topic
        "received_p50_ms": _percentile(born_ms - sent_ms, 50),
        "received_p99_ms": _percentile(born_ms - sent_ms, 99),
        "stored_p50_ms": _percentile(seen_ms - born_ms, 50),
        "stored_p99_ms": _percentile(seen_ms - born_ms, 99),
        "lags_ms": [round(float(x), 2) for x in seen_ms - sent_ms],
    }


def _percentile(values: np.ndarray, q: float) -> float | None:
    return round(float(np.percentile(values, q)), 1) if len(values) else None


# --- the benchmark ------------------------------------------------------------------------------


def run_benchmark(args: argparse.Namespace) -> dict[str, Any]:
    """Every round (warm-ups first); the results as ``summarise`` makes them."""
    results = common_results(args)
    results |= {
        "messages": args.messages,
        "rate": args.rate,
        "latency_seconds": args.latency_seconds,
        "low_linger": args.low_linger,
        "mqtt_server": mosquitto_version(args.mqtt),
    }
    names = Names()
    work = args.work_dir / "mqtt-devices"
    records: dict[str, list[dict[str, Any]]] = {
        "omconnect": [],
        "paho": [],
        "latency-default": [],
        "latency-low": [],
    }
    for round_index in range(args.warmups + args.runs):
        phase = "warm-up" if round_index < args.warmups else "measured"
        runs = {
            "omconnect": lambda: omconnect_run(args, names, work / "throughput", 0, None),
            "paho": lambda: paho_run(args, names),
            "latency-default": lambda: omconnect_run(args, names, work / "lag", args.rate, None),
            "latency-low": lambda: omconnect_run(
                args, names, work / "lag", args.rate, args.low_linger
            ),
        }
        for name, run in runs.items():
            record = {"phase": phase, **run()}
            records[name].append(record)
            _print_run(phase, name, record)
    results["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    results["records"] = records
    results |= summarise(records)
    return results


def mosquitto_version(address: str) -> str:
    """The MQTT server's ``$SYS/broker/version`` (Mosquitto publishes it), or ``unknown``."""
    client = clients.connect(address)
    got: list[str] = []
    client.on_message = lambda _c, _u, message: got.append(message.payload.decode())
    client.subscribe("$SYS/broker/version")
    deadline = time.monotonic() + 3
    while not got and time.monotonic() < deadline:
        time.sleep(0.05)
    client.disconnect()
    client.loop_stop()
    return got[0].removeprefix("mosquitto version ") if got else "unknown"


def _print_run(phase: str, name: str, record: dict[str, Any]) -> None:
    rate = record.get("messages_per_second")
    p99 = record.get("lag_p99_ms")
    shown = f"{rate:,} msg/s" if rate and name in ("omconnect", "paho") else f"p99 {p99} ms"
    print(f"  {phase:8} {name:16} {shown:>16}  {record['failure'] or 'ok'}", flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mqtt", default=DEFAULT_ADDRESS, help="host:port of the MQTT server")
    parser.add_argument("--messages", type=int, default=200_000, help="readings per run")
    parser.add_argument("--rate", type=float, default=2_000, help="latency: readings/s")
    parser.add_argument("--latency-seconds", type=float, default=20.0)
    parser.add_argument("--low-linger", type=float, default=0.01)
    parser.add_argument("--warmups", type=int, default=1)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--work-dir", type=Path, default=BENCHMARKS_DIR / "work")
    parser.add_argument("--readme", type=Path, default=BENCHMARKS_DIR / "README.md")
    parser.add_argument(
        "--json", type=Path, default=BENCHMARKS_DIR / "results" / "mqtt_devices.json"
    )
    parser.add_argument("--render-only", action="store_true")
    # hidden modes, run as processes of their own
    parser.add_argument("--publish", metavar="ADDRESS", help=argparse.SUPPRESS)
    parser.add_argument("--subscribe", metavar="ADDRESS", help=argparse.SUPPRESS)
    parser.add_argument("--read-topic", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--root", help=argparse.SUPPRESS)
    parser.add_argument("--client-id", help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--publish-rate", type=float, default=0.0, help=argparse.SUPPRESS)
    parser.add_argument("--expect", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--timeout", type=float, default=600.0, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.messages < 1 or args.runs < 1 or args.warmups < 0 or args.rate <= 0:
        parser.error("--messages, --runs and --rate must be >= 1, --warmups >= 0")
    args.rows = args.messages  # what common_results reports
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (or one of its hidden modes); exit 1 when an omconnect run FAILED."""
    args = parse_args(argv)
    if args.publish:
        print(json.dumps(clients.publish(args.publish, args.root, args.count, args.publish_rate)))
        return 0
    if args.subscribe:
        found = clients.subscribe(
            args.subscribe, args.root, args.client_id, args.expect, IDLE_SECONDS, args.timeout
        )
        print(json.dumps(found))
        return 0
    if args.read_topic:
        args.out.write_text(json.dumps(read_topic(args.read_topic, args.expect, args.timeout)))
        return 0
    if args.render_only:  # the summary is made again from the records, as a run makes it
        results = json.loads(args.json.read_text())
        results |= summarise(results["records"])
    else:
        results = run_benchmark(args)
    write_results(results, args.json, args.readme, SECTION, TITLE, markdown_section(results))
    failed = [s for s in results["summary"].values() if s["status"] == "FAILED"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

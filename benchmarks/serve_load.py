"""``omconnect serve`` under load (issue 12): a folder of pipelines, half on a one-minute
schedule with a tiny CSV, half continuous on the embedded broker, in one ``serve`` process.

Measured, in this order:

1. API latency: ``--rate`` requests/s for ``--load-seconds`` (open loop: a request is sent
   every 1/rate s whatever the answers do), alternating ``GET /pipelines`` and
   ``GET /pipelines/NAME/status``, with ``GET /pipelines?expand=status`` (the status page's
   poll) as every tenth; p50/p99/max per kind and overall;
2. idle CPU: once the scheduled runs of a tick are over, ``serve``'s user + system CPU over
   ``--idle-seconds`` (``/proc/PID/stat``), as a share of one core. The continuous pipelines
   keep running (their sources scanning their folder for new files at the csv connector's
   default ``poll_interval``, 5 s, or every ``--poll-interval`` seconds; their sinks waiting
   for appends): idle means no data. A scan is work the pipeline's file asks for, so the
   committed figure is for pipelines with the defaults;
3. scheduler jitter: for every run of a scheduled pipeline, its start (the API's
   ``runs[].started``) less the minute tick it belongs to; p50/p99/max.

Targets (issue 12): jitter p99 < 1 s, API p99 < 50 ms, idle CPU < 2% of a core. The load
generator runs on the same machine, so on 2 cores it competes with ``serve``.

Results: ``benchmarks/results/serve_load.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from results_report import git_commit, machine_facts, markdown_table, write_json

RESULTS = Path(__file__).resolve().parent / "results" / "serve_load.json"
LISTENING = re.compile(r"listening on (https?://[\d.]+:\d+)/")
TICKS = os.sysconf("SC_CLK_TCK")
TARGETS = {"jitter_p99_seconds": 1.0, "api_p99_ms": 50.0, "idle_cpu_percent_of_core": 2.0}


def write_folder(
    work: Path, scheduled: int, continuous: int, poll_interval: float | None = None
) -> Path:
    """The pipelines folder: ``scheduled`` one-minute CSV -> parquet pipelines with 3 rows
    each, and ``continuous`` CSV -> parquet pipelines scanning for new files every
    ``poll_interval`` seconds (None: the connector's default; no ``poll_interval`` in the
    files)."""
    if work.exists():
        shutil.rmtree(work)
    folder = work / "pipelines"
    folder.mkdir(parents=True)
    state = work / "state"
    for kind, count in (("scheduled", scheduled), ("continuous", continuous)):
        for number in range(count):
            name = f"{kind}-{number:02d}"
            data = work / "in" / name
            data.mkdir(parents=True)
            (data / "a.csv").write_text("id,amount\n1,10\n2,20\n3,30\n")
            poll = "" if poll_interval is None else f", poll_interval: {poll_interval:g}"
            text = (
                f"name: {name}\nbroker: embedded://{state}\nstate: {state}\n"
                f"source: {{connector: csv, path: {data}/*.csv{poll}}}\n"
                f"sink: {{connector: parquet, path: {work / 'out' / name}/}}\n"
            )
            if kind == "scheduled":
                text += 'schedule: "* * * * *"\n'
            (folder / f"{name}.yaml").write_text(text)
    return folder


class Serve:
    """``omconnect serve FOLDER --port 0`` as a process, its stderr drained by a thread."""

    def __init__(self, folder: Path, cwd: Path) -> None:
        self.token = secrets.token_urlsafe(24)
        env = {**os.environ, "OMCONNECT_API_TOKEN": self.token, "PYTHONUNBUFFERED": "1"}
        command = [sys.executable, "-m", "omconnect.runtime.cli.serve_cmd", str(folder)]
        self.process = subprocess.Popen(
            [*command, "--port", "0"], cwd=cwd, stderr=subprocess.PIPE, text=True, env=env
        )
        self.url = ""
        self.log: list[str] = []
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.log.append(line)
            if match := LISTENING.search(line):
                self.url = match.group(1)
                break
        if not self.url:
            raise RuntimeError("serve did not start:\n" + "".join(self.log[-30:]))
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.log.append(line)

    def get(self, path: str) -> Any:
        request = urllib.request.Request(
            self.url + path, headers={"Authorization": f"Bearer {self.token}"}
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            return json.loads(answer.read())

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICKS

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def percentiles(values: list[float]) -> dict[str, float | int | None]:
    """Count, p50, p99 and max of ``values`` (None when there are none)."""
    if not values:
        return {"count": 0, "p50": None, "p99": None, "max": None}
    ordered = sorted(values)

    def at(share: float) -> float:
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))]

    return {"count": len(ordered), "p50": at(0.5), "p99": at(0.99), "max": ordered[-1]}


def jitters(statuses: dict[str, Any]) -> list[float]:
    """Seconds from its minute tick to the start of every run of a scheduled pipeline."""
    found = []
    for entry in statuses.values():
        status = entry["status"]
        if status["mode"] != "scheduled":
            continue
        for run in status["runs"]:
            started = datetime.fromisoformat(run["started"])
            tick = started.replace(second=0, microsecond=0)
            found.append((started - tick) / timedelta(seconds=1))
    return found


def load(serve: Serve, names: list[str], rate: float, seconds: float) -> dict[str, Any]:
    """Open-loop requests at ``rate``/s for ``seconds``; latencies in ms per kind."""
    latencies: dict[str, list[float]] = {"pipelines": [], "status": [], "expand": []}
    errors: list[str] = []

    def one(kind: str, path: str) -> None:
        began = time.perf_counter()
        try:
            serve.get(path)
        except Exception as error:
            errors.append(f"{path}: {error}")
            return
        latencies[kind].append((time.perf_counter() - began) * 1000)

    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        for number in range(int(rate * seconds)):
            due = start + number / rate
            time.sleep(max(0.0, due - time.perf_counter()))
            if number % 10 == 9:
                pool.submit(one, "expand", "/pipelines?expand=status")
            elif number % 2:
                pool.submit(one, "status", f"/pipelines/{names[number % len(names)]}/status")
            else:
                pool.submit(one, "pipelines", "/pipelines")
    every = [value for values in latencies.values() for value in values]
    return {
        "rate": rate,
        "seconds": seconds,
        "errors": len(errors),
        "first_errors": errors[:5],
        "all_ms": percentiles(every),
        **{f"{kind}_ms": percentiles(values) for kind, values in latencies.items()},
    }


def run_counts(statuses: dict[str, Any]) -> tuple[int, int]:
    """The fewest runs any scheduled pipeline started, and the fewest it ended."""
    scheduled = [
        e["status"]["runs"] for e in statuses.values() if e["status"]["mode"] == "scheduled"
    ]
    started = min((len(runs) for runs in scheduled), default=0)
    ended = min((len([r for r in runs if r["ended"]]) for runs in scheduled), default=0)
    return started, ended


def wait_for_scheduled_runs(serve: Serve, runs: int, timeout: float) -> None:
    """Until every scheduled pipeline has ended ``runs`` runs."""
    deadline = time.monotonic() + timeout
    while run_counts(serve.get("/pipelines?expand=status"))[1] < runs:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the scheduled pipelines did not all end {runs} runs")
        time.sleep(0.5)


def wait_for_a_quiet_stretch(serve: Serve, seconds: float) -> None:
    """Until the scheduled runs of the latest tick are over, with ``seconds`` left before
    the next tick (else until the next tick's runs are over)."""
    started, _ = run_counts(serve.get("/pipelines?expand=status"))
    wait_for_scheduled_runs(serve, max(1, started), 90)
    if 60 - datetime.now().second < seconds + 3:
        wait_for_scheduled_runs(serve, max(1, started) + 1, 90)


def measure(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(args.work_dir)
    folder = write_folder(work, args.scheduled, args.continuous, args.poll_interval)
    serve = Serve(folder, work)
    try:
        deadline = time.monotonic() + 60
        while len(serve.get("/pipelines")) < args.scheduled + args.continuous:
            if time.monotonic() > deadline:
                raise TimeoutError("serve did not load every pipeline")
            time.sleep(0.2)
        names = serve.get("/pipelines")
        api = load(serve, names, args.rate, args.load_seconds)
        idle: dict[str, Any] = {"seconds": args.idle_seconds}
        if args.scheduled:
            wait_for_a_quiet_stretch(serve, args.idle_seconds)
        before, began = serve.cpu_seconds(), time.monotonic()
        time.sleep(args.idle_seconds)
        used, elapsed = serve.cpu_seconds() - before, time.monotonic() - began
        idle["cpu_seconds"] = round(used, 3)
        idle["percent_of_core"] = round(100 * used / elapsed, 2)
        statuses = serve.get("/pipelines?expand=status")
        failed = [n for n, e in statuses.items() if e["status"]["state"] == "FAILED"]
        return {
            "api": api,
            "idle_cpu": idle,
            "jitter_seconds": percentiles(jitters(statuses)),
            "failed_pipelines": failed,
        }
    finally:
        serve.stop()


def verdicts(results: dict[str, Any]) -> dict[str, Any]:
    """Each target and whether it was met (None: not measured)."""
    measured = {
        "jitter_p99_seconds": results["jitter_seconds"]["p99"],
        "api_p99_ms": results["api"]["all_ms"]["p99"],
        "idle_cpu_percent_of_core": results["idle_cpu"]["percent_of_core"],
    }
    return {
        name: {
            "measured": value,
            "target": TARGETS[name],
            "met": None if value is None else value < TARGETS[name],
        }
        for name, value in measured.items()
    }


def markdown(results: dict[str, Any]) -> str:
    def number(value: Any, unit: str) -> str:
        return "-" if value is None else f"{value:,.3g} {unit}"

    api = results["api"]
    rows = [
        [kind, str(api[f"{kind}_ms"]["count"])]
        + [number(api[f"{kind}_ms"][p], "ms") for p in ("p50", "p99", "max")]
        for kind in ("all", "pipelines", "status", "expand")
    ]
    targets = [
        [
            name,
            number(v["measured"], ""),
            f"< {v['target']}",
            {True: "yes", False: "NO"}.get(v["met"], "-"),
        ]
        for name, v in results["targets"].items()
    ]
    jitter = results["jitter_seconds"]
    poll = results.get("poll_interval")
    scans = "5 s, the default" if poll is None else f"{poll:g} s"
    return "\n\n".join(
        [
            "# serve under load",
            f"Run {results['started']} on {results['machine']['cpus']} CPUs "
            f"({results['machine']['cpu_model']}), load average at start "
            f"{results['machine']['load_average_at_start'][0]} (a shared machine); "
            f"{results['scheduled']} one-minute scheduled + {results['continuous']} continuous "
            f"pipelines in one `serve` (csv sources scanning every {scans}); omconnect at "
            f"commit `{results['commit']}`.",
            markdown_table(["target", "measured", "target", "met"], targets),
            f"API at {api['rate']:g} requests/s for {api['seconds']:g} s ({api['errors']} errors):",
            markdown_table(["requests", "count", "p50", "p99", "max"], rows),
            f"Scheduler jitter over {jitter['count']} runs: p50 "
            f"{number(jitter['p50'], 's')}, p99 {number(jitter['p99'], 's')}, max "
            f"{number(jitter['max'], 's')}. Idle CPU over {results['idle_cpu']['seconds']:g} s: "
            f"{results['idle_cpu']['percent_of_core']}% of a core. Failed pipelines: "
            f"{results['failed_pipelines'] or 'none'}.",
        ]
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scheduled", type=int, default=25)
    parser.add_argument("--continuous", type=int, default=25)
    parser.add_argument("--rate", type=float, default=50.0, help="API requests per second")
    parser.add_argument("--load-seconds", type=float, default=70.0)
    parser.add_argument("--idle-seconds", type=float, default=30.0)
    parser.add_argument(
        "--poll-interval",
        type=float,
        default=None,
        help="seconds between two scans of a continuous pipeline's csv source "
        "(default: the connector's own, 5 s)",
    )
    parser.add_argument("--work-dir", default=str(Path(__file__).parent / "work" / "serve_load"))
    parser.add_argument("--json", default=str(RESULTS))
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = datetime.now().astimezone().isoformat(timespec="seconds")
    results: dict[str, Any] = {
        "started": started,
        "machine": machine_facts(),
        "python": sys.version.split()[0],
        "commit": git_commit(),
        "scheduled": args.scheduled,
        "continuous": args.continuous,
        "poll_interval": args.poll_interval,
        **measure(args),
    }
    results["targets"] = verdicts(results)
    path = Path(args.json)
    write_json(path, results)
    text = markdown(results)
    path.with_suffix(".md").write_text(text + "\n")
    print(text)
    return 0 if not results["api"]["errors"] and not results["failed_pipelines"] else 1


if __name__ == "__main__":
    sys.exit(main())

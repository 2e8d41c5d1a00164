"""The results of ``mqtt_devices.py``: medians of the measured runs, and their Markdown.

``summarise`` turns the run records into the committed JSON's summary; ``markdown_section``
renders the JSON (and only it), so the README section can be rebuilt from the JSON alone.
"""

from __future__ import annotations

import statistics
from typing import Any

from results_report import markdown_table, mib, rate, run_line, seconds

LAG_KEYS = ("lag_p50_ms", "lag_p90_ms", "lag_p99_ms", "lag_p999_ms", "lag_max_ms")
PART_KEYS = ("received_p50_ms", "received_p99_ms", "stored_p50_ms", "stored_p99_ms")


def median_of(runs: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(values) if values else None


def _summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over the measured runs that were verified; the phase is FAILED when none was.
    A failed run is counted and its reason kept, never its time."""
    measured = [r for r in runs if r["phase"] == "measured"]
    failed = [r for r in measured if r["failure"]]
    verified = [r for r in measured if not r["failure"]]
    publishers = [r["publisher"] for r in measured if "publisher" in r]
    entry: dict[str, Any] = {
        "status": "verified" if verified and measured else "FAILED",
        "failure": failed[0]["failure"] if failed else None,
        "runs": len(measured),
        "failed_runs": len(failed),
        "count": measured[0]["count"] if measured else None,
        "linger": measured[0].get("linger") if measured else None,
        "messages_per_second_median": median_of(verified, "messages_per_second"),
        "seconds_median": median_of(verified, "seconds"),
        "publisher_rate_median": median_of(publishers, "rate"),
        "duplicates_max": max((r.get("duplicates") or 0 for r in measured), default=None),
        "missing_max": max(
            ((r["count"] - r["unique"]) for r in measured if r.get("unique") is not None),
            default=None,
        ),
        "cpu_seconds_median": median_of(verified, "cpu_seconds"),
        "peak_rss_bytes": max(
            (r["peak_rss_bytes"] for r in measured if r.get("peak_rss_bytes")), default=None
        ),
    }
    for key in (*LAG_KEYS, *PART_KEYS):
        entry[key] = median_of(verified, key)
    return entry


def summarise(records: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """The summary of each phase (``omconnect``, ``paho``, ``latency-default``,
    ``latency-low``) and omconnect's throughput against the plain subscriber's."""
    summary = {name: _summary(runs) for name, runs in records.items()}
    ours = summary["omconnect"]["messages_per_second_median"]
    limit = summary["paho"]["messages_per_second_median"]
    return {"summary": summary, "omconnect_of_paho": ours / limit if ours and limit else None}


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f} ms"


def _output(entry: dict[str, Any]) -> str:
    if entry["status"] == "FAILED":
        return f"FAILED: {entry['failure']}"
    duplicates = f"{entry['duplicates_max'] or 0} duplicates at most"
    if not entry["failed_runs"]:
        return f"verified ({duplicates})"
    return (
        f"{entry['runs'] - entry['failed_runs']} of {entry['runs']} runs verified "
        f"({duplicates}); {entry['failed_runs']} FAILED: {entry['failure']}"
    )


def markdown_section(results: dict[str, Any]) -> str:
    """The README section of ``results`` (as ``mqtt_devices.py`` writes them)."""
    summary = results["summary"]
    end = results.get("load_average_at_end")
    lines = [
        run_line(results) + (f" Load average at the end: {end[0]}." if end else ""),
        "",
        f"MQTT server: Mosquitto {results['mqtt_server']} on the same machine (its defaults: "
        "at most 1,000 messages queued per session beyond those in flight, the rest dropped; "
        "both subscribers take 65,535 in flight, the most MQTT 5 allows). Messages: small "
        "JSON telemetry (about 90 bytes) at QoS 1 from one paho publisher process (1,000 in "
        f"flight), round {8} devices. {results['warmups']} warm-up + {results['runs']} "
        "measured rounds, medians reported. Every run verified: every reading 1..N on the "
        "topic (key-set checksum of the readings), duplicates counted; a run missing one is "
        "FAILED and has no rate (the medians are the verified runs').",
        "",
        f"Sustained: {results['messages']:,} readings published as fast as the publisher "
        "goes; messages/s = distinct readings / (last one readable on the topic - first "
        "publish); the publisher's own rate is from its first publish to its last "
        "acknowledgement from the server. omconnect's CPU and peak RSS are its process's "
        "(`/proc`: user + system, `VmHWM`), over the whole run:",
        "",
    ]
    rows = []
    names = {
        "omconnect": "`omconnect run`: mqtt source -> embedded topic (JSON)",
        "paho": "a plain paho subscriber (the limit)",
    }
    for name, what in names.items():
        entry = summary[name]
        rows.append(
            [
                what,
                rate(entry["messages_per_second_median"]),
                seconds(entry["seconds_median"]),
                rate(entry["publisher_rate_median"]),
                seconds(entry["cpu_seconds_median"]) if name == "omconnect" else "-",
                mib(entry["peak_rss_bytes"]) if name == "omconnect" else "-",
                _output(entry),
            ]
        )
    header = ["into", "messages/s", "time", "publisher's own msg/s", "CPU", "peak RSS", "output"]
    lines += [markdown_table(header, rows), ""]
    if results.get("omconnect_of_paho"):
        lines += [
            f"omconnect takes {results['omconnect_of_paho']:.0%} of the plain subscriber's rate.",
            "",
        ]
    lines += [
        f"Latency: the publisher at {results['rate']:,.0f} readings/s for "
        f"{results['latency_seconds']:g} s; a reading's latency is when the reader's poll of "
        "the topic returned it minus its `sent_ms` (taken just before the publish call; the "
        "reader polls every 5 ms). `received` is to omconnect's receipt (the record's "
        "`received_at`), `stored` from there to readable (batching linger, encoding, the "
        "broker's append, the poll):",
        "",
    ]
    rows = []
    for name in ("latency-default", "latency-low"):
        entry = summary[name]
        default = entry.get("default_linger") or _recorded_default_linger(results)
        linger = f"default ({default:g} s)" if entry["linger"] is None else f"{entry['linger']:g} s"
        rows.append(
            [
                linger,
                rate(entry["publisher_rate_median"]),
                *(_ms(entry[key]) for key in LAG_KEYS),
                f"{_ms(entry['received_p50_ms'])} / {_ms(entry['received_p99_ms'])}",
                f"{_ms(entry['stored_p50_ms'])} / {_ms(entry['stored_p99_ms'])}",
                _output(entry),
            ]
        )
    header = ["batching.linger", "achieved/s", "p50", "p90", "p99", "p99.9", "max"]
    header += ["received p50 / p99", "stored p50 / p99", "output"]
    lines += [markdown_table(header, rows)]
    return "\n".join(lines) + "\n"


def _recorded_default_linger(results: dict[str, Any]) -> float:
    """The default ``batching.linger`` the runs had (0.2 s in results older than the record)."""
    runs = [run for runs in results.get("records", {}).values() for run in runs]
    found = [run["default_linger"] for run in runs if run.get("default_linger")]
    return float(found[0]) if found else 0.2

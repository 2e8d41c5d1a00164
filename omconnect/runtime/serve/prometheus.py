"""The ``GET /metrics`` page: pipeline counters in the Prometheus text exposition format 0.0.4.

Counters are totals since the worker started, summed over every run of the pipeline.
``omconnect_pipeline_up`` has one series per pipeline labelled with its current state; its
value is 1 when the state is RUNNING or SCHEDULED, else 0.
"""

from __future__ import annotations

import platform
from collections.abc import Sequence

from omconnect import __version__
from omconnect.runtime.serve.pipeline_state import PipelineStatus

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# (metric name, counter attribute, help text)
_COUNTERS = (
    ("omconnect_records_read_total", "records_read", "Records read from the source."),
    ("omconnect_records_published_total", "records_published", "Records the broker acknowledged."),
    ("omconnect_records_consumed_total", "records_consumed", "Records consumed by the sink."),
    ("omconnect_records_written_total", "records_written", "Records handed to the sink."),
    ("omconnect_dead_letters_total", "dead_letters", "Records sent to the dead letter topic."),
)


def render_metrics(statuses: Sequence[PipelineStatus]) -> str:
    """The metrics text for ``statuses``."""
    lines: list[str] = []
    _family(lines, "omconnect_build_info", "gauge", "The omconnect version of this worker.")
    labels = _labels(version=__version__, python=platform.python_version())
    lines.append(f"omconnect_build_info{labels} 1")
    for metric, attribute, text in _COUNTERS:
        _family(lines, metric, "counter", text)
        for status in statuses:
            value = getattr(status.counters, attribute)
            lines.append(f"{metric}{_labels(pipeline=status.name)} {value}")
    _family(lines, "omconnect_pipeline_up", "gauge", "1 when the pipeline is running or scheduled.")
    for status in statuses:
        up = 1 if status.state.is_up else 0
        lines.append(
            f"omconnect_pipeline_up{_labels(pipeline=status.name, state=status.state)} {up}"
        )
    _family(lines, "omconnect_pipeline_restarts_total", "counter", "Restarts of the pipeline.")
    for status in statuses:
        lines.append(
            f"omconnect_pipeline_restarts_total{_labels(pipeline=status.name)} {status.restarts}"
        )
    _family(
        lines,
        "omconnect_pipeline_skipped_ticks_total",
        "counter",
        "Schedule ticks skipped because the previous run was still going.",
    )
    for status in statuses:
        labels = _labels(pipeline=status.name)
        lines.append(f"omconnect_pipeline_skipped_ticks_total{labels} {status.skipped_ticks}")
    return "\n".join(lines) + "\n"


def _family(lines: list[str], name: str, kind: str, text: str) -> None:
    lines.append(f"# HELP {name} {text}")
    lines.append(f"# TYPE {name} {kind}")


def _labels(**labels: str) -> str:
    inner = ",".join(f'{name}="{_escape(str(value))}"' for name, value in labels.items())
    return "{" + inner + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")

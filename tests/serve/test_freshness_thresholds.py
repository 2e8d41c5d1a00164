"""The idle and stalled thresholds: ``serve``'s ``--idle-after`` and ``--stalled-after``, and a
pipeline's own ``freshness:`` over them."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pytest

from omconnect.runtime.cli.serve_cmd import add_arguments
from omconnect.runtime.config.loader import load_pipeline
from omconnect.runtime.config.problems import PipelineConfigError
from omconnect.runtime.serve.freshness import Freshness, FreshnessPolicy
from omconnect.runtime.serve.managed_pipeline import ManagedPipeline
from omconnect.runtime.serve.pipeline_state import PipelineCounters, PipelineState
from omconnect.runtime.serve.supervisor import Supervisor
from omconnect.runtime.worker.metrics import PipelineMetrics
from tests.support import toy_connectors  # noqa: F401  (registers toy-streams, toy-collect)


def _pipeline(tmp_path: Path, name: str, freshness: str = "") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(
        f"name: {name}\nbroker: embedded://{tmp_path / 'b'}\nstate: {tmp_path / 's'}\n"
        "source: {connector: toy-streams, rows: 1}\nsink: {connector: toy-collect}\n" + freshness
    )
    return path


def _state_after_quiet(managed: ManagedPipeline, quiet: float) -> Freshness | None:
    """The state the status shows for a running pipeline whose source read its last record
    ``quiet`` seconds ago and polled just now."""
    metrics = PipelineMetrics(managed.name)
    source = metrics.times.task("source-0")
    source.heartbeat(1)
    source.last_record = time.monotonic() - quiet
    source.heartbeat(0)
    managed.state = PipelineState.RUNNING
    managed._totals = PipelineCounters().plus(metrics)
    return managed.status().freshness.state


def test_a_pipeline_setting_overrides_the_workers_thresholds(tmp_path: Path) -> None:
    plain = load_pipeline(_pipeline(tmp_path, "plain"))
    patient = load_pipeline(
        _pipeline(tmp_path, "patient", "freshness: {idle_after: 2m, stalled_after: 10m}\n")
    )
    supervisor = Supervisor([plain, patient], freshness=FreshnessPolicy(90, 30))
    assert supervisor.pipelines["plain"].freshness == FreshnessPolicy(90, 30)
    assert supervisor.pipelines["patient"].freshness == FreshnessPolicy(600, 120)

    # 60 s without a record: idle past the worker's 30 s, active within the pipeline's 2 m.
    assert _state_after_quiet(supervisor.pipelines["plain"], 60) is Freshness.IDLE
    assert _state_after_quiet(supervisor.pipelines["patient"], 60) is Freshness.ACTIVE
    # Without thresholds anywhere: the defaults, 10 s idle.
    assert _state_after_quiet(ManagedPipeline(plain), 20) is Freshness.IDLE
    assert _state_after_quiet(ManagedPipeline(plain), 5) is Freshness.ACTIVE


def test_a_threshold_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(PipelineConfigError, match=r"freshness\.stalled_after"):
        load_pipeline(_pipeline(tmp_path, "p", "freshness: {stalled_after: 0}\n"))
    with pytest.raises(PipelineConfigError, match=r"freshness\.idle_after"):
        load_pipeline(_pipeline(tmp_path, "p", "freshness: {idle_after: soon}\n"))
    with pytest.raises(ValueError, match="idle_after"):
        FreshnessPolicy(idle_after=0)


def test_serve_takes_the_thresholds_as_durations(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["pipelines", "--idle-after", "2m", "--stalled-after", "300"])
    assert (args.idle_after, args.stalled_after) == (120.0, 300.0)
    defaults = parser.parse_args(["pipelines"])
    assert (defaults.idle_after, defaults.stalled_after) == (10.0, 60.0)
    with pytest.raises(SystemExit):
        parser.parse_args(["pipelines", "--stalled-after", "0s"])
    assert "--stalled-after: '0s': must be more than zero" in capsys.readouterr().err
